"""Embedded SCT check: the leaf was submitted to a CT log the trusted root lists."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from keyless.client.verify.certs import extension_value
from keyless.client.verify.errors import VerificationError
from keyless.core.encoding import format_rfc3339
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from cryptography import x509

    from keyless.client.trust import LogKey

MAX_SCTS = 16
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)


def check_sct(
    leaf: x509.Certificate, issuer: x509.Certificate, *, ctlogs: dict[bytes, LogKey]
) -> None:
    """Check that at least one embedded SCT verifies against a trusted CT log key.

    SCTs from logs the trusted root does not list are ignored (a CA may log to several); an SCT
    from a listed log must verify, and the log key must be valid at the SCT's time.

    Raises:
        VerificationError("sct"): no SCT, a bad SCT from a trusted log, or none trusted.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.certificate_transparency import LogEntryType
    from cryptography.x509.oid import ExtensionOID

    # By OID: get_extension_for_class makes an ABC isinstance check per extension, some
    # thirty on a Fulcio leaf, which cost a third of this check's own time.
    try:
        scts = extension_value(leaf, ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS)
    except ValueError as exc:
        raise VerificationError(
            reason=Reason.SCT, detail=f"the embedded SCT list is malformed: {exc}"
        ) from exc
    if scts is None:
        raise VerificationError(
            reason=Reason.SCT, detail="the signing certificate has no embedded SCT"
        )
    if len(scts) > MAX_SCTS:
        raise VerificationError(
            reason=Reason.SCT, detail=f"the certificate embeds more than {MAX_SCTS} SCTs"
        )

    issuer_key_hash = _key_hash(issuer)
    tbs = leaf.tbs_precertificate_bytes
    verified = 0
    unknown: list[str] = []
    for sct in scts:
        log = ctlogs.get(sct.log_id)
        if log is None:
            unknown.append(sct.log_id.hex())
            continue
        stamp = sct.timestamp  # naive UTC, read once: each read builds a new datetime
        when = stamp.replace(tzinfo=UTC)
        if not log.valid_for.contains(when):
            raise VerificationError(
                reason=Reason.SCT,
                detail=f"SCT time {format_rfc3339(when)} is outside the validity "
                f"{log.valid_for.describe()} of CT log {log.base_url}",
            )
        if sct.entry_type != LogEntryType.PRE_CERTIFICATE:
            raise VerificationError(
                reason=Reason.SCT, detail="embedded SCT is not of the precertificate type"
            )
        signed = _signed_data(sct, (stamp - _NAIVE_EPOCH) // _MILLISECOND, issuer_key_hash, tbs)
        try:
            log.verify(sct.signature, signed)
        except InvalidSignature as exc:
            raise VerificationError(
                reason=Reason.SCT,
                detail=f"SCT signature does not verify with CT log key {log.base_url}",
            ) from exc
        verified += 1
    if verified == 0:
        logs = ", ".join(unknown) or "none"
        raise VerificationError(
            reason=Reason.SCT,
            detail=f"no SCT is from a CT log in the trusted root (SCT log IDs: {logs})",
        )


# Issuer key hashes by id() of the issuer certificate, which each entry holds (so the id is
# not reused while it exists); the issuers are the trusted root's few CA certificates, and
# path validation hands back those very objects.
_key_hashes: dict[int, tuple[x509.Certificate, bytes]] = {}
MAX_KEY_HASHES = 64


def _key_hash(issuer: x509.Certificate) -> bytes:
    """SHA-256 of the issuer's SubjectPublicKeyInfo (RFC 6962 `issuer_key_hash`).

    Cached: re-encoding the key for every bundle was a measurable share of verification
    (bench/verify.py), and so was hashing the certificate for a cache keyed by value.
    """
    hit = _key_hashes.get(id(issuer))
    if hit is not None and hit[0] is issuer:
        return hit[1]
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(spki).digest()
    if len(_key_hashes) >= MAX_KEY_HASHES:
        _key_hashes.clear()
    _key_hashes[id(issuer)] = (issuer, digest)
    return digest


def _signed_data(sct: object, timestamp_ms: int, issuer_key_hash: bytes, tbs: bytes) -> bytes:
    """The RFC 6962 §3.2 `digitally-signed` struct for a precertificate SCT."""
    extensions = sct.extension_bytes  # type: ignore[attr-defined]
    return b"".join(
        (
            # version v1, signature type certificate_timestamp, the time, entry type precert
            b"\x00\x00" + timestamp_ms.to_bytes(8, "big") + b"\x00\x01",
            issuer_key_hash,
            len(tbs).to_bytes(3, "big"),
            tbs,
            len(extensions).to_bytes(2, "big"),
            extensions,
        )
    )
