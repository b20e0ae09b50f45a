"""Every refusal over HTTP: the exact Fulcio status, code and message, and no CT entry."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.ca.helpers import TOKEN_ERROR, b64, csr_pem, p256, post_csr, post_public_key

INSECURE = "The public key supplied in the request is insecure"
UNVERIFIED = "The signature supplied in the request could not be verified"
UNPARSEABLE_KEY = "The public key supplied in the request could not be parsed"
UNPARSEABLE_CSR = "The certificate signing request could not be parsed"


def _refused(server, response: requests.Response, message: str, *, before: int) -> dict:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == 3
    assert body["message"] == message
    assert isinstance(body["details"], list)
    assert server.ct_size() == before
    return body


def _sign(key, message: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        from cryptography.hazmat.primitives.asymmetric import padding

        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


KEY_CASES = {
    "rsa-1024": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), INSECURE),
    "p-224": (lambda: ec.generate_private_key(ec.SECP224R1()), INSECURE),
    "secp256k1": (lambda: ec.generate_private_key(ec.SECP256K1()), INSECURE),
}


@pytest.mark.parametrize("case", list(KEY_CASES))
def test_weak_key_is_refused(server_ca, case):
    make, message = KEY_CASES[case]
    key = make()
    before = server_ca.ct_size()
    proof = _sign(key, b"alice@example.com")
    response = post_public_key(server_ca.url, server_ca.email_token(), key, proof)
    body = _refused(server_ca, response, message, before=before)
    assert body["details"][0]["reason"] == "key-insecure"


def test_weak_key_in_csr_is_refused(server_ca):
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    before = server_ca.ct_size()
    response = post_csr(server_ca.url, server_ca.email_token(), csr_pem(key))
    _refused(server_ca, response, INSECURE, before=before)


def test_proof_by_another_key_is_refused(server_ca):
    key, other = p256(), p256()
    before = server_ca.ct_size()
    proof = other.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    response = post_public_key(server_ca.url, server_ca.email_token(), key, proof)
    _refused(server_ca, response, UNVERIFIED, before=before)


def test_proof_over_wrong_challenge_is_refused(server_ca):
    key = p256()
    before = server_ca.ct_size()
    proof = key.sign(b"mallory@example.com", ec.ECDSA(hashes.SHA256()))
    response = post_public_key(server_ca.url, server_ca.email_token(), key, proof)
    _refused(server_ca, response, UNVERIFIED, before=before)


def test_p521_proof_with_sha256_is_refused(server_ca):
    key = ec.generate_private_key(ec.SECP521R1())
    before = server_ca.ct_size()
    proof = key.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    response = post_public_key(server_ca.url, server_ca.email_token(), key, proof)
    _refused(server_ca, response, UNVERIFIED, before=before)


def test_csr_with_broken_self_signature_is_refused(server_ca):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = csr_pem(p256())
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # Inside the signature's INTEGER s.
    broken = base64.encodebytes(bytes(der)).decode()
    broken_pem = f"-----BEGIN CERTIFICATE REQUEST-----\n{broken}-----END CERTIFICATE REQUEST-----\n"
    before = server_ca.ct_size()
    response = post_csr(server_ca.url, server_ca.email_token(), broken_pem.encode())
    body = _refused(server_ca, response, UNVERIFIED, before=before)
    assert body["details"][0]["reason"] == "csr-signature-invalid"


def test_csr_not_pem_is_refused(server_ca):
    before = server_ca.ct_size()
    response = post_csr(server_ca.url, server_ca.email_token(), b"invalid")
    _refused(server_ca, response, UNPARSEABLE_CSR, before=before)


def test_csr_p384_signed_with_sha256_is_not_permitted(server_ca):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP384R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    pem = csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    before = server_ca.ct_size()
    response = post_csr(server_ca.url, server_ca.email_token(), pem)
    _refused(
        server_ca,
        response,
        "signing algorithm not permitted: *ecdsa.PublicKey, SHA-256",
        before=before,
    )


def test_missing_public_key_is_refused(server_ca):
    before = server_ca.ct_size()
    body = {"credentials": {"oidcIdentityToken": server_ca.email_token()}}
    response = requests.post(f"{server_ca.url}/api/v2/signingCert", json=body, timeout=30)
    _refused(server_ca, response, UNPARSEABLE_KEY, before=before)


def test_body_of_10_mib_is_refused_before_parsing(server_ca):
    before = server_ca.ct_size()
    response = requests.post(
        f"{server_ca.url}/api/v2/signingCert",
        data=b"{" + b" " * (10 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    body = _refused(
        server_ca,
        response,
        "request body too large: the limit is 262144 bytes",
        before=before,
    )
    assert body["details"][0]["reason"] == "too-large"


def test_malformed_json_is_refused(server_ca):
    before = server_ca.ct_size()
    response = requests.post(
        f"{server_ca.url}/api/v2/signingCert",
        data=b'{"certificateSigningRequest": ',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    _refused(server_ca, response, "The request body is not valid JSON", before=before)


def test_both_key_forms_at_once_is_refused(server_ca):
    key = p256()
    body = {
        "credentials": {"oidcIdentityToken": server_ca.email_token()},
        "certificateSigningRequest": b64(csr_pem(key)),
        "publicKeyRequest": {"publicKey": {"content": "x"}, "proofOfPossession": "AA=="},
    }
    before = server_ca.ct_size()
    response = requests.post(f"{server_ca.url}/api/v2/signingCert", json=body, timeout=30)
    _refused(server_ca, response, "proto: oneof key is already set", before=before)


def test_missing_token_is_refused(server_ca):
    before = server_ca.ct_size()
    response = post_csr(server_ca.url, None, csr_pem(p256()))
    _refused(server_ca, response, TOKEN_ERROR, before=before)


def test_missing_token_v1_is_refused(server_ca):
    before = server_ca.ct_size()
    response = requests.post(
        f"{server_ca.url}/api/v1/signingCert",
        json={"certificateSigningRequest": b64(csr_pem(p256()))},
        timeout=30,
    )
    _refused(server_ca, response, TOKEN_ERROR, before=before)


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "mallory@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _unsigned(server, algorithm: str) -> str:
    claims = server.issuer.email_claims("alice@example.com")
    now = int(datetime.now(UTC).timestamp())
    claims.update(iss=server.issuer.issuer_url, aud="sigstore", iat=now, exp=now + 600)
    key = "an-hmac-key-that-is-long-enough-for-sha256" if algorithm == "HS256" else None
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": server.issuer.kid})


def _hs256_with_public_key(server) -> str:
    """The key-confusion attack: HMAC keyed with the issuer's own public key (PEM)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    jwk = json.dumps(server.issuer.jwks()["keys"][0])
    public_pem = jwt.algorithms.RSAAlgorithm.from_jwk(jwk).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(datetime.now(UTC).timestamp())
    claims = {
        **server.issuer.email_claims("alice@example.com"),
        "iss": server.issuer.issuer_url,
        "aud": "sigstore",
        "iat": now,
        "exp": now + 600,
    }

    def part(value: dict) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'kid': server.issuer.kid})}.{part(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _unknown_kid(server) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(datetime.now(UTC).timestamp())
    claims = {
        **server.issuer.email_claims("alice@example.com"),
        "iss": server.issuer.issuer_url,
        "aud": "sigstore",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, other, algorithm="RS256", headers={"kid": "not-a-known-kid"})


TOKEN_CASES = {
    "expired-token": lambda s: s.email_token(expires_in=-600),
    "wrong-audience": lambda s: s.email_token(audience="not-sigstore"),
    "untrusted-issuer": lambda s: s.issuer.mint(
        s.issuer.email_claims("alice@example.com"),
        issuer_url="https://issuer.invalid",
        now=datetime.now(UTC),
    ),
    "email-unverified": lambda s: s.email_token(claims={"email_verified": False}),
    "tampered-payload": lambda s: _tampered(s.email_token()),
    "alg-none": lambda s: _unsigned(s, "none"),
    "alg-hs256": lambda s: _unsigned(s, "HS256"),
    "not-a-jwt": lambda s: "not.a-jwt",
    "two-part-token": lambda s: ".".join(s.email_token().split(".")[:2]),
    "hs256-with-public-key": _hs256_with_public_key,
    "unknown-kid": _unknown_kid,
    "not-yet-valid": lambda s: s.issuer.mint(
        s.issuer.email_claims("alice@example.com"),
        issuer_url=s.issuer.issuer_url,
        now=datetime.now(UTC) + timedelta(hours=1),
    ),
    "too-many-dots": lambda s: s.email_token() + ".x.y",
}


@pytest.mark.parametrize("case", list(TOKEN_CASES))
def test_token_refused_through_api(server_ca, case):
    token = TOKEN_CASES[case](server_ca)
    key = p256()
    before = server_ca.ct_size()
    body = _refused(
        server_ca, post_csr(server_ca.url, token, csr_pem(key)), TOKEN_ERROR, before=before
    )
    info = body["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["reason"] and info["metadata"]["detail"]
    proof = key.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    _refused(
        server_ca, post_public_key(server_ca.url, token, key, proof), TOKEN_ERROR, before=before
    )


def test_chunked_body_over_the_limit_is_refused(server_ca):
    def chunks():
        for _ in range(40):
            yield b" " * (256 * 1024)

    before = server_ca.ct_size()
    response = requests.post(
        f"{server_ca.url}/api/v2/signingCert",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    _refused(
        server_ca, response, "request body too large: the limit is 262144 bytes", before=before
    )


def test_oversized_token_is_refused(server_ca):
    token = "e" * (100 * 1024)
    key = p256()
    before = server_ca.ct_size()
    proof = key.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    response = post_public_key(server_ca.url, token, key, proof)
    body = _refused(server_ca, response, TOKEN_ERROR, before=before)
    assert body["details"][0]["reason"]


def test_one_mib_token_is_refused_with_the_body(server_ca):
    key = p256()
    before = server_ca.ct_size()
    proof = key.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    response = post_public_key(server_ca.url, "e" * (1024 * 1024), key, proof)
    _refused(
        server_ca, response, "request body too large: the limit is 262144 bytes", before=before
    )
