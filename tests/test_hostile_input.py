"""Hostile input at the Rekor v1 log's entry parsers: always a 400 in Rekor's error body.

Certificates with a SubjectAltName that no verifier can read are refused as Rekor refuses them
(Go's x509 parser rejects a malformed SAN and a non-IA5 name), for every entry kind that carries
a certificate. The CA, CT and development-issuer parsers are covered in
tests/ca/test_hostile_input.py.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from tests.conftest import serve_wsgi
from tests.tlog.conftest import RekorServer, Signer, build_app, dsse_request

ARTIFACT = b"hostile input"


@pytest.fixture
def rekor(tmp_path: Path) -> Iterator[RekorServer]:
    key = ec.generate_private_key(ec.SECP256R1())
    app, service = build_app(tmp_path / "rekor.db", key)
    with serve_wsgi(app) as url:
        yield RekorServer(url, service, key)


def _signer_with_san(san_der: bytes) -> Signer:
    """A self-signed code-signing leaf whose SubjectAltName extension is exactly `san_der`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, san_der),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Signer(key, cert)


def _general_name(tag: int, value: bytes) -> bytes:
    return bytes([tag, len(value)]) + value


def _sequence(*names: bytes) -> bytes:
    body = b"".join(names)
    return bytes([0x30, len(body)]) + body


SAN_CASES = [
    pytest.param(
        b"\x30\x03\x81\x01",
        "certificate has a malformed SubjectAltName extension",
        id="truncated",
    ),
    pytest.param(
        _sequence(_general_name(0x81, "josé@example.com".encode("latin-1"))),
        "certificate has a malformed SubjectAltName extension",
        id="rfc822-latin1",
    ),
    pytest.param(
        _sequence(_general_name(0x81, "josé@example.com".encode())),
        "certificate SubjectAltName has a non-ASCII name",
        id="rfc822-utf8",
    ),
    pytest.param(
        _sequence(_general_name(0x86, "https://exämple.com/x".encode())),
        "certificate SubjectAltName has a non-ASCII name",
        id="uri-utf8",
    ),
    pytest.param(
        _sequence(_general_name(0x82, "exämple.com".encode())),
        "certificate SubjectAltName has a non-ASCII name",
        id="dns-utf8",
    ),
]


def _dsse(signer: Signer) -> dict:
    return dsse_request(signer.envelope(b'{"_type": "x"}'), signer.cert_pem)


def _hashedrekord(signer: Signer) -> dict:
    return signer.hashedrekord(ARTIFACT)


def _intoto(signer: Signer) -> dict:
    """Rekor's intoto 0.0.2 request: payload and signatures base64-encoded twice."""
    envelope = signer.envelope(b'{"_type": "x"}')

    def double(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    signature = {
        "sig": double(envelope["signatures"][0]["sig"]),
        "publicKey": base64.b64encode(signer.cert_pem).decode(),
    }
    return {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": envelope["payloadType"],
                    "payload": double(envelope["payload"]),
                    "signatures": [signature],
                },
                "hash": {"algorithm": "sha256", "value": "ab" * 32},
            }
        },
    }


@pytest.mark.parametrize(
    "kind", [_hashedrekord, _dsse, _intoto], ids=["hashedrekord", "dsse", "intoto"]
)
@pytest.mark.parametrize(("san_der", "message"), SAN_CASES)
def test_unreadable_subject_alt_name_is_refused(rekor, kind, san_der: bytes, message: str) -> None:
    response = rekor.post("/api/v1/log/entries", kind(_signer_with_san(san_der)))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400
    assert body["message"].startswith(f"error processing entry: {message}"), body
    assert rekor.size() == 0


def test_ascii_subject_alt_name_is_logged_and_searchable(rekor) -> None:
    """The control: the same hand-built extension with an ASCII email is logged and indexed."""
    signer = _signer_with_san(_sequence(_general_name(0x81, b"jose@example.com")))
    response = rekor.post("/api/v1/log/entries", _hashedrekord(signer))
    assert response.status_code == 201, response.text
    found = rekor.post("/api/v1/index/retrieve", {"email": "JOSE@example.com"})
    assert found.status_code == 200, found.text
    assert len(found.json()) == 1
