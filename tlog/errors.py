"""Errors of the transparency logs: one base, a few kinds, each with message, reason and hint.

The Rekor blueprint maps each kind to its HTTP status; the CLI prints `message` and `hint`.
"""

from __future__ import annotations


class LogError(Exception):
    """Base of every expected transparency-log failure."""

    user_facing = True
    reason = "log-error"
    hint: str | None = None

    def __init__(self, message: str, *, reason: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        if hint is not None:
            self.hint = hint


class ProofError(LogError):
    """An inclusion or consistency proof does not verify, or is malformed."""

    reason = "proof-invalid"


class CheckpointError(LogError):
    """A checkpoint (signed note) is malformed, unsigned, or its signature does not verify."""

    reason = "checkpoint-invalid"


class EntryError(LogError):
    """A proposed log entry is malformed or its signature does not verify (HTTP 400)."""

    reason = "entry-invalid"


class DuplicateEntryError(LogError):
    """The entry is already in the log (HTTP 409); `index` and `leaf_hash` locate it."""

    reason = "entry-duplicate"

    def __init__(self, message: str, *, index: int, leaf_hash: bytes):
        super().__init__(message)
        self.index = index
        self.leaf_hash = leaf_hash


class NotFoundError(LogError):
    """The requested entry, index or tree size does not exist (HTTP 404)."""

    reason = "not-found"


class RequestError(LogError):
    """A read request is malformed or asks for something out of range (HTTP 400)."""

    reason = "bad-request"


class TooManyError(RequestError):
    """A request asks for more items than the log serves at once (HTTP 422)."""

    reason = "too-many-items"


class BodyTooLargeError(RequestError):
    """A request body exceeds the endpoint's limit (HTTP 413)."""

    reason = "body-too-large"


class InconsistentLogError(LogError):
    """The stored tree is not consistent with a checkpoint the log signed: it refuses to sign."""

    reason = "log-inconsistent"
    hint = "the log storage was altered; restore it from a backup and audit it"


class StorageError(LogError):
    """The log storage failed or is corrupt; nothing was acknowledged."""

    reason = "storage-failed"


class LogStartError(LogError):
    """The log refuses to start: its database, key, origin or checkpoint file disagree, and
    serving would sign a second history (or fail every append)."""

    reason = "log-start-refused"
