"""A transparency-log witness (C2SP tlog-witness), Flask-free: `tlog.witness_api` serves it.

Per log it witnesses (an origin and the log's verifier key) it keeps the latest checkpoint it
cosigned, and cosigns a new one only with a consistency proof from exactly that size, so it
never cosigns two histories of one log. The check and the update are one step under a lock,
and the update is durable before the cosignature is returned.

Its state is one JSON file, written whole (a temporary file, fsync, rename, directory fsync),
and sealed by a small two-slot file (`tlog.checkpoint_file`) holding the state's generation
and digest, written after it. Like a log's database and checkpoint file, the two must agree at
start-up: a state file that is missing while the witness's key exists, older than its seal,
or replaced, is refused (a witness that forgot what it cosigned would cosign any history).
One process serves a state directory (an exclusive lock held while it runs).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.tlog.checkpoint import (
    NoteSignature,
    SignedNote,
    parse_checkpoint_text,
    parse_note,
)
from keyless.tlog.checkpoint_file import CheckpointFile
from keyless.tlog.cosignature import Cosigner, VerifierKey, parse_vkey, with_signatures
from keyless.tlog.errors import CheckpointError, LogStartError, ProofError
from keyless.tlog.merkle import EMPTY_ROOT, verify_consistency
from keyless.tlog.storage import SignedHead
from keyless.tlog.witness_wire import AddCheckpoint, WitnessRequestError

KEY_FILE = "witness-key.pem"
STATE_FILE = "witness-state.json"
SEAL_FILE = "witness-state.seal"
LOCK_FILE = ".witness.lock"
MAX_STATE_BYTES = 16 * 1024 * 1024
MAX_LOGS = 1000
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WitnessedLog:
    """A log this witness cosigns, and the latest checkpoint it cosigned (None: none yet)."""

    origin: str
    key: VerifierKey
    size: int = 0
    root_hash: bytes = EMPTY_ROOT
    checkpoint: str | None = None


def origin_hash(origin: str) -> str:
    """The monitoring path's name for a log: hex SHA-256 of its origin."""
    return hashlib.sha256(origin.encode()).hexdigest()


