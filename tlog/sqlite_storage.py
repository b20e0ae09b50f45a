"""SQLite (WAL) log storage: the embedded default, one file, safe across worker processes.

Writes run in `BEGIN IMMEDIATE` transactions, so one writer at a time across every process that
opens the file (queued on a `flock` of the sidecar file `<db>-writelock`); every answer (tree
size included) is read inside the transaction, never cached. `synchronous=FULL` makes a commit
durable before `writer()` returns. Each thread, and each process after a fork, gets its own
connection.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from keyless.tlog.errors import StorageError
from keyless.tlog.merkle import NodeID
from keyless.tlog.storage import MAX_LOG_SIZE, LogEntry, SignedHead, node_key

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS leaves (idx INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
    " data BLOB NOT NULL, integrated_ms INTEGER NOT NULL, extra BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS heads (size INTEGER PRIMARY KEY, root BLOB NOT NULL,"
    " timestamp_ms INTEGER NOT NULL, signed BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS search (key TEXT NOT NULL, idx INTEGER NOT NULL,"
    " PRIMARY KEY (key, idx)) WITHOUT ROWID",
)
# SQLite's default limit on bound parameters is 32766; stay well below it per statement.
_CHUNK = 400


class _View:
    """Queries over one connection inside an open transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def size(self) -> int:
        row = self._db.execute("SELECT MAX(idx) FROM leaves").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def read_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        found: dict[NodeID, bytes] = {}
        leaves = [index for level, index in ids if level == 0]
        inner = [(level, index) for level, index in ids if level > 0]
        for start in range(0, len(leaves), _CHUNK):
            chunk = leaves[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT idx, hash FROM leaves WHERE idx IN ({marks})"  # noqa: S608
            for index, digest in self._db.execute(query, chunk):
                found[(0, index)] = digest
        keys = {node_key(level, index): (level, index) for level, index in inner}
        key_list = list(keys)
        for start in range(0, len(key_list), _CHUNK):
            chunk = key_list[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT id, hash FROM nodes WHERE id IN ({marks})"  # noqa: S608
            for key, digest in self._db.execute(query, chunk):
                found[keys[key]] = digest
        missing = [node for node in ids if node not in found]
        if missing:
            raise StorageError(f"log storage is missing tree nodes {missing[:4]}")
        return [found[node] for node in ids]

    def entries(self, start: int, end: int) -> list[LogEntry]:
        rows = self._db.execute(
            "SELECT idx, data, hash, integrated_ms, extra FROM leaves"
            " WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        )
        return [LogEntry(i, bytes(d), bytes(h), t, bytes(x)) for i, d, h, t, x in rows]

    def find_leaves(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        for start in range(0, len(leaf_hashes), _CHUNK):
            chunk = list(leaf_hashes[start : start + _CHUNK])
            marks = ",".join("?" * len(chunk))
            query = f"SELECT hash, idx FROM leaves WHERE hash IN ({marks})"  # noqa: S608
            for digest, index in self._db.execute(query, chunk):
                found[bytes(digest)] = index
        return found

    def search(self, key: str, *, limit: int) -> list[int]:
        rows = self._db.execute(
            "SELECT idx FROM search WHERE key = ? ORDER BY idx LIMIT ?", (key, limit)
        )
        return [index for (index,) in rows]

    def latest_head(self) -> SignedHead | None:
        row = self._db.execute(
            "SELECT size, root, timestamp_ms, signed FROM heads ORDER BY size DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return SignedHead(row[0], bytes(row[1]), row[2], bytes(row[3]))

    def _insert(self, table: str, columns: str, rows: Sequence[tuple[object, ...]]) -> None:
        # One multi-row INSERT per chunk rather than executemany: the sqlite3 module releases
        # and re-takes the GIL around every step, and under load each re-take can wait for a
        # busy thread, which stretches the write transaction that every appender waits on.
        if not rows:
            return
        width = len(rows[0])
        per_chunk = max(1, _CHUNK // width)
        marks = "(" + ",".join("?" * width) + ")"
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            values = ",".join([marks] * len(chunk))
            params = [value for row in chunk for value in row]
            self._db.execute(f"INSERT INTO {table} ({columns}) VALUES {values}", params)  # noqa: S608

    def add_entries(self, entries: Sequence[LogEntry], keys: Sequence[Sequence[str]]) -> None:
        if entries and entries[-1].index >= MAX_LOG_SIZE:
            raise StorageError(f"log is full ({MAX_LOG_SIZE} entries)")
        self._insert(
            "leaves",
            "idx, hash, data, integrated_ms, extra",
            [(e.index, e.leaf_hash, e.data, e.integrated_ms, e.extra) for e in entries],
        )
        search = {
            (key, e.index)
            for e, entry_keys in zip(entries, keys, strict=True)
            for key in entry_keys
        }
        self._insert("search", "key, idx", sorted(search))

    def add_nodes(self, nodes: Mapping[NodeID, bytes]) -> None:
        self._insert(
            "nodes",
            "id, hash",
            [(node_key(level, i), digest) for (level, i), digest in nodes.items() if level > 0],
        )

    def add_head(self, head: SignedHead) -> None:
        # Only the latest head is kept: each one was checked against its predecessor before it
        # was signed, and a row per group commit would grow without bound.
        self._db.execute("DELETE FROM heads WHERE size < ?", (head.size,))
        self._db.execute(
            "INSERT INTO heads (size, root, timestamp_ms, signed) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (size) DO NOTHING",
            (head.size, head.root_hash, head.timestamp_ms, head.signed),
        )


class SQLiteStorage:
    """A log in one SQLite file (created if absent), in WAL mode with full fsync on commit."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 30_000) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._generation = 0
        self._all: list[tuple[int, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        self._lock_path = self._path.with_name(self._path.name + "-writelock")
        self._thread_write_lock = threading.Lock()
        self._lock_fd = -1
        self._lock_owner: int | None = None
        self._writer_key: tuple[int, int] | None = None
        self._writer: sqlite3.Connection | None = None
        _owner_only(self._path)
        with (
            self._write_lock(),
            self._transaction(self._writer_connection(), "BEGIN IMMEDIATE") as db,
        ):
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('tree_id', ?)",
                (str(secrets.randbelow(2**63 - 1) + 1),),
            )
            self._tree_id = int(
                db.execute("SELECT value FROM meta WHERE key = 'tree_id'").fetchone()[0]
            )

    @property
    def tree_id(self) -> int:
        """The random tree ID chosen when the file was created."""
        return self._tree_id

    def _connection(self) -> sqlite3.Connection:
        key = (os.getpid(), self._generation)
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and self._local.key == key:
            return connection
        connection = self._open()
        self._local.connection, self._local.key = connection, key
        return connection

    def _writer_connection(self) -> sqlite3.Connection:
        # One connection for every write in this process (callers hold the write lock), so
        # its page cache stays warm from one commit to the next; SQLite drops a connection's
        # cache whenever another connection has written, which per-thread writers would do
        # on every group commit.
        key = (os.getpid(), self._generation)
        writer = self._writer
        if writer is None or self._writer_key != key:
            writer = self._writer = self._open()
            self._writer_key = key
        return writer

    def _open(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=0
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StorageError(f"cannot put {self._path} in WAL mode (got {mode})")
            connection.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open log database {self._path}: {exc}") from exc
        with self._all_lock:
            self._all.append((os.getpid(), connection))
        return connection

    @contextmanager
    def _transaction(self, db: sqlite3.Connection, begin: str) -> Iterator[sqlite3.Connection]:
        try:
            db.execute(begin)
        except sqlite3.Error as exc:
            raise StorageError(f"log database is unavailable: {exc}") from exc
        try:
            yield db
        except BaseException:
            # The original error matters more than a failed rollback; SQLite rolls back on close.
            if db.in_transaction:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"log commit failed: {exc}") from exc

    @contextmanager
    def reader(self) -> Iterator[_View]:
        """A snapshot: a deferred transaction, so it sees one committed state throughout."""
        with self._transaction(self._connection(), "BEGIN") as db:
            try:
                yield _View(db)
            except sqlite3.Error as exc:
                raise StorageError(f"log read failed: {exc}") from exc

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        # SQLite's own busy handler polls with sleeps of up to 100 ms, which gives waiting
        # writers in other processes long stalls. A blocking flock on a sidecar file queues
        # them in the kernel instead; BEGIN IMMEDIATE below still guarantees exclusion.
        with self._thread_write_lock:
            pid = os.getpid()
            if self._lock_owner != pid:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                self._lock_owner = pid
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def writer(self) -> Iterator[_View]:
        """An exclusive transaction across all processes; durable once this exits cleanly."""
        with (
            self._write_lock(),
            self._transaction(self._writer_connection(), "BEGIN IMMEDIATE") as db,
        ):
            try:
                yield _View(db)
            except sqlite3.IntegrityError as exc:
                raise StorageError(f"log write conflicts with stored data: {exc}") from exc
            except sqlite3.Error as exc:
                raise StorageError(f"log write failed: {exc}") from exc

    def close(self) -> None:
        """Close every connection this object opened in this process; later calls reopen."""
        pid = os.getpid()
        with self._all_lock:
            self._generation += 1
            mine = [connection for owner, connection in self._all if owner == pid]
            self._all = []
        # Connections inherited across a fork belong to the parent: never touch them here.
        for connection in mine:
            connection.close()
        with self._thread_write_lock:
            if self._lock_owner == pid:
                os.close(self._lock_fd)
                self._lock_owner = None


def _owner_only(path: Path) -> None:
    """Create the database file 0600 (SQLite would follow the umask, and gives its -wal and -shm
    files the database's mode), and take group and other bits off an existing one: a log
    anyone else can write is a log anyone else can rewrite."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot open log database {path}: {exc.strerror}") from exc
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for sidecar in (f"{path}-wal", f"{path}-shm"):
        with suppress(FileNotFoundError):
            if os.stat(sidecar).st_mode & 0o077:
                os.chmod(sidecar, 0o600)
