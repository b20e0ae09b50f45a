"""Transparency-log evidence in a bundle: the SET, the signed checkpoint and the inclusion proof.

Merkle and signed-note checks are the pure functions of `tlog.merkle` and `tlog.checkpoint`;
this module maps their errors to verification checks and adds the Rekor-specific parts.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keyless.client.verify.errors import VerificationError
from keyless.core.encoding import b64encode, format_rfc3339
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from keyless.client.trust import LogKey
    from keyless.client.wire.bundle import TransparencyLogEntry
    from keyless.tlog.checkpoint import CheckpointVerifier


def find_log(entry: TransparencyLogEntry, *, tlogs: dict[bytes, LogKey]) -> LogKey:
    """The trusted log that the entry names by key ID.

    Raises:
        VerificationError("log-entry"): the log is not in the trusted root.
    """
    log = tlogs.get(entry.log_id.key_id)
    if log is None:
        raise VerificationError(
            reason=Reason.LOG_ENTRY,
            detail=f"log ID {b64encode(entry.log_id.key_id)} is not a transparency "
            "log in the trusted root",
            hint="is the bundle from another Sigstore instance? pass its --trusted-root",
        )
    return log


def check_inclusion_promise(entry: TransparencyLogEntry, *, log: LogKey) -> datetime:
    """Verify the signed entry timestamp; returns the integrated time it vouches for.

    Raises:
        VerificationError("signed-entry-timestamp"): missing time, bad signature, or the log
            key was not valid at the integrated time.
    """
    from cryptography.exceptions import InvalidSignature

    promise = entry.inclusion_promise
    if promise is None or entry.integrated_time is None:
        raise VerificationError(
            reason=Reason.SIGNED_ENTRY_TIMESTAMP, detail="log entry has no SET and time"
        )
    kind = (entry.kind_version.kind, entry.kind_version.version)
    if kind not in {("hashedrekord", "0.0.1"), ("dsse", "0.0.1"), ("intoto", "0.0.2")}:
        raise VerificationError(
            reason=Reason.SIGNED_ENTRY_TIMESTAMP,
            detail=f"a SET is not defined for {kind[0]}/{kind[1]} entries",
        )
    payload = set_payload(
        body=entry.canonicalized_body,
        integrated_time=entry.integrated_time,
        log_id=entry.log_id.key_id,
        log_index=entry.log_index,
    )
    try:
        log.verify(promise.signed_entry_timestamp, payload)
    except InvalidSignature as exc:
        raise VerificationError(
            reason=Reason.SIGNED_ENTRY_TIMESTAMP,
            detail=f"signed entry timestamp does not verify with the key of log {log.base_url}",
        ) from exc
    try:
        integrated = datetime.fromtimestamp(entry.integrated_time, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise VerificationError(
            reason=Reason.SIGNED_ENTRY_TIMESTAMP,
            detail=f"integrated time {entry.integrated_time} is out of range",
        ) from exc
    check_log_key_validity(log, integrated, what="integrated time")
    return integrated


# RFC 8785 writes an integer as ECMAScript writes a double: exactly only up to 2**53.
_EXACT_INTEGER = 2**53


def set_payload(*, body: bytes, integrated_time: int, log_id: bytes, log_index: int) -> bytes:
    """The RFC 8785 canonical JSON a SET signs: body (base64), integratedTime, logID (hex),
    logIndex, in that (sorted) order.

    Written out directly: its strings are base64 and hex, which JSON never escapes, and its
    integers are exact below 2**53, so this is byte for byte what `rfc8785.dumps` gives,
    which is left for the integers beyond (the general encoder cost a measurable share of
    each verification in bench/verify.py).
    """
    if not (0 <= integrated_time < _EXACT_INTEGER and 0 <= log_index < _EXACT_INTEGER):
        import rfc8785

        return rfc8785.dumps(
            {
                "body": b64encode(body),
                "integratedTime": integrated_time,
                "logID": log_id.hex(),
                "logIndex": log_index,
            }
        )
    return b'{"body":"%s","integratedTime":%d,"logID":"%s","logIndex":%d}' % (
        base64.b64encode(body),
        integrated_time,
        log_id.hex().encode(),
        log_index,
    )


def check_log_key_validity(log: LogKey, moment: datetime, *, what: str) -> None:
    """The log's key must have been valid at `moment` (the trusted root's validFor)."""
    if not log.valid_for.contains(moment):
        raise VerificationError(
            reason=Reason.LOG_ENTRY,
            detail=f"{what} {format_rfc3339(moment)} is outside the validity "
            f"{log.valid_for.describe()} of log {log.base_url}",
        )


def check_inclusion(entry: TransparencyLogEntry, *, log: LogKey) -> None:
    """Verify the signed checkpoint, then the inclusion proof against its root.

    Raises:
        VerificationError("checkpoint"): no proof or checkpoint, or the checkpoint is
            malformed or not signed by the log.
        VerificationError("inclusion-proof"): the proof disagrees with the checkpoint or does
            not hash up to its root.
    """
    from keyless.tlog import CheckpointError, ProofError, leaf_hash, verify_inclusion

    proof = entry.inclusion_proof
    if proof is None or proof.checkpoint is None:
        raise VerificationError(
            reason=Reason.CHECKPOINT, detail="inclusion proof has no checkpoint"
        )
    try:
        checkpoint = _checkpoint_verifier(log).verify(proof.checkpoint.envelope)
    except CheckpointError as exc:
        raise VerificationError(reason=Reason.CHECKPOINT, detail=exc.message) from exc
    except TypeError as exc:
        raise VerificationError(
            reason=Reason.CHECKPOINT,
            detail=f"log {log.base_url} has a key type checkpoints cannot use",
        ) from exc
    if checkpoint.size != proof.tree_size:
        raise VerificationError(
            reason=Reason.INCLUSION_PROOF,
            detail=f"inclusion proof tree size {proof.tree_size} does not match checkpoint size "
            f"{checkpoint.size}",
        )
    if checkpoint.root_hash != proof.root_hash:
        raise VerificationError(
            reason=Reason.INCLUSION_PROOF, detail="inclusion proof does not match checkpoint root"
        )
    if proof.log_index != entry.log_index and log_index_is_tree_local(entry):
        raise VerificationError(
            reason=Reason.INCLUSION_PROOF,
            detail=f"inclusion proof index {proof.log_index} does not match entry index "
            f"{entry.log_index}",
        )
    try:
        verify_inclusion(
            index=proof.log_index,
            size=proof.tree_size,
            leaf=leaf_hash(entry.canonicalized_body),
            proof=proof.hashes,
            root=checkpoint.root_hash,
        )
    except ProofError as exc:
        raise VerificationError(
            reason=Reason.INCLUSION_PROOF,
            detail=f"inclusion proof does not match checkpoint root ({exc.message})",
        ) from exc


# A checkpoint verifier per trusted log key, by id() of the LogKey, which each entry holds (so
# the id is not reused while it exists): the trusted root's logs are few and live as long as
# their Verifier, and preparing the key (its hint, its algorithm) per bundle was a measurable
# share of checking a checkpoint (bench/verify.py).
_checkpoint_verifiers: dict[int, tuple[LogKey, CheckpointVerifier]] = {}
MAX_CHECKPOINT_VERIFIERS = 256


def _checkpoint_verifier(log: LogKey) -> CheckpointVerifier:
    hit = _checkpoint_verifiers.get(id(log))
    if hit is not None and hit[0] is log:
        return hit[1]
    from keyless.tlog.checkpoint import CheckpointVerifier

    verifier = CheckpointVerifier(log.public_key)  # type: ignore[arg-type]
    if len(_checkpoint_verifiers) >= MAX_CHECKPOINT_VERIFIERS:
        _checkpoint_verifiers.clear()
    _checkpoint_verifiers[id(log)] = (log, verifier)
    return verifier


def log_index_is_tree_local(entry: TransparencyLogEntry) -> bool:
    """Rekor v2 has one tree per log, so its entry index must equal the proof's index.

    Rekor v1 shards: the entry carries a global index and the proof a per-tree one, so they may
    differ (the SET binds the global one).
    """
    from keyless.client.entry_body import REKOR_V2_KINDS

    return (entry.kind_version.kind, entry.kind_version.version) in REKOR_V2_KINDS
