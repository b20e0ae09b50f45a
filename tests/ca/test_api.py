"""The CA over real HTTP: both v2 request shapes, legacy v1, trust bundle, configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

from tests.ca.ctverify import spki_der, verify_embedded_sct, verify_x509_sct
from tests.ca.helpers import (
    b64,
    chain_of,
    check_profile,
    csr_pem,
    der_utf8,
    p256,
    post_csr,
    post_public_key,
)


def test_csr_with_bearer_token_gets_embedded_sct_chain(server_ca):
    key = p256()
    before = server_ca.ct_size()
    chain = chain_of(post_csr(server_ca.url, server_ca.email_token(), csr_pem(key)))
    assert chain[1:] == list(server_ca.signer.chain)
    issuer = server_ca.issuer.issuer_url
    check_profile(
        chain[0],
        issuer=chain[1],
        public_key=key,
        san=x509.RFC822Name("alice@example.com"),
        fulcio={1: issuer.encode(), 8: der_utf8(issuer), 24: der_utf8("alice@example.com")},
    )
    verify_embedded_sct(chain[0], issuer=chain[1], log_key=server_ca.ct_log.public_key)
    assert server_ca.ct_size() == before + 1


def test_csr_subject_and_extensions_are_ignored(server_ca):
    key = p256()
    csr = csr_pem(key, subject="CN=root@evil.example,O=Evil")
    chain = chain_of(post_csr(server_ca.url, server_ca.email_token("bob@example.com"), csr))
    assert chain[0].subject == x509.Name([])
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.RFC822Name("bob@example.com")]


def test_public_key_with_proof_for_github_token(server_ca):
    key = p256()
    claims = server_ca.issuer.github_claims(
        repository="acme/app", workflow="release.yml", ref="refs/heads/main"
    )
    token = server_ca.github_token()
    proof = key.sign(claims["sub"].encode(), ec.ECDSA(hashes.SHA256()))
    chain = chain_of(post_public_key(server_ca.url, token, key, proof))
    iss = server_ca.issuer.github_issuer_url
    url = "https://github.com"
    expected = {
        1: iss.encode(),
        2: claims["event_name"].encode(),
        3: claims["sha"].encode(),
        4: claims["workflow"].encode(),
        5: claims["repository"].encode(),
        6: claims["ref"].encode(),
        8: der_utf8(iss),
        9: der_utf8(f"{url}/{claims['job_workflow_ref']}"),
        10: der_utf8(claims["job_workflow_sha"]),
        11: der_utf8(claims["runner_environment"]),
        12: der_utf8(f"{url}/{claims['repository']}"),
        13: der_utf8(claims["sha"]),
        14: der_utf8(claims["ref"]),
        15: der_utf8(claims["repository_id"]),
        16: der_utf8(f"{url}/{claims['repository_owner']}"),
        17: der_utf8(claims["repository_owner_id"]),
        18: der_utf8(f"{url}/{claims['workflow_ref']}"),
        19: der_utf8(claims["workflow_sha"]),
        20: der_utf8(claims["event_name"]),
        21: der_utf8(f"{url}/acme/app/actions/runs/1/attempts/1"),
        22: der_utf8(claims["repository_visibility"]),
        24: der_utf8(claims["sub"]),
    }
    check_profile(
        chain[0],
        issuer=chain[1],
        public_key=key,
        san=x509.UniformResourceIdentifier(
            "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
        ),
        fulcio=expected,
    )
    verify_embedded_sct(chain[0], issuer=chain[1], log_key=server_ca.ct_log.public_key)


def test_snake_case_fields_and_raw_ecdsa_proof(server_ca):
    key = ec.generate_private_key(ec.SECP384R1())
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(key.sign(b"carol@example.com", ec.ECDSA(hashes.SHA384())))
    raw = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    from tests.ca.helpers import public_pem

    body = {
        "credentials": {"oidc_identity_token": server_ca.email_token("carol@example.com")},
        "public_key_request": {
            "public_key": {"algorithm": "ECDSA", "content": public_pem(key)},
            "proof_of_possession": b64(raw),
        },
        "unknownField": {"ignored": True},
    }
    response = requests.post(f"{server_ca.url}/api/v2/signingCert", json=body, timeout=30)
    leaf = chain_of(response)[0]
    assert leaf.public_key() == key.public_key()


def test_legacy_v1_signing_cert(server_ca):
    key = p256()
    proof = key.sign(b"dave@example.com", ec.ECDSA(hashes.SHA256()))
    body = {
        "publicKey": {"content": b64(spki_der(key.public_key())), "algorithm": "ecdsa"},
        "signedEmailAddress": b64(proof),
    }
    token = server_ca.email_token("dave@example.com")
    response = requests.post(
        f"{server_ca.url}/api/v1/signingCert",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"] == "application/pem-certificate-chain"
    assert "SCT" not in response.headers
    assert not response.text.endswith("\n")
    chain = x509.load_pem_x509_certificates(response.content)
    assert chain[1:] == list(server_ca.signer.chain)
    verify_embedded_sct(chain[0], issuer=chain[1], log_key=server_ca.ct_log.public_key)


def test_trust_bundle_root_cert_and_configuration(server_ca):
    bundle = requests.get(f"{server_ca.url}/api/v2/trustBundle", timeout=30).json()
    pems = bundle["chains"][0]["certificates"]
    assert len(bundle["chains"]) == 1 and all(pem.endswith("\n") for pem in pems)
    assert [x509.load_pem_x509_certificate(p.encode()) for p in pems] == list(
        server_ca.signer.chain
    )
    root = requests.get(f"{server_ca.url}/api/v1/rootCert", timeout=30)
    assert root.status_code == 200
    assert root.headers["Content-Type"] == "application/pem-certificate-chain"
    assert x509.load_pem_x509_certificates(root.content) == list(server_ca.signer.chain)
    issuers = requests.get(f"{server_ca.url}/api/v2/configuration", timeout=30).json()["issuers"]
    by_url = {entry.get("issuerUrl"): entry for entry in issuers}
    email = by_url[server_ca.issuer.issuer_url]
    assert email["audience"] == "sigstore" and email["challengeClaim"] == "email"
    assert by_url[server_ca.issuer.github_issuer_url]["challengeClaim"] == "sub"


def test_issued_chain_passes_sigstore_python_checks(server_ca):
    """sigstore-python's own SCT check and its X.509 path validation accept our chain."""
    from sigstore._internal.sct import verify_sct
    from sigstore._internal.trust import Keyring
    from sigstore_models.common.v1 import PublicKey, PublicKeyDetails

    key = p256()
    chain = chain_of(post_csr(server_ca.url, server_ca.email_token(), csr_pem(key)))
    keyring = Keyring(
        [
            PublicKey(
                raw_bytes=b64(spki_der(server_ca.ct_log.public_key)),
                key_details=PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
            )
        ]
    )
    verify_sct(chain[0], chain[1:], keyring)
    policy = PolicyBuilder().store(Store(chain[-1:])).time(datetime.now(UTC) + timedelta(seconds=1))
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verified = (
        policy.extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
        .verify(chain[0], chain[1:-1])
    )
    assert verified.chain[1:] == chain[1:]


