"""Embedded SCT check: the leaf was submitted to a CT log the trusted root lists."""

from __future__ import annotations

import functools
import hashlib
import struct
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cli.verify.certs import extension_value
from cli.verify.errors import VerificationError

if TYPE_CHECKING:
    from cryptography import x509

    from cli.trust import LogKey

MAX_SCTS = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_sct(
    leaf: x509.Certificate, issuer: x509.Certificate, *, ctlogs: dict[bytes, LogKey]
) -> None:
    """Check that at least one embedded SCT verifies against a trusted CT log key.

    SCTs from logs the trusted root does not list are ignored (a CA may log to several); an SCT
    from a listed log must verify, and the log key must be valid at the SCT's time.

    Raises:
        VerificationError("sct"): no SCT, a bad SCT from a trusted log, or none trusted.
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import ExtensionOID

    # By OID: get_extension_for_class makes an ABC isinstance check per extension, some
    # thirty on a Fulcio leaf, which cost a third of this check's own time.
    try:
        scts = extension_value(leaf, ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS)
    except ValueError as exc:
        raise VerificationError("sct", f"the embedded SCT list is malformed: {exc}") from exc
    if scts is None:
        raise VerificationError("sct", "the signing certificate has no embedded SCT")
    if len(scts) > MAX_SCTS:
        raise VerificationError("sct", f"the certificate embeds more than {MAX_SCTS} SCTs")

    issuer_key_hash = _key_hash(issuer)
    tbs = leaf.tbs_precertificate_bytes
    verified = 0
    unknown: list[str] = []
    for sct in scts:
        log = ctlogs.get(sct.log_id)
        if log is None:
            unknown.append(sct.log_id.hex())
            continue
        when = _sct_time(sct)
        if not log.valid_for.contains(when):
            raise VerificationError(
                "sct",
                f"SCT time {when.isoformat()} is outside the validity "
                f"{log.valid_for.describe()} of CT log {log.base_url}",
            )
        if sct.entry_type != x509.certificate_transparency.LogEntryType.PRE_CERTIFICATE:
            raise VerificationError("sct", "embedded SCT is not of the precertificate type")
        signed = _signed_data(sct, issuer_key_hash, tbs)
        try:
            log.verify(sct.signature, signed)
        except InvalidSignature as exc:
            raise VerificationError(
                "sct", f"SCT signature does not verify with CT log key {log.base_url}"
            ) from exc
        verified += 1
    if verified == 0:
        logs = ", ".join(unknown) or "none"
        raise VerificationError(
            "sct", f"no SCT is from a CT log in the trusted root (SCT log IDs: {logs})"
        )


@functools.lru_cache(maxsize=64)
def _key_hash(issuer: x509.Certificate) -> bytes:
    """SHA-256 of the issuer's SubjectPublicKeyInfo (RFC 6962 `issuer_key_hash`).

    Cached: the issuers are the trusted root's few CA certificates, and re-encoding the key
    for every bundle was a measurable share of verification (bench/verify.py).
    """
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def _signed_data(sct: object, issuer_key_hash: bytes, tbs: bytes) -> bytes:
    """The RFC 6962 §3.2 `digitally-signed` struct for a precertificate SCT."""
    timestamp_ms = (_sct_time(sct) - _EPOCH) // timedelta(milliseconds=1)
    extensions = sct.extension_bytes  # type: ignore[attr-defined]
    return b"".join(
        (
            b"\x00\x00",  # version v1, signature type certificate_timestamp
            struct.pack(">Q", timestamp_ms),
            b"\x00\x01",  # entry type precert_entry
            issuer_key_hash,
            len(tbs).to_bytes(3, "big"),
            tbs,
            struct.pack(">H", len(extensions)),
            extensions,
        )
    )


def _sct_time(sct: object) -> datetime:
    """The SCT timestamp as an aware UTC datetime (cryptography returns it naive, in UTC)."""
    return sct.timestamp.replace(tzinfo=UTC)  # type: ignore[attr-defined]
