"""Errors of the transparency logs: one base, a few kinds, each with message, reason and hint.

Each kind's HTTP status is a class attribute, which every log blueprint answers with; the CLI
prints `message` and `hint`.
"""

from __future__ import annotations

from keyless.core.errors import Error, Reason


class LogError(Error):
    """Base of every expected transparency-log failure (HTTP 500 unless a kind says otherwise)."""

    reason = Reason.LOG_ERROR


class ProofError(LogError):
    """An inclusion or consistency proof does not verify, or is malformed."""

    reason = Reason.PROOF_INVALID


class CheckpointError(LogError):
    """A checkpoint (signed note) is malformed, unsigned, or its signature does not verify."""

    reason = Reason.CHECKPOINT_INVALID


class EntryError(LogError):
    """A proposed log entry is malformed or its signature does not verify (HTTP 400)."""

    status = 400
    reason = Reason.ENTRY_INVALID


class DuplicateEntryError(LogError):
    """The entry is already in the log (HTTP 409); `index` and `leaf_hash` locate it."""

    status = 409
    reason = Reason.ENTRY_DUPLICATE

    def __init__(self, message: str, *, index: int, leaf_hash: bytes):
        super().__init__(message)
        self.index = index
        self.leaf_hash = leaf_hash


class NotFoundError(LogError):
    """The requested entry, index or tree size does not exist (HTTP 404)."""

    status = 404
    reason = Reason.NOT_FOUND


class RequestError(LogError):
    """A read request is malformed or asks for something out of range (HTTP 400)."""

    status = 400
    reason = Reason.BAD_REQUEST


class TooManyError(RequestError):
    """A request asks for more items than the log serves at once (HTTP 422)."""

    status = 422
    reason = Reason.TOO_MANY_ITEMS


class BodyTooLargeError(RequestError):
    """A request body exceeds the endpoint's limit (HTTP 413)."""

    status = 413
    reason = Reason.TOO_LARGE


class InconsistentLogError(LogError):
    """The stored tree is not consistent with a checkpoint the log signed: it refuses to sign."""

    reason = Reason.LOG_INCONSISTENT
    hint = "the log storage was altered; restore it from a backup and audit it"


class StorageError(LogError):
    """The log storage failed or is corrupt; nothing was acknowledged."""

    reason = Reason.STORAGE_FAILED


class LogStartError(LogError):
    """The log refuses to start: its database, key, origin or checkpoint file disagree, and
    serving would sign a second history (or fail every append)."""

    reason = Reason.LOG_START_REFUSED
