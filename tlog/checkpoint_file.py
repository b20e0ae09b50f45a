"""The latest signed tree head of a log, kept in a small file outside its database.

A transparency log must never sign two histories. Its database can be deleted, truncated or
restored from an older backup while its key stays; a log that then signed a fresh tree would
show clients two histories under one key. So every head the log signs is also written here
(durably, before the append is acknowledged), and at start-up the database must hold this head
or a tree consistent with it (`tlog.log.MerkleLog` checks).

The file is written once per group commit, on the append path, so it is cheap to write: two
fixed-size slots, each a magic, a length, a SHA-256 and a JSON head, overwritten in place in
turn and made durable with `fdatasync` (the file's size never changes, so no metadata needs
syncing; a temporary file renamed into place, with the directory synced, cost three times as
much). A write torn by a crash damages only the slot being written; the other still holds the
previous head, which the database extends. The file itself is created once, durably, by a
temporary file renamed into place.

Several processes may share the file (gunicorn workers over one SQLite log, or instances over
one PostgreSQL log with a shared state directory): writes are serialised by a `flock` on a
sidecar lock file, and the file only ever moves forward to a larger tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from keyless.core.encoding import b64decode, b64encode
from keyless.tlog.errors import LogStartError
from keyless.tlog.merkle import HASH_SIZE
from keyless.tlog.storage import MAX_LOG_SIZE, SignedHead

SLOT_BYTES = 4096
_MAGIC = b"KLCP"
_HEADER = struct.Struct(">4sI32s")


@dataclass(frozen=True)
class CheckpointFile:
    """One log's last signed head, in a file (0600) in the server's state directory."""

    path: Path

    def read(self) -> SignedHead | None:
        """The head kept in the file, or None if there is no file.

        Raises:
            LogStartError: the file is unreadable or holds no valid head.
        """
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(2 * SLOT_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._refusal(f"cannot be read: {exc.strerror}") from exc
        return self._newest(raw)

    def _newest(self, raw: bytes) -> SignedHead:
        if len(raw) != 2 * SLOT_BYTES:
            raise self._refusal("is not a checkpoint file")
        heads = [_decode(raw[i * SLOT_BYTES : (i + 1) * SLOT_BYTES]) for i in (0, 1)]
        valid = [head for head in heads if head is not None]
        if not valid:
            raise self._refusal("is not a checkpoint file")
        return max(valid, key=lambda head: head.size)

    def _refusal(self, problem: str) -> LogStartError:
        return LogStartError(
            f"the log checkpoint file {self.path} {problem}",
            hint="restore it from a backup taken with the log database",
        )

    def advance(self, head: SignedHead) -> None:
        """Keep `head` unless the file already holds a larger tree; durable on return.

        Raises:
            OSError: the file could not be written (the caller must not acknowledge).
        """
        slot = _encode(head)
        with self._locked():
            try:
                fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                self._create(slot)
                return
            try:
                slots = os.pread(fd, 2 * SLOT_BYTES + 1, 0)
                try:
                    current = self._newest(slots)
                except LogStartError:
                    current = None  # damaged: replaced by a head the log just verified
                if current is not None and current.size >= head.size:
                    return
                # Overwrite the slot not holding the newest head, so a torn write keeps it.
                index = 1 if current is not None and _decode(slots[:SLOT_BYTES]) == current else 0
                if len(slots) != 2 * SLOT_BYTES:
                    os.ftruncate(fd, 2 * SLOT_BYTES)
                os.pwrite(fd, slot, index * SLOT_BYTES)
                os.fdatasync(fd)
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Opened per use: a descriptor inherited across fork would share the parent's lock.
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _create(self, slot: bytes) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(slot + bytes(SLOT_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _encode(head: SignedHead) -> bytes:
    payload = json.dumps(
        {
            "size": head.size,
            "rootHash": head.root_hash.hex(),
            "timestampMs": head.timestamp_ms,
            "signed": b64encode(head.signed),
        }
    ).encode()
    if _HEADER.size + len(payload) > SLOT_BYTES:
        raise OSError(f"a signed tree head of {len(head.signed)} bytes does not fit a slot")
    record = _HEADER.pack(_MAGIC, len(payload), hashlib.sha256(payload).digest()) + payload
    return record.ljust(SLOT_BYTES, b"\0")


def _decode(slot: bytes) -> SignedHead | None:
    """The head in one slot, or None if the slot is empty, torn or malformed."""
    magic, length, digest = _HEADER.unpack_from(slot)
    payload = slot[_HEADER.size : _HEADER.size + length]
    if magic != _MAGIC or len(payload) != length or hashlib.sha256(payload).digest() != digest:
        return None
    try:
        document = json.loads(payload)
        size, root, timestamp, signed = (
            document["size"],
            bytes.fromhex(document["rootHash"]),
            document["timestampMs"],
            b64decode(document["signed"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if (
        not all(isinstance(n, int) and not isinstance(n, bool) for n in (size, timestamp))
        or not 0 <= size <= MAX_LOG_SIZE
        or len(root) != HASH_SIZE
    ):
        return None
    return SignedHead(size, root, timestamp, signed)
