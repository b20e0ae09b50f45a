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

Errors (`tlog.errors`): `LogError` (base: `message`, `reason`, `hint`, `user_facing`),
`ProofError`, `CheckpointError`, `EntryError`, `DuplicateEntryError`, `NotFoundError`,
`RequestError`, `InconsistentLogError`, `StorageError`.
"""

from __future__ import annotations

from tlog.checkpoint import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    key_hint,
    parse_checkpoint_text,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
    verify_note,
)
from tlog.errors import (
    CheckpointError,
    DuplicateEntryError,
    EntryError,
    InconsistentLogError,
    LogError,
    NotFoundError,
    ProofError,
    RequestError,
    StorageError,
)
from tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Checkpoint",
    "CheckpointError",
    "DuplicateEntryError",
    "EntryError",
    "InconsistentLogError",
    "LogError",
    "NotFoundError",
    "NoteSignature",
    "ProofError",
    "RequestError",
    "SignedNote",
    "StorageError",
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
