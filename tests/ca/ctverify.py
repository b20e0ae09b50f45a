"""An independent RFC 6962 SCT verifier for tests, built only on `cryptography`.

It uses `cryptography`'s SCT parsing and `tbs_precertificate_bytes`, never the CA's or the log's
own code, so it is an oracle for both.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.certificate_transparency import (
    LogEntryType,
    SignedCertificateTimestamp,
    Version,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def spki_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def embedded_scts(cert: x509.Certificate) -> list[SignedCertificateTimestamp]:
    extension = cert.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps
    )
    return list(extension.value)


def sct_timestamp_ms(sct: SignedCertificateTimestamp) -> int:
    # cryptography gives a naive UTC datetime holding whole milliseconds.
    return (sct.timestamp.replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)


def verify_embedded_sct(
    cert: x509.Certificate,
    *,
    issuer: x509.Certificate,
    log_key: ec.EllipticCurvePublicKey,
    sct: SignedCertificateTimestamp | None = None,
) -> SignedCertificateTimestamp:
    """Check the (first) embedded SCT of `cert` with the log key; returns the SCT.

    Raises:
        AssertionError: the SCT is not a v1 precert SCT from this log.
        cryptography.exceptions.InvalidSignature: the signature does not verify.
    """
    sct = sct or embedded_scts(cert)[0]
    assert sct.version == Version.v1
    assert sct.entry_type == LogEntryType.PRE_CERTIFICATE
    assert sct.log_id == hashlib.sha256(spki_der(log_key)).digest()
    assert isinstance(sct.signature_hash_algorithm, hashes.SHA256)
    tbs = cert.tbs_precertificate_bytes
    signed = (
        b"\x00\x00"
        + struct.pack(">QH", sct_timestamp_ms(sct), 1)
        + hashlib.sha256(spki_der(issuer.public_key())).digest()
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack(">H", len(sct.extension_bytes))
        + sct.extension_bytes
    )
    log_key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
    return sct


def verify_x509_sct(
    cert_der: bytes, *, timestamp_ms: int, extensions: bytes, signature: bytes, log_key
) -> None:
    """Check an SCT over an X.509 entry (a detached SCT or an `x509_entry` proof)."""
    signed = (
        b"\x00\x00"
        + struct.pack(">QH", timestamp_ms, 0)
        + len(cert_der).to_bytes(3, "big")
        + cert_der
        + struct.pack(">H", len(extensions))
        + extensions
    )
    log_key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
