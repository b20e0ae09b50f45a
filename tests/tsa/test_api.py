"""The TSA over HTTP, as sigstore-python and sigstore-js call it, and its listing in the dev
server's trusted root."""

from __future__ import annotations

import base64
import hashlib
import json

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rfc3161_client import TimestampRequestBuilder, VerifierBuilder, decode_timestamp_response

from keyless.tsa import DEFAULT_POLICY_OID
from keyless.tsa.request import MAX_DER_REQUEST_BYTES

SIGNATURE = b"signature over an artifact"
QUERY = {"Content-Type": "application/timestamp-query"}


def _verify(chain, response, nonce) -> bool:
    return (
        VerifierBuilder()
        .tsa_certificate(chain[0])
        .add_root_certificate(chain[-1])
        .policy_id(x509.ObjectIdentifier(DEFAULT_POLICY_OID))
        .nonce(nonce)
        .build()
        .verify_message(response, SIGNATURE)
    )


def _chain(url: str) -> list[x509.Certificate]:
    reply = requests.get(f"{url}/api/v1/timestamp/certchain", timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/pem-certificate-chain"
    return x509.load_pem_x509_certificates(reply.content)


def test_der_request_gets_a_verifiable_token(tsa_url, authority) -> None:
    request = TimestampRequestBuilder().data(SIGNATURE).nonce(nonce=True).build()
    reply = requests.post(
        f"{tsa_url}/api/v1/timestamp", data=request.as_bytes(), headers=QUERY, timeout=5
    )
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/timestamp-reply"
    assert reply.headers["Cache-Control"] == "no-store"
    chain = _chain(tsa_url)
    assert chain == list(authority.chain)
    assert _verify(chain, decode_timestamp_response(reply.content), request.nonce)


def test_json_request_with_charset_gets_a_verifiable_token(tsa_url) -> None:
    body = {
        "artifactHash": base64.b64encode(hashlib.sha256(SIGNATURE).digest()).decode(),
        "hashAlgorithm": "sha256",
        "certificates": False,
        "nonce": 42,
    }
    reply = requests.post(
        f"{tsa_url}/api/v1/timestamp",
        data=json.dumps(body),
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=5,
    )
    assert reply.status_code == 200
    assert _verify(_chain(tsa_url), decode_timestamp_response(reply.content), 42)


def test_bad_request_is_an_rfc3161_rejection_not_a_500(tsa_url) -> None:
    reply = requests.post(
        f"{tsa_url}/api/v1/timestamp", data=b"\x30\x00garbage", headers=QUERY, timeout=5
    )
    assert reply.status_code == 400
    assert reply.headers["Content-Type"] == "application/timestamp-reply"
    assert decode_timestamp_response(reply.content).status == 2


def test_oversized_request_is_refused_unread(tsa_url) -> None:
    reply = requests.post(
        f"{tsa_url}/api/v1/timestamp",
        data=b"\x30" * (MAX_DER_REQUEST_BYTES + 1),
        headers=QUERY,
        timeout=5,
    )
    assert reply.status_code == 413
    assert decode_timestamp_response(reply.content).status == 2


def test_other_content_types_are_415(tsa_url) -> None:
    for content_type in ("text/plain", "application/octet-stream", None):
        headers = {"Content-Type": content_type} if content_type else {}
        reply = requests.post(f"{tsa_url}/api/v1/timestamp", data=b"x", headers=headers, timeout=5)
        assert reply.status_code == 415
        assert "timestamp-query" in reply.json()["message"]


def test_dev_server_lists_its_tsa_in_the_trusted_root(server, tmp_path) -> None:
    from sigstore.models import TrustedRoot

    document = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=5).json()
    [authority] = document["timestampAuthorities"]
    assert authority["uri"] == f"{server.url}/api/v1/timestamp"
    listed = [base64.b64decode(cert["rawBytes"]) for cert in authority["certChain"]["certificates"]]
    chain = _chain(server.url)
    assert listed == [cert.public_bytes(serialization.Encoding.DER) for cert in chain]
    assert len(listed) == 2
    start = chain[0].not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert authority["validFor"] == {"start": start}
    # The reference client loads it and builds its timestamp verifiers from it.
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(document))
    assert len(TrustedRoot.from_file(str(path)).get_timestamp_authorities()) == 1


def test_dev_server_keeps_its_tsa_key_private(server) -> None:
    state = server.config.state_dir
    assert (state / "tsa-key.pem").stat().st_mode & 0o777 == 0o600
