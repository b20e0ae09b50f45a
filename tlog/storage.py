"""The log storage seam: what a durable Merkle log needs from a database, as Protocols.

A store keeps entries (leaf bytes plus opaque extras), complete-subtree node hashes (level >= 1;
level 0 is the entry's leaf hash), signed tree heads and search keys. `writer()` is one exclusive
transaction that sees the latest committed state (other processes included) and is durable when
its context exits without error; `reader()` is a consistent snapshot. Implementations:
`tlog.sqlite_storage.SQLiteStorage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from keyless.tlog.merkle import NodeID

# A node (level, index) is stored under its in-order position in the full binary tree, one
# integer key: (index << (level + 1)) | (2**level - 1). It fits in an int64 for trees of up to
# 2**62 leaves, which stores enforce with `MAX_LOG_SIZE`.
MAX_LOG_SIZE = 2**62


def node_key(level: int, index: int) -> int:
    """The integer key a store files node (level, index) under."""
    return (index << (level + 1)) | ((1 << level) - 1)


@dataclass(frozen=True)
class LogEntry:
    """A stored entry: its index, leaf bytes, leaf hash, integration time and caller extras."""

    index: int
    data: bytes
    leaf_hash: bytes
    integrated_ms: int
    extra: bytes = b""


@dataclass(frozen=True)
class SignedHead:
    """A tree head the log signed: size, root, time, and the signer's serialisation."""

    size: int
    root_hash: bytes
    timestamp_ms: int
    signed: bytes


class ReadView(Protocol):
    """A consistent snapshot of the log."""

    def size(self) -> int:
        """The number of entries."""
        ...

    def read_nodes(self, ids: Sequence[NodeID]) -> Sequence[bytes]:
        """Hashes of complete subtrees (level 0: leaf hashes), in order; raises if missing."""
        ...

    def entries(self, start: int, end: int) -> list[LogEntry]:
        """Entries with start <= index < end that exist, in index order."""
        ...

    def find_leaves(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Leaf hash -> index for those of `leaf_hashes` already in the log."""
        ...

    def search(self, key: str, *, limit: int) -> list[int]:
        """Indices of entries stored under search `key`, oldest first, at most `limit`."""
        ...

    def latest_head(self) -> SignedHead | None:
        """The signed head with the largest size, or None before the first one."""
        ...


class WriteView(ReadView, Protocol):
    """An exclusive write transaction; reads see its own writes."""

    def add_entries(self, entries: Sequence[LogEntry], keys: Sequence[Sequence[str]]) -> None:
        """Store new entries (contiguous, starting at `size()`) and their search keys."""
        ...

    def add_nodes(self, nodes: Mapping[NodeID, bytes]) -> None:
        """Store complete-subtree hashes; level-0 ids are skipped (they are leaf hashes)."""
        ...

    def add_head(self, head: SignedHead) -> None:
        """Store a signed tree head; smaller heads may be dropped (only the latest is read)."""
        ...


class LogStorage(Protocol):
    """A durable log store, safe to share between threads and between processes."""

    @property
    def tree_id(self) -> int:
        """A random non-zero int64 fixed when the store was created (Rekor's treeID)."""
        ...

    def reader(self) -> AbstractContextManager[ReadView]:
        """A read-only snapshot transaction."""
        ...

    def writer(self) -> AbstractContextManager[WriteView]:
        """An exclusive write transaction, durable on normal exit, rolled back on error."""
        ...

    def close(self) -> None:
        """Release this process's connections."""
        ...
