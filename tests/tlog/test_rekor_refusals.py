"""Bad entries over HTTP: each is refused with Rekor's error body and the log does not grow."""

from __future__ import annotations

import base64
import copy
import hashlib
import json

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.tlog.conftest import RekorServer, Signer, dsse_request, hashedrekord, make_signer

ARTIFACT = b"the artifact"


def _set(request: dict, path: str, value: object) -> dict:
    changed = copy.deepcopy(request)
    *parents, last = path.split(".")
    target = changed
    for part in parents:
        target = target[part]
    target[last] = value
    return changed


def _pem_key(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _bad_signature(s: Signer) -> dict:
    other = s.key.sign(b"another artifact", ec.ECDSA(hashes.SHA256()))
    return _set(
        s.hashedrekord(ARTIFACT), "spec.signature.content", base64.b64encode(other).decode()
    )


def _rsa_1024(s: Signer) -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    from cryptography.hazmat.primitives.asymmetric import padding

    sig = key.sign(ARTIFACT, padding.PKCS1v15(), hashes.SHA256())
    return hashedrekord(hashlib.sha256(ARTIFACT).hexdigest(), sig, _pem_key(key))


def _ed25519(s: Signer) -> dict:
    key = ed25519.Ed25519PrivateKey.generate()
    return hashedrekord(hashlib.sha256(ARTIFACT).hexdigest(), key.sign(ARTIFACT), _pem_key(key))


def _chain(s: Signer) -> dict:
    return s.hashedrekord(ARTIFACT, pem=s.cert_pem + make_signer().cert_pem)


def _dsse_bad_signature(s: Signer) -> dict:
    envelope = s.envelope(b'{"a":1}')
    envelope["payload"] = base64.b64encode(b'{"a":2}').decode()
    return dsse_request(envelope, s.cert_pem)


def _dsse_wrong_verifier(s: Signer) -> dict:
    return dsse_request(s.envelope(b"{}"), make_signer().cert_pem)


def _edited(path: str, value: object, message: str, id: str):
    """A case: a good hashedrekord with one field (dotted `path`) set to `value`."""
    return pytest.param(lambda s: _set(s.hashedrekord(ARTIFACT), path, value), message, id=id)


BAD_HASH = "invalid value for hash: data.hash must be lowercase hex of"
UPPERCASE_DIGEST = hashlib.sha256(ARTIFACT).hexdigest().upper()
NOT_PEM = base64.b64encode(b"not a pem").decode()
ONE_PEM = "public key must be one PEM CERTIFICATE or PUBLIC KEY block"
DSSE_UNVERIFIED = "all signatures must have a key that verifies it"

CASES = [
    pytest.param(
        _bad_signature, "signature does not verify against the digest", id="bad-signature"
    ),
    _edited("spec.data.hash.value", "ab" * 31, f"{BAD_HASH} sha256", "wrong-digest-length"),
    _edited(
        "spec.data.hash.algorithm",
        "sha384",
        f"{BAD_HASH} sha384",
        "digest-length-for-other-algorithm",
    ),
    _edited(
        "spec.data.hash.algorithm",
        "md5",
        "data.hash algorithm must be one of sha256, sha384, sha512",
        "unknown-digest-algorithm",
    ),
    _edited("spec.data.hash.value", UPPERCASE_DIGEST, f"{BAD_HASH} sha256", "uppercase-digest"),
    _edited("kind", "rekord", "unsupported entry kind 'rekord' version '0.0.1'", "unknown-kind"),
    _edited(
        "apiVersion",
        "0.0.2",
        "unsupported entry kind 'hashedrekord' version '0.0.2'",
        "unknown-version",
    ),
    _edited(
        "spec.signature.content",
        "MEUC!!==",
        "signature content is not valid base64",
        "malformed-base64-signature",
    ),
    _edited(
        "spec.signature.publicKey.content",
        "LS0t\nLS0",
        "publicKey content is not valid base64",
        "malformed-base64-key",
    ),
    _edited("spec.signature.publicKey.content", NOT_PEM, ONE_PEM, "not-pem"),
    pytest.param(_chain, ONE_PEM, id="certificate-chain"),
    pytest.param(_rsa_1024, "RSA key size 1024 is not allowed", id="rsa-1024"),
    pytest.param(
        _ed25519, "ed25519 keys are not supported for hashedrekord entries", id="ed25519-key"
    ),
    _edited("spec.extra", "x", "spec has unknown field 'extra'", "unknown-field"),
    _edited(
        "spec.signature",
        {"content": "AAAA"},
        "signature is missing 'publicKey'",
        "missing-public-key",
    ),
    pytest.param(lambda s: [1, 2], "entry must be a JSON object", id="not-an-object"),
    pytest.param(_dsse_bad_signature, DSSE_UNVERIFIED, id="dsse-bad-signature"),
    pytest.param(_dsse_wrong_verifier, DSSE_UNVERIFIED, id="dsse-wrong-verifier"),
    pytest.param(
        lambda s: _set(
            dsse_request(s.envelope(b"{}"), s.cert_pem),
            "spec.proposedContent.envelope",
            "{not json",
        ),
        "DSSE envelope is not valid JSON",
        id="dsse-envelope-not-json",
    ),
]


@pytest.mark.parametrize(("build", "message"), CASES)
def test_bad_entry_is_refused(rekor: RekorServer, signer: Signer, build, message: str) -> None:
    response = rekor.post("/api/v1/log/entries", build(signer))
    assert response.status_code == 400, response.text
    assert response.json() == {"code": 400, "message": f"error processing entry: {message}"}
    assert rekor.size() == 0
    assert rekor.get("/api/v1/log").json()["treeSize"] == 0


def test_ten_mib_body_is_refused(rekor: RekorServer, signer: Signer) -> None:
    request = signer.hashedrekord(ARTIFACT)
    request["padding"] = "x" * (10 * 1024 * 1024)
    response = requests.post(
        rekor.url + "/api/v1/log/entries",
        data=json.dumps(request),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json() == {"code": 413, "message": "request body is larger than 2097152 bytes"}
    assert rekor.size() == 0


def test_chunked_oversized_body_is_refused(rekor: RekorServer) -> None:
    chunks = (b"x" * 65536 for _ in range(40))
    response = requests.post(rekor.url + "/api/v1/log/entries", data=chunks, timeout=60)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413
    assert response.json() == {"code": 413, "message": "request body is larger than 2097152 bytes"}
    assert rekor.size() == 0


def test_malformed_json_is_refused(rekor: RekorServer) -> None:
    for body in (b"{", b'{"kind": NaN}', b"\xff\xfe", b'{"a": 1, "a": 2}'):
        response = requests.post(rekor.url + "/api/v1/log/entries", data=body, timeout=30)
        assert response.status_code == 400
        assert response.json()["code"] == 400
    assert rekor.size() == 0


def test_duplicate_entry_is_refused(rekor: RekorServer, signer: Signer) -> None:
    request = signer.hashedrekord(ARTIFACT)
    first = rekor.post("/api/v1/log/entries", request)
    assert first.status_code == 201
    entry_id = next(iter(first.json()))
    again = rekor.post("/api/v1/log/entries", request)
    assert again.status_code == 409
    assert again.json() == {
        "code": 409,
        "message": "an equivalent entry already exists in the transparency log with UUID "
        + entry_id,
    }
    assert again.headers["Location"] == f"/api/v1/log/entries/{entry_id}"
    assert rekor.size() == 1
