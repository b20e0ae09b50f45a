"""The certificate-transparency project's SCT vectors, through the same verifier as our SCTs."""

from __future__ import annotations

import struct

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from tests.ca.ctverify import sct_timestamp_ms, verify_embedded_sct, verify_x509_sct

# (certificate, issuer for issuer_key_hash, SCT timestamp in ms), from the vectors' README.
VALID = [
    ("test-embedded-cert.pem", "ca-cert.pem", 1365181456275),
    ("test-embedded-with-preca-cert.pem", "ca-cert.pem", 1365181456475),
    ("test-embedded-with-intermediate-cert.pem", "intermediate-cert.pem", 1365181457060),
    ("test-embedded-with-intermediate-preca-cert.pem", "intermediate-cert.pem", 1365181457342),
]


@pytest.fixture(scope="module")
def testdata(vectors):
    return vectors / "certificate-transparency" / "test" / "testdata"


@pytest.fixture(scope="module")
def log_key(testdata):
    return serialization.load_pem_public_key((testdata / "ct-server-key-public.pem").read_bytes())


def _cert(testdata, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((testdata / name).read_bytes())


@pytest.mark.parametrize(("name", "issuer", "timestamp_ms"), VALID, ids=[v[0] for v in VALID])
def test_embedded_sct_vector_verifies(testdata, log_key, name, issuer, timestamp_ms):
    sct = verify_embedded_sct(
        _cert(testdata, name), issuer=_cert(testdata, issuer), log_key=log_key
    )
    assert sct_timestamp_ms(sct) == timestamp_ms


def test_invalid_embedded_sct_vector_is_refused(testdata, log_key):
    cert = _cert(testdata, "test-invalid-embedded-cert.pem")
    with pytest.raises(InvalidSignature):
        verify_embedded_sct(cert, issuer=_cert(testdata, "ca-cert.pem"), log_key=log_key)


def test_embedded_sct_with_wrong_issuer_is_refused(testdata, log_key):
    cert = _cert(testdata, "test-embedded-with-intermediate-cert.pem")
    with pytest.raises(InvalidSignature):
        verify_embedded_sct(cert, issuer=_cert(testdata, "ca-cert.pem"), log_key=log_key)


def test_x509_sct_vector_verifies(testdata, log_key):
    proof = (testdata / "test-cert.proof").read_bytes()
    assert proof[0] == 0
    (timestamp_ms, ext_len) = struct.unpack(">QH", proof[33:43])
    extensions = proof[43 : 43 + ext_len]
    rest = proof[43 + ext_len :]
    assert rest[:2] == b"\x04\x03"
    (sig_len,) = struct.unpack(">H", rest[2:4])
    signature = rest[4 : 4 + sig_len]
    assert len(rest) == 4 + sig_len
    der = _cert(testdata, "test-cert.pem").public_bytes(serialization.Encoding.DER)
    verify_x509_sct(
        der, timestamp_ms=timestamp_ms, extensions=extensions, signature=signature, log_key=log_key
    )
    with pytest.raises(InvalidSignature):
        verify_x509_sct(
            der,
            timestamp_ms=timestamp_ms + 1,
            extensions=extensions,
            signature=signature,
            log_key=log_key,
        )
