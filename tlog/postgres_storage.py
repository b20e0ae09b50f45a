"""PostgreSQL log storage, for several server instances sharing one log (psycopg 3).

Writers take a transaction-scoped advisory lock first, so one writer at a time across every
instance, and every later statement of the transaction (READ COMMITTED) sees all earlier
commits: the tree size is re-read inside the lock, never cached. Readers use REPEATABLE READ
read-only transactions, one snapshot each. Commits are durable with PostgreSQL's default
`synchronous_commit = on`. Tables carry a prefix, so one database can hold several logs.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg

from keyless.tlog.errors import StorageError
from keyless.tlog.merkle import NodeID
from keyless.tlog.storage import MAX_LOG_SIZE, LogEntry, SignedHead, node_key

_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,30}\Z")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS {p}meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}leaves (idx BIGINT PRIMARY KEY, hash BYTEA NOT NULL UNIQUE,"
    " data BYTEA NOT NULL, integrated_ms BIGINT NOT NULL, extra BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}nodes (id BIGINT PRIMARY KEY, hash BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}heads (size BIGINT PRIMARY KEY, root BYTEA NOT NULL,"
    " timestamp_ms BIGINT NOT NULL, signed BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {p}search (key TEXT NOT NULL, idx BIGINT NOT NULL,"
    " PRIMARY KEY (key, idx))",
)


class _View:
    """Queries over one connection inside an open transaction."""

    def __init__(self, connection: psycopg.Connection[Any], prefix: str) -> None:
        self._db = connection
        self._p = prefix

    def _rows(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(query.format(p=self._p), params).fetchall()

    def size(self) -> int:
        (top,) = self._rows("SELECT max(idx) FROM {p}leaves")[0]
        return 0 if top is None else top + 1

    def read_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        found: dict[NodeID, bytes] = {}
        leaves = [index for level, index in ids if level == 0]
        if leaves:
            for index, digest in self._rows(
                "SELECT idx, hash FROM {p}leaves WHERE idx = ANY(%s)", (leaves,)
            ):
                found[(0, index)] = bytes(digest)
        keys = {node_key(level, index): (level, index) for level, index in ids if level > 0}
        if keys:
            for key, digest in self._rows(
                "SELECT id, hash FROM {p}nodes WHERE id = ANY(%s)", (list(keys),)
            ):
                found[keys[key]] = bytes(digest)
        missing = [node for node in ids if node not in found]
        if missing:
            raise StorageError(f"log storage is missing tree nodes {missing[:4]}")
        return [found[node] for node in ids]

    def entries(self, start: int, end: int) -> list[LogEntry]:
        rows = self._rows(
            "SELECT idx, data, hash, integrated_ms, extra FROM {p}leaves"
            " WHERE idx >= %s AND idx < %s ORDER BY idx",
            (start, end),
        )
        return [LogEntry(i, bytes(d), bytes(h), t, bytes(x)) for i, d, h, t, x in rows]

    def find_leaves(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        if not leaf_hashes:
            return {}
        rows = self._rows(
            "SELECT hash, idx FROM {p}leaves WHERE hash = ANY(%s)", (list(leaf_hashes),)
        )
        return {bytes(digest): index for digest, index in rows}

    def search(self, key: str, *, limit: int) -> list[int]:
        rows = self._rows(
            "SELECT idx FROM {p}search WHERE key = %s ORDER BY idx LIMIT %s", (key, limit)
        )
        return [index for (index,) in rows]

    def latest_head(self) -> SignedHead | None:
        rows = self._rows(
            "SELECT size, root, timestamp_ms, signed FROM {p}heads ORDER BY size DESC LIMIT 1"
        )
        if not rows:
            return None
        size, root, timestamp_ms, signed = rows[0]
        return SignedHead(size, bytes(root), timestamp_ms, bytes(signed))

    def _insert(self, query: str, rows: list[tuple[object, ...]]) -> None:
        if rows:
            with self._db.cursor() as cursor:
                cursor.executemany(query.format(p=self._p), rows)

    def add_entries(self, entries: Sequence[LogEntry], keys: Sequence[Sequence[str]]) -> None:
        if entries and entries[-1].index >= MAX_LOG_SIZE:
            raise StorageError(f"log is full ({MAX_LOG_SIZE} entries)")
        self._insert(
            "INSERT INTO {p}leaves (idx, hash, data, integrated_ms, extra)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(e.index, e.leaf_hash, e.data, e.integrated_ms, e.extra) for e in entries],
        )
        search = {
            (k, e.index) for e, entry_keys in zip(entries, keys, strict=True) for k in entry_keys
        }
        self._insert(
            "INSERT INTO {p}search (key, idx) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            sorted(search),
        )

    def add_nodes(self, nodes: Mapping[NodeID, bytes]) -> None:
        self._insert(
            "INSERT INTO {p}nodes (id, hash) VALUES (%s, %s)",
            [(node_key(level, i), digest) for (level, i), digest in nodes.items() if level > 0],
        )

    def add_head(self, head: SignedHead) -> None:
        # Only the latest head is kept, as in the SQLite store.
        self._db.execute(f"DELETE FROM {self._p}heads WHERE size < %s", (head.size,))  # noqa: S608
        self._db.execute(
            f"INSERT INTO {self._p}heads (size, root, timestamp_ms, signed)"  # noqa: S608
            " VALUES (%s, %s, %s, %s) ON CONFLICT (size) DO NOTHING",
            (head.size, head.root_hash, head.timestamp_ms, head.signed),
        )


class PostgresStorage:
    """A log in PostgreSQL tables named `<prefix>leaves`, `<prefix>nodes`, ... (created if
    absent), safe to share between threads, processes and server instances."""

    def __init__(self, conninfo: str, *, prefix: str = "tlog_") -> None:
        if not _PREFIX.match(prefix):
            raise ValueError(f"invalid table prefix {prefix!r}")
        self._conninfo = conninfo
        self._prefix = prefix
        digest = hashlib.sha256(b"keyless.tlog:" + prefix.encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer: psycopg.Connection[Any] | None = None
        self._writer_pid: int | None = None
        self._all: list[tuple[int, psycopg.Connection[Any]]] = []
        self._all_lock = threading.Lock()
        with self.writer() as view:
            for statement in _SCHEMA:
                view._db.execute(statement.format(p=prefix))
            view._db.execute(
                f"INSERT INTO {prefix}meta (key, value) VALUES ('tree_id', %s)"  # noqa: S608
                " ON CONFLICT (key) DO NOTHING",
                (str(secrets.randbelow(2**63 - 1) + 1),),
            )
            (value,) = view._rows("SELECT value FROM {p}meta WHERE key = 'tree_id'")[0]
            self._tree_id = int(value)

    @property
    def tree_id(self) -> int:
        """The random tree ID chosen when the tables were created."""
        return self._tree_id

    def _open(self, *, read_only: bool) -> psycopg.Connection[Any]:
        try:
            connection = psycopg.connect(self._conninfo)
            if read_only:
                connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                connection.read_only = True
            else:
                connection.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to the log database: {exc}") from exc
        with self._all_lock:
            self._all.append((os.getpid(), connection))
        return connection

    @contextmanager
    def _transaction(self, db: psycopg.Connection[Any]) -> Iterator[_View]:
        try:
            yield _View(db, self._prefix)
        except BaseException as exc:
            with suppress(psycopg.Error):
                db.rollback()
            if isinstance(exc, psycopg.Error):
                raise StorageError(f"log database operation failed: {exc}") from exc
            raise
        try:
            db.commit()
        except psycopg.Error as exc:
            with suppress(psycopg.Error):
                db.rollback()
            raise StorageError(f"log commit failed: {exc}") from exc

    @contextmanager
    def reader(self) -> Iterator[_View]:
        """A read-only REPEATABLE READ transaction: one snapshot throughout."""
        pid = os.getpid()
        connection = getattr(self._local, "connection", None)
        if connection is None or self._local.pid != pid or connection.closed:
            connection = self._open(read_only=True)
            self._local.connection, self._local.pid = connection, pid
        with self._transaction(connection) as view:
            yield view

    @contextmanager
    def writer(self) -> Iterator[_View]:
        """An exclusive transaction across every process and instance; durable on exit."""
        with self._write_lock:
            pid = os.getpid()
            if self._writer is None or self._writer_pid != pid or self._writer.closed:
                self._writer, self._writer_pid = self._open(read_only=False), pid
            with self._transaction(self._writer) as view:
                view._db.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                yield view

    def close(self) -> None:
        """Close every connection this object opened in this process; later calls reopen."""
        pid = os.getpid()
        with self._all_lock:
            mine = [connection for owner, connection in self._all if owner == pid]
            self._all = [(owner, c) for owner, c in self._all if owner != pid]
        for connection in mine:
            connection.close()