def test_detached_mode_returns_detached_sct(detached_ca):
    key = p256()
    before = detached_ca.ct_size()
    response = post_csr(detached_ca.url, detached_ca.email_token(), csr_pem(key))
    assert response.status_code == 200, response.text
    body = response.json()["signedCertificateDetachedSct"]
    leaf = x509.load_pem_x509_certificate(body["chain"]["certificates"][0].encode())
    assert not any(e.oid.dotted_string.endswith("11129.2.4.2") for e in leaf.extensions)
    _check_detached(detached_ca, leaf, body["signedCertificateTimestamp"])
    assert detached_ca.ct_size() == before + 1


def test_detached_mode_v1_sets_sct_header(detached_ca):
    key = p256()
    response = requests.post(
        f"{detached_ca.url}/api/v1/signingCert",
        json={"certificateSigningRequest": b64(csr_pem(key))},
        headers={"Authorization": f"Bearer {detached_ca.email_token()}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    leaf = x509.load_pem_x509_certificates(response.content)[0]
    _check_detached(detached_ca, leaf, response.headers["SCT"])


def _check_detached(server, leaf: x509.Certificate, encoded: str) -> None:
    import base64
    import json

    from cryptography.hazmat.primitives import serialization

    sct = json.loads(base64.b64decode(encoded))
    assert sct["sct_version"] == 0
    assert base64.b64decode(sct["id"]) == server.ct_log.log_id
    signed = base64.b64decode(sct["signature"])
    assert signed[:2] == b"\x04\x03"
    verify_x509_sct(
        leaf.public_bytes(serialization.Encoding.DER),
        timestamp_ms=sct["timestamp"],
        extensions=base64.b64decode(sct["extensions"]),
        signature=signed[4:],
        log_key=server.ct_log.public_key,
    )


def test_sigstore_python_fulcio_client_gets_a_certificate(server_ca):
    """sigstore-python's own Fulcio client, as its signer uses it, against our CA."""
    from sigstore._internal.fulcio.client import FulcioClient
    from sigstore._internal.sct import verify_sct
    from sigstore._internal.trust import Keyring
    from sigstore.oidc import IdentityToken
    from sigstore_models.common.v1 import PublicKey, PublicKeyDetails

    key = p256()
    csr = x509.load_pem_x509_csr(csr_pem(key))
    token = IdentityToken(server_ca.email_token("erin@example.com"))
    response = FulcioClient(server_ca.url).signing_cert.post(csr, token)
    assert response.cert.public_key() == key.public_key()
    assert response.chain == list(server_ca.signer.chain)
    keyring = Keyring(
        [
            PublicKey(
                raw_bytes=b64(spki_der(server_ca.ct_log.public_key)),
                key_details=PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
            )
        ]
    )
    verify_sct(response.cert, response.chain, keyring)
    bundle = FulcioClient(server_ca.url).trust_bundle.get()
    assert bundle.trust_bundle == [list(server_ca.signer.chain)]


def test_concurrent_issuance_logs_every_certificate_once(server_ca):
    from concurrent.futures import ThreadPoolExecutor

    keys = [p256() for _ in range(48)]
    token = server_ca.email_token()
    before = server_ca.ct_size()
    with ThreadPoolExecutor(16) as pool:
        chains = list(
            pool.map(lambda k: chain_of(post_csr(server_ca.url, token, csr_pem(k))), keys)
        )
    assert server_ca.ct_size() == before + len(keys)
    assert len({chain[0].serial_number for chain in chains}) == len(keys)
    for key, chain in zip(keys, chains, strict=True):
        assert chain[0].public_key() == key.public_key()
        verify_embedded_sct(chain[0], issuer=chain[1], log_key=server_ca.ct_log.public_key)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "beArer", "Bearer  "])
