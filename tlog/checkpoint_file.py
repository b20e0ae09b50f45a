"""The latest signed tree head of a log, kept in a small file outside its database.

A transparency log must never sign two histories. Its database can be deleted, truncated or
restored from an older backup while its key stays; a log that then signed a fresh tree would
show clients two histories under one key. So every head the log signs is also written here
(durably, before the append is acknowledged), and at start-up the database must hold this head
or a tree consistent with it (`tlog.log.MerkleLog` checks).

Several processes may share the file (gunicorn workers over one SQLite log, or instances over
one PostgreSQL log with a shared state directory): writes are serialised by a `flock` on a
sidecar lock file, and the file only ever moves forward to a larger tree.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tlog.errors import LogStartError
from tlog.merkle import HASH_SIZE
from tlog.storage import MAX_LOG_SIZE, SignedHead

MAX_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class CheckpointFile:
    """One log's last signed head, as a JSON file (0600) in the server's state directory."""

    path: Path

    def read(self) -> SignedHead | None:
        """The head kept in the file, or None if there is no file.

        Raises:
            LogStartError: the file is unreadable or malformed.
        """
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._refusal(f"cannot be read: {exc.strerror}") from exc
        if len(raw) > MAX_FILE_BYTES:
            raise self._refusal(f"is larger than {MAX_FILE_BYTES} bytes")
        try:
            document = json.loads(raw)
            size, root, timestamp, signed = (
                document["size"],
                bytes.fromhex(document["rootHash"]),
                document["timestampMs"],
                base64.b64decode(document["signed"], validate=True),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise self._refusal("is not a checkpoint file") from exc
        if (
            not all(isinstance(n, int) and not isinstance(n, bool) for n in (size, timestamp))
            or not 0 <= size <= MAX_LOG_SIZE
            or len(root) != HASH_SIZE
        ):
            raise self._refusal("is not a checkpoint file")
        return SignedHead(size, root, timestamp, signed)

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
        with self._locked():
            try:
                current = self.read()
            except LogStartError:
                current = None  # a damaged file is replaced by a head the log just verified
            if current is not None and current.size >= head.size:
                return
            self._write(head)

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

    def _write(self, head: SignedHead) -> None:
        data = json.dumps(
            {
                "size": head.size,
                "rootHash": head.root_hash.hex(),
                "timestampMs": head.timestamp_ms,
                "signed": base64.b64encode(head.signed).decode(),
            }
        ).encode()
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
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
