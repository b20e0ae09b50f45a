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

Errors (`tlog.errors`): `LogError` (base: `message`, `reason`, `hint`, `user_facing`),
`ProofError`, `CheckpointError`, `EntryError`, `DuplicateEntryError`, `NotFoundError`,
`RequestError`, `InconsistentLogError`, `StorageError`.
"""

from __future__ import annotations

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
    "CheckpointError",
    "DuplicateEntryError",
    "EntryError",
    "InconsistentLogError",
    "LogError",
    "NotFoundError",
    "ProofError",
    "RequestError",
    "StorageError",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]