class Witness:
    """The witness over one state directory; open it with `Witness.open`."""

    def __init__(
        self,
        *,
        state_dir: Path,
        cosigner: Cosigner,
        logs: dict[str, WitnessedLog],
        generation: int,
        lock_fd: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dir = state_dir
        self.cosigner = cosigner
        self._logs = logs
        self._generation = generation
        self._lock_fd = lock_fd
        self._clock = clock
        self._mutex = threading.Lock()
        self._seal = CheckpointFile(state_dir / SEAL_FILE)

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        name: str | None = None,
        default_name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Witness:
        """The witness in `state_dir`, made there on a first run (key 0600, empty state) named
        `name` or else `default_name`; a later start's `name`, if given, must be the same.

        Raises:
            LogStartError: the state is missing beside an existing key, behind or beside its
                seal, named otherwise than `name`, or held by another process.
        """
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = _lock(state_dir)
        try:
            key_path, state_path = state_dir / KEY_FILE, state_dir / STATE_FILE
            seal = CheckpointFile(state_dir / SEAL_FILE)
            sealed = seal.read()
            if not key_path.exists() and not state_path.exists() and sealed is None:
                name = name or default_name
                if name is None:
                    raise LogStartError(
                        f"{state_dir} holds no witness yet: a first run needs its --name",
                        hint="a schema-less URL naming the witness, e.g. witness.example/w1",
                    )
                key = ed25519.Ed25519PrivateKey.generate()
                _write_key(key_path, key)
                witness = cls(
                    state_dir=state_dir,
                    cosigner=Cosigner(name=name, private_key=key),
                    logs={},
                    generation=0,
                    lock_fd=lock_fd,
                    clock=clock,
                )
                witness._save()
                return witness
            document, digest = _read_state(state_path, key_path=key_path)
            _check_sealed(document["generation"], digest, sealed, state_path, seal)
            stored_name = document["name"]
            if name is not None and name != stored_name:
                raise LogStartError(
                    f"the witness in {state_dir} is named {stored_name!r}, not {name!r}: its "
                    "key ID, and so every cosignature, depends on the name",
                    hint=f"start it with --name {stored_name}, or without --name",
                )
            key = _read_key(key_path)
            cosigner = Cosigner(name=stored_name, private_key=key)
            witness = cls(
                state_dir=state_dir,
                cosigner=cosigner,
                logs=_logs_from(document, state_path),
                generation=document["generation"],
                lock_fd=lock_fd,
                clock=clock,
            )
            if sealed is None or sealed.size != witness._generation:
                # The state was renamed into place but its seal not written: a crash between.
                witness._seal_state(digest)
            return witness
        except BaseException:
            os.close(lock_fd)
            raise

    def close(self) -> None:
        """Release the state directory."""
        os.close(self._lock_fd)

    @property
    def verifier_key(self) -> VerifierKey:
        """This witness's cosignature/v1 verifier key."""
        return self.cosigner.verifier_key

    def logs(self) -> list[WitnessedLog]:
        """The logs witnessed, by origin."""
        with self._mutex:
            return [self._logs[origin] for origin in sorted(self._logs)]

    def learn(self, origin: str, key: VerifierKey) -> bool:
        """Witness the log `origin` signed by `key` (kept); True if it was new.

        Raises:
            LogStartError: the origin is known under another key.
        """
        with self._mutex:
            known = self._logs.get(origin)
            if known is not None:
                if known.key != key:
                    raise LogStartError(
                        f"this witness knows the log {origin!r} under the key "
                        f"{known.key.render()}, not {key.render()}: a log's key never changes "
                        "under one origin",
                        hint="a new log has a new origin; check which server answers at its URL",
                    )
                return False
            if len(self._logs) >= MAX_LOGS:
                raise LogStartError(f"a witness keeps at most {MAX_LOGS} logs")
            self._logs[origin] = WitnessedLog(origin, key)
            self._save()
            return True

    def checkpoint(self, hashed_origin: str) -> str | None:
        """The latest checkpoint cosigned for the log whose origin hashes to this, with the
        log's and this witness's signatures (the monitoring endpoint), or None."""
        with self._mutex:
            for log in self._logs.values():
                if origin_hash(log.origin) == hashed_origin:
                    return log.checkpoint
        return None

    def add_checkpoint(self, request: AddCheckpoint) -> tuple[NoteSignature, ...]:
        """Cosign `request.checkpoint` if it extends, by the proof given, the checkpoint this
        witness holds for its log; the new one is durable when this returns.

        Raises:
            WitnessRequestError: 400 malformed, 403 not signed by the log's key, 404 unknown
                origin, 409 another old size (`held`), 422 a proof that does not verify.
        """
        try:
            note = parse_note(request.checkpoint)
            checkpoint = parse_checkpoint_text(note.text)
        except CheckpointError as exc:
            raise WitnessRequestError(400, f"malformed checkpoint: {exc.message}") from None
        with self._mutex:
            log = self._logs.get(checkpoint.origin)
            if log is None:
                raise WitnessRequestError(404, f"unknown log origin {checkpoint.origin[:200]!r}")
            try:
                log.key.verify_log_signature(note)
            except CheckpointError as exc:
                raise WitnessRequestError(403, exc.message) from None
            if request.old_size > checkpoint.size:
                raise WitnessRequestError(
                    400,
                    f"old size {request.old_size} is larger than the checkpoint's size "
                    f"{checkpoint.size}",
                )
            if request.old_size != log.size:
                raise WitnessRequestError(
                    409, f"this witness holds a checkpoint of size {log.size}", held=log.size
                )
            _check_extends(log, request, checkpoint.size, checkpoint.root_hash)
            timestamp = max(int(self._clock()), 1)
            line = self.cosigner.cosign(note.text, timestamp=timestamp)
            kept = with_signatures(_log_signatures(note, log.key), (line,))
            self._logs[log.origin] = WitnessedLog(
                log.origin, log.key, checkpoint.size, checkpoint.root_hash, kept.render()
            )
            try:
                self._save()
            except BaseException:
                self._logs[log.origin] = log
                raise
            return (line,)

    def _save(self) -> None:
        """Write the state whole and durably, then seal it (caller holds the mutex)."""
        generation = self._generation + 1
        document = {
            "version": 1,
            "name": self.cosigner.name,
            "generation": generation,
            "logs": [
                {
                    "origin": log.origin,
                    "key": log.key.render(),
                    "size": log.size,
                    "rootHash": log.root_hash.hex(),
                    "checkpoint": log.checkpoint,
                }
                for log in self._logs.values()
            ],
        }
        data = json.dumps(document, sort_keys=True).encode()
        path = self._dir / STATE_FILE
        temporary = path.with_name(f".{path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        _sync_directory(self._dir)
        self._generation = generation
        self._seal_state(hashlib.sha256(data).digest())

    def _seal_state(self, digest: bytes) -> None:
        self._seal.advance(
            SignedHead(self._generation, digest, int(self._clock() * 1000), b"witness-state")
        )


def _log_signatures(note: SignedNote, key: VerifierKey) -> SignedNote:
    """The note with only the log's own signature lines (others' are not vouched for)."""
    own = tuple(s for s in note.signatures if s.name == key.name and s.key_hint == key.key_id)
    return SignedNote(text=note.text, signatures=own)


def _check_extends(log: WitnessedLog, request: AddCheckpoint, size: int, root: bytes) -> None:
    if size == 0 and root != EMPTY_ROOT:
        raise WitnessRequestError(422, "a checkpoint of size 0 must have the empty tree's root")
    if request.old_size == 0:
        if request.proof:
            raise WitnessRequestError(422, "a consistency proof from size 0 must be empty")
        return
    try:
        verify_consistency(
            size1=request.old_size,
            size2=size,
            proof=request.proof,
            root1=log.root_hash,
            root2=root,
        )
    except ProofError as exc:
        raise WitnessRequestError(
            422,
            f"the checkpoint of size {size} is not proven consistent with the checkpoint of "
            f"size {log.size} this witness cosigned: {exc.message}",
        ) from None


def _check_sealed(
    generation: int,
    digest: bytes,
    sealed: SignedHead | None,
    state_path: Path,
    seal: CheckpointFile,
) -> None:
    hint = "restore the witness's state file and its seal from one backup, together"
    if sealed is None:
        raise LogStartError(
            f"the witness state {state_path} has no seal {seal.path}: a state restored without "
            "it cannot be told from the witness's latest",
            hint=hint,
        )
    if generation < sealed.size:
        raise LogStartError(
            f"the witness state {state_path} is behind its seal (generation {generation}, but "
            f"{sealed.size} was written): an older copy was restored?",
            hint=hint,
        )
    if generation == sealed.size and digest != sealed.root_hash:
        raise LogStartError(
            f"the witness state {state_path} is not the one its seal {seal.path} records: "
            "it was replaced",
            hint=hint,
        )
    if generation > sealed.size + 1:
        raise LogStartError(
            f"the witness state {state_path} is ahead of its seal {seal.path} (generation "
            f"{generation}, sealed {sealed.size}): an older seal was restored?",
            hint=hint,
        )


def _read_state(path: Path, *, key_path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        raise LogStartError(
            f"the witness state {path} is missing, but its key {key_path} exists: a witness "
            "that forgot what it cosigned would cosign any history from the start",
            hint="restore the state directory from a backup; a new witness is a new key and "
            "name in an empty directory",
        ) from None
    except OSError as exc:
        raise LogStartError(f"the witness state {path} cannot be read: {exc.strerror}") from exc
    try:
        if len(data) > MAX_STATE_BYTES:
            raise ValueError("too large")
        document = json.loads(data)
        if not (
            isinstance(document, dict)
            and document.get("version") == 1
            and isinstance(document.get("name"), str)
            and type(document.get("generation")) is int
            and isinstance(document.get("logs"), list)
        ):
            raise ValueError("not a witness state")
    except ValueError as exc:
        raise LogStartError(
            f"the witness state {path} is not a witness state file (corrupt?)",
            hint="restore the state directory from a backup",
        ) from exc
    return document, hashlib.sha256(data).digest()


def _logs_from(document: dict[str, Any], path: Path) -> dict[str, WitnessedLog]:
    logs = {}
    try:
        for entry in document["logs"]:
            origin = entry["origin"]
            size, root = entry["size"], bytes.fromhex(entry["rootHash"])
            checkpoint = entry["checkpoint"]
            if type(size) is not int or not isinstance(origin, str) or len(root) != 32:
                raise ValueError("bad log entry")
            if checkpoint is not None and not isinstance(checkpoint, str):
                raise ValueError("bad checkpoint")
            logs[origin] = WitnessedLog(origin, parse_vkey(entry["key"]), size, root, checkpoint)
    except (KeyError, TypeError, ValueError, CheckpointError) as exc:
        raise LogStartError(
            f"the witness state {path} holds a malformed log entry (corrupt?)",
            hint="restore the state directory from a backup",
        ) from exc
    return logs


def _lock(state_dir: Path) -> int:
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LogStartError(
            f"another witness process serves {state_dir}: one process owns a witness's state",
        ) from None
    return fd


def _write_key(path: Path, key: ed25519.Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    _sync_directory(path.parent)


def _read_key(path: Path) -> ed25519.Ed25519PrivateKey:
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read(64 * 1024)
    except OSError as exc:
        raise LogStartError(f"the witness key {path} cannot be read: {exc.strerror}") from exc
    if mode & 0o077:
        raise LogStartError(
            f"the witness key {path} is readable or writable by others (mode {mode & 0o777:o})",
            hint=f"chmod 600 {path}, and replace the witness if others may have read it",
        )
    with contextlib.suppress(ValueError, TypeError):
        key = serialization.load_pem_private_key(data, password=None)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key
    raise LogStartError(f"the witness key {path} is not an unencrypted Ed25519 PEM key")


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def opened(state_dir: Path, *, name: str | None = None) -> Iterator[Witness]:
    """`Witness.open` for a `with` block (tests, the CLI)."""
    witness = Witness.open(state_dir, name=name)
    try:
        yield witness
    finally:
        witness.close()
