"""Transparency logs: the RFC 6962 Merkle engine, durable storage and signed checkpoints.

Public, Flask-free API for other packages (the client verifier and the CA's CT log):

Merkle engine (`tlog.merkle`, pure):
- `leaf_hash(data: bytes) -> bytes`, `node_hash(left: bytes, right: bytes) -> bytes`
- `verify_inclusion(*, index: int, size: int, leaf: bytes, proof: Sequence[bytes],
  root: bytes) -> None`; `leaf` is the leaf *hash*; raises `ProofError`.
- `verify_consistency(*, size1: int, size2: int, proof: Sequence[bytes], root1: bytes,
  root2: bytes) -> None`; raises `ProofError`.
- `root_from_inclusion(*, index, size, leaf, proof) -> bytes`
- `EMPTY_ROOT`, `HASH_SIZE`

Checkpoints (`tlog.checkpoint`, pure; signed notes, Rekor v1 ECDSA and Rekor v2 / Go-note Ed25519):
- `Checkpoint(origin: str, size: int, root_hash: bytes, extensions: tuple[str, ...] = ())`,
  frozen; `.text() -> str` is the signed note text.
- `verify_checkpoint(note: str | bytes, *, public_key, name: str | None = None) -> Checkpoint`:
  parses and requires a valid signature by `public_key` (ECDSA or Ed25519; other signers'
  lines are ignored); `name`, if given, must be the signature line's name. Raises
  `CheckpointError` (reason `checkpoint-invalid`, `checkpoint-unsigned` or
  `checkpoint-signature-invalid`).
- `sign_checkpoint(checkpoint: Checkpoint, *, name: str, private_key) -> str`
- `parse_note(note) -> SignedNote`, `verify_note(note: SignedNote, *, public_key, name=None)`,
  `parse_checkpoint_text(text) -> Checkpoint`, `key_hint(public_key, *, name) -> bytes`
- `checkpoint_key_id(public_key, *, name) -> bytes`: the full C2SP key ID (a Rekor v2 log ID);
  `checkpoint_origin(base_url) -> str`: a tile log's origin (its base URL without the scheme)

Durable log (`tlog.log`, `tlog.storage`, `tlog.sqlite_storage`; imported lazily, so the client
never loads them). Shared by the Rekor log and the CT log:
- `SQLiteStorage(path: str | PathLike, *, busy_timeout_ms: int = 30_000)`: WAL, fsync per commit,
  safe across threads and worker processes; `.tree_id -> int` (random, fixed at creation).
  `LogStorage` is the Protocol (`reader()`, `writer()`, `tree_id`, `close()`).
  `PostgresStorage(conninfo: str, *, prefix: str = "tlog_")` (`tlog.postgres_storage`, needs
  psycopg 3) is the same for several server instances sharing one PostgreSQL database; the
  table prefix lets the Rekor and CT logs share a database.
- `TreeHeadSigner` Protocol: `sign(*, size: int, root_hash: bytes, timestamp_ms: int) -> bytes`
  and `verify(signed: bytes, *, size: int, root_hash: bytes) -> None` (raise a `LogError`).
  `CheckpointSigner(*, origin: str, name: str, private_key)` signs Rekor-style checkpoints.
- `MerkleLog(storage: LogStorage, signer: TreeHeadSigner, *, clock=time.time, max_batch=512)`:
  - `append(data: bytes, *, extra: bytes = b"", keys: Sequence[str] = (), prove: bool = False)
    -> Appended` (group commit; returns once durable; raises `DuplicateEntryError` with
    `.index`; `prove=True` fills `Appended.proof` from inside the commit);
  - `append_batch(items: Sequence[NewEntry]) -> list[Appended | LogError]` (one transaction);
  - `head() -> SignedHead` (latest; covers every entry), `entry(index) -> LogEntry`,
    `entries(start, end) -> list[LogEntry]`, `find(leaf_hash) -> int | None`,
    `search(key, *, limit=1000) -> list[int]`;
  - `prove(index) -> EntryProof(entry, head, proof)` (one snapshot, latest head);
  - `inclusion_proof(index, size) -> (root, proof)`, `consistency_proof(size1, size2) ->
    (root2, proof)`, `root_hash(size) -> bytes` (`RequestError` when out of range).
  Each commit signs a new head after checking it against the previous one (signature and
  consistency proof); it raises `InconsistentLogError` and signs nothing if they disagree.
- Values: `NewEntry(data, extra=b"", keys=(), prove=False)`, `Appended(entry, head, proof)`,
  `LogEntry(index, data, leaf_hash, integrated_ms, extra)`,
  `SignedHead(size, root_hash, timestamp_ms, signed)`, `EntryProof(entry, head, proof)`.

Rekor v1 log (`tlog.rekor`, Flask-free; `tlog.rekor_api` is its blueprint, for `serve.py` only):
- `RekorService.open(*, storage: LogStorage, private_key: ec.EllipticCurvePrivateKey, host: str,
  clock=time.time) -> RekorService`; `private_key` must be P-256; `host` is the log's
  "host:port" as clients reach it (checkpoint origin "<host> - <treeID>", signature name
  `host`). Attributes: `log_id` (hex), `tree_id`, `public_key`, `public_key_pem`, `log`.
- Blueprint: `tlog.rekor_api.init_app(app: Flask, service: RekorService) -> None` mounts
  every `/api/v1/log...` and `/api/v1/index/retrieve` route; `rekor_api.rekor_service()`
  reads the service back. Entry bodies are limited to 2 MiB (413 beyond).

Errors (`tlog.errors`): `LogError` (a `keyless.core.errors.Error`, its HTTP status a class
attribute), `ProofError`, `CheckpointError`, `EntryError`, `DuplicateEntryError`,
`NotFoundError`, `RequestError` (and `TooManyError`, `BodyTooLargeError`),
`InconsistentLogError`, `StorageError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keyless.tlog.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    NoteSignature,
    SignedNote,
    checkpoint_key_id,
    checkpoint_origin,
    key_hint,
    parse_checkpoint_text,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
    verify_note,
)
from keyless.tlog.errors import (
    CheckpointError,
    DuplicateEntryError,
    EntryError,
    InconsistentLogError,
    LogError,
    NotFoundError,
    ProofError,
    RequestError,
    StorageError,
    TooManyError,
)
from keyless.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

if TYPE_CHECKING:
    from keyless.tlog.log import Appended, EntryProof, MerkleLog, NewEntry, TreeHeadSigner
    from keyless.tlog.postgres_storage import PostgresStorage
    from keyless.tlog.rekor import RekorService
    from keyless.tlog.sqlite_storage import SQLiteStorage
    from keyless.tlog.storage import LogEntry, LogStorage, SignedHead

_LAZY = {
    "Appended": "keyless.tlog.log",
    "EntryProof": "keyless.tlog.log",
    "MerkleLog": "keyless.tlog.log",
    "NewEntry": "keyless.tlog.log",
    "TreeHeadSigner": "keyless.tlog.log",
    "SQLiteStorage": "keyless.tlog.sqlite_storage",
    "PostgresStorage": "keyless.tlog.postgres_storage",
    "RekorService": "keyless.tlog.rekor",
    "LogEntry": "keyless.tlog.storage",
    "LogStorage": "keyless.tlog.storage",
    "SignedHead": "keyless.tlog.storage",
}


def __getattr__(name: str) -> Any:
    """Load the server-side log classes on first use, keeping client imports light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keyless.tlog' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Appended",
    "Checkpoint",
    "CheckpointError",
    "CheckpointSigner",
    "DuplicateEntryError",
    "EntryError",
    "EntryProof",
    "InconsistentLogError",
    "LogEntry",
    "LogError",
    "LogStorage",
    "MerkleLog",
    "NewEntry",
    "NotFoundError",
    "NoteSignature",
    "PostgresStorage",
    "ProofError",
    "RekorService",
    "RequestError",
    "SQLiteStorage",
    "SignedHead",
    "SignedNote",
    "StorageError",
    "TooManyError",
    "TreeHeadSigner",
    "checkpoint_key_id",
    "checkpoint_origin",
    "key_hint",
    "leaf_hash",
    "node_hash",
    "parse_checkpoint_text",
    "parse_note",
    "root_from_inclusion",
    "sign_checkpoint",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_note",
]