def test_authorization_scheme_is_case_insensitive(server_ca, scheme: str):
    """RFC 7235 §2.1: the auth-scheme is case-insensitive (and any run of spaces follows it)."""
    key = p256()
    before = server_ca.ct_size()
    response = requests.post(
        f"{server_ca.url}/api/v2/signingCert",
        json={"certificateSigningRequest": b64(csr_pem(key))},
        headers={"Authorization": f"{scheme} {server_ca.email_token()}"},
        timeout=30,
    )
    assert chain_of(response)[1:] == list(server_ca.signer.chain)
    proof = key.sign(b"dave@example.com", ec.ECDSA(hashes.SHA256()))
    response = requests.post(
        f"{server_ca.url}/api/v1/signingCert",
        json={
            "publicKey": {"content": b64(spki_der(key.public_key()))},
            "signedEmailAddress": b64(proof),
        },
        headers={"Authorization": f"{scheme} {server_ca.email_token('dave@example.com')}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert server_ca.ct_size() == before + 2


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearertoken", "Token abc"])
def test_other_authorization_schemes_give_no_token(server_ca, header: str):
    before = server_ca.ct_size()
    response = requests.post(
        f"{server_ca.url}/api/v2/signingCert",
        json={"certificateSigningRequest": b64(csr_pem(p256()))},
        headers={"Authorization": header},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["details"][0] == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "domain": "keyless.dev",
        "metadata": {"detail": "token must have 3 dot-separated parts, it has 1"},
        "reason": "token-malformed",
    }
    assert server_ca.ct_size() == before
