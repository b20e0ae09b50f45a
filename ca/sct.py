"""Precertificates and embedded SCTs (RFC 6962 §3), the CA's half of certificate transparency.

The precertificate is the leaf builder plus the critical poison extension, last. The final
certificate is the same builder plus the SCT-list extension, last, signed by the same key, so
its TBS minus the SCT list is byte-identical to the precertificate's TBS minus the poison, and
the log's SCT verifies against it (`cryptography`'s `tbs_precertificate_bytes` is the oracle).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from keyless.ca.signers import CASigner
from keyless.core.encoding import b64decode, b64encode

LOG_ID_BYTES = 32
MAX_SCT_EXTENSIONS_BYTES = 1024
MAX_SCT_SIGNATURE_BYTES = 1024
HASH_SHA256 = 4
SIGNATURE_ECDSA = 3
SIGNATURE_RSA = 1


class SCTFormatError(ValueError):
    """An SCT, or a CT log's AddChainResponse, is malformed."""


@dataclass(frozen=True)
class SCT:
    """A v1 signed certificate timestamp, as a CT log returns it."""

    log_id: bytes
    timestamp_ms: int
    extensions: bytes
    hash_algorithm: int
    signature_algorithm: int
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.log_id) != LOG_ID_BYTES:
            raise SCTFormatError(f"the log id must be {LOG_ID_BYTES} bytes")
        if not 0 <= self.timestamp_ms < 2**63:
            raise SCTFormatError("the SCT timestamp is out of range")
        if len(self.extensions) > MAX_SCT_EXTENSIONS_BYTES:
            raise SCTFormatError("the SCT extensions are too long")
        if not 0 < len(self.signature) <= MAX_SCT_SIGNATURE_BYTES:
            raise SCTFormatError("the SCT signature is empty or too long")
        if self.hash_algorithm != HASH_SHA256 or self.signature_algorithm not in (
            SIGNATURE_ECDSA,
            SIGNATURE_RSA,
        ):
            raise SCTFormatError("the SCT is not signed with ECDSA or RSA over SHA-256")

    @classmethod
    def from_add_chain_response(cls, response: Mapping[str, Any]) -> SCT:
        """The SCT in a CT log's JSON AddChainResponse (RFC 6962 §4.1).

        Raises:
            SCTFormatError: a field is missing, of the wrong type, or malformed.
        """
        if not isinstance(response, Mapping):
            raise SCTFormatError("the AddChainResponse is not a JSON object")
        if response.get("sct_version") != 0:
            raise SCTFormatError("only v1 SCTs (sct_version 0) are supported")
        timestamp = response.get("timestamp")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            raise SCTFormatError("the SCT timestamp is not an integer")
        signed = _b64(response, "signature")
        if len(signed) < 4 or struct.unpack(">H", signed[2:4])[0] != len(signed) - 4:
            raise SCTFormatError("the SCT signature is not a TLS DigitallySigned")
        return cls(
            log_id=_b64(response, "id"),
            timestamp_ms=timestamp,
            extensions=_b64(response, "extensions"),
            hash_algorithm=signed[0],
            signature_algorithm=signed[1],
            signature=signed[4:],
        )

    def digitally_signed(self) -> bytes:
        """The TLS DigitallySigned struct: hash, signature algorithm, length, signature."""
        return (
            bytes([self.hash_algorithm, self.signature_algorithm])
            + struct.pack(">H", len(self.signature))
            + self.signature
        )

    def serialize(self) -> bytes:
        """The TLS serialisation of the SCT (RFC 6962 §3.2), as embedded in certificates."""
        return (
            b"\x00"
            + self.log_id
            + struct.pack(">QH", self.timestamp_ms, len(self.extensions))
            + self.extensions
            + self.digitally_signed()
        )

    def to_add_chain_response(self) -> dict[str, Any]:
        """The JSON AddChainResponse, which Fulcio returns as a detached SCT."""
        return {
            "sct_version": 0,
            "id": b64encode(self.log_id),
            "timestamp": self.timestamp_ms,
            "extensions": b64encode(self.extensions),
            "signature": b64encode(self.digitally_signed()),
        }


def sct_list_extension(scts: Sequence[SCT]) -> x509.UnrecognizedExtension:
    """The SCT-list extension: an OCTET STRING holding the TLS SignedCertificateTimestampList."""
    items = b"".join(struct.pack(">H", len(s)) + s for s in (sct.serialize() for sct in scts))
    listing = struct.pack(">H", len(items)) + items
    return x509.UnrecognizedExtension(
        ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS, _octet_string(listing)
    )


def build_precertificate(builder: x509.CertificateBuilder, signer: CASigner) -> x509.Certificate:
    """The precertificate: the leaf with the critical poison extension last."""
    return signer.sign(builder.add_extension(x509.PrecertPoison(), critical=True))


def build_final_certificate(
    builder: x509.CertificateBuilder, signer: CASigner, scts: Sequence[SCT]
) -> x509.Certificate:
    """The final leaf: the same builder with the SCT list last, signed by the same key."""
    return signer.sign(builder.add_extension(sct_list_extension(scts), critical=False))


def check_embedded_sct(
    sct: SCT,
    *,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    log_key: ec.EllipticCurvePublicKey,
) -> None:
    """Check that `sct` is `log_key`'s valid SCT for the precertificate of `certificate`.

    The signed input is rebuilt from the final certificate (RFC 6962 §3.2), the way clients
    rebuild it, so a log answering for the wrong bytes is caught before anything is returned.

    Raises:
        SCTFormatError: the SCT is from another log or does not verify.
    """
    spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    log_spki = log_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if sct.log_id != hashlib.sha256(log_spki).digest():
        raise SCTFormatError("the SCT is from another CT log")
    tbs = certificate.tbs_precertificate_bytes
    signed = (
        b"\x00\x00"
        + struct.pack(">QH", sct.timestamp_ms, 1)
        + hashlib.sha256(spki).digest()
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack(">H", len(sct.extensions))
        + sct.extensions
    )
    try:
        log_key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SCTFormatError("the SCT signature does not verify") from exc


def _octet_string(content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        header = bytes([length])
    else:
        body = length.to_bytes((length.bit_length() + 7) // 8, "big")
        header = bytes([0x80 | len(body)]) + body
    return b"\x04" + header + content


def _b64(response: Mapping[str, Any], field: str) -> bytes:
    value = response.get(field)
    if not isinstance(value, str) or len(value) > 4 * MAX_SCT_SIGNATURE_BYTES:
        raise SCTFormatError(f"the AddChainResponse field {field!r} is not a base64 string")
    try:
        return b64decode(value)
    except ValueError as exc:
        raise SCTFormatError(f"the AddChainResponse field {field!r} is not base64") from exc
