"""A durable, append-only Merkle log over a `LogStorage`, with group commit and signed heads.

Used by the Rekor log and the CT log alike. An append is acknowledged only after the
transaction holding it (entries, tree nodes and a newly signed tree head) is durable. Before it
signs a head, the log checks the new tree against the latest head it signed (that head's own
signature, then a consistency proof); it refuses to sign, and the batch fails, if they disagree.
Each head is checked against its predecessor, so the tree stays consistent with every head ever
signed.

With an `Anchor`, every signed head is also kept in a file outside the database
(`tlog.checkpoint_file`), written after the commit and before the append is acknowledged. At
start-up the database must then hold that head or a tree consistent with it, and its latest head
must verify with the log's key and origin; otherwise the log refuses to start (`LogStartError`)
rather than sign a second history under the same key.

Group commit: concurrent `append` calls queue up; one caller at a time commits everything queued
(up to `max_batch` entries and `MAX_BATCH_BYTES`) in one transaction, then hands the lead to the
next waiting caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from keyless.tlog import merkle, metrics
from keyless.tlog.checkpoint_file import CheckpointFile
from keyless.tlog.errors import (
    DuplicateEntryError,
    InconsistentLogError,
    LogError,
    LogStartError,
    NotFoundError,
    ProofError,
    RequestError,
    StorageError,
)
from keyless.tlog.storage import LogEntry, LogStorage, ReadView, SignedHead, WriteView

MAX_ENTRY_BYTES = 4 * 1024 * 1024
MAX_EXTRA_BYTES = 64 * 1024
MAX_KEYS_PER_ENTRY = 64
MAX_KEY_CHARS = 512
MAX_BATCH_BYTES = 32 * 1024 * 1024

_logger = logging.getLogger(__name__)


class TreeHeadSigner(Protocol):
    """Signs tree heads in a log's own format (signed-note checkpoint, CT STH, ...)."""

    def sign(self, *, size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
        """The signed serialisation of this tree head."""
        ...

    def verify(self, signed: bytes, *, size: int, root_hash: bytes) -> None:
        """Raise unless `signed` is this signer's valid signature over exactly this head."""
        ...


@dataclass(frozen=True)
class Anchor:
    """Where a log keeps its last signed head outside its database, and the names its start-up
    refusals use for the database and the key.

    `adopt_existing` is the operator's explicit `--adopt-existing-log`: a stored tree with no
    checkpoint file (a log from before checkpoint files, or a new instance joining a shared
    PostgreSQL log) is taken as this log's. Otherwise it is refused: it may as well be a
    database restored without the checkpoint file that would show it is behind."""

    checkpoint: CheckpointFile
    database: str
    key: str
    adopt_existing: bool = False


NEW_LOG_HINT = (
    "a new log is an explicit act: keyless serve --new-log, with the old log's files moved "
    "aside (README: 'A log that never signs two histories')"
)


@dataclass(frozen=True)
class NewEntry:
    """An entry to append: leaf bytes, opaque extras, search keys; `prove` asks for its proof."""

    data: bytes
    extra: bytes = b""
    keys: tuple[str, ...] = ()
    prove: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes) or not isinstance(self.extra, bytes):
            raise TypeError("entry data and extra must be bytes")
        if len(self.data) > MAX_ENTRY_BYTES:
            raise RequestError(f"entry is {len(self.data)} bytes, more than {MAX_ENTRY_BYTES}")
        if len(self.extra) > MAX_EXTRA_BYTES:
            raise RequestError(f"entry extras exceed {MAX_EXTRA_BYTES} bytes")
        if len(self.keys) > MAX_KEYS_PER_ENTRY:
            raise RequestError(f"entry has more than {MAX_KEYS_PER_ENTRY} search keys")
        if any(not isinstance(k, str) or len(k) > MAX_KEY_CHARS for k in self.keys):
            raise RequestError(f"search keys must be strings of at most {MAX_KEY_CHARS} chars")


@dataclass(frozen=True)
class Appended:
    """An acknowledged append: the stored entry, the first signed head that includes it, and
    (if asked for) its inclusion proof in that head."""

    entry: LogEntry
    head: SignedHead
    proof: tuple[bytes, ...] | None = None


@dataclass(frozen=True)
class EntryProof:
    """An entry with its inclusion proof in `head`, all read from one snapshot."""

    entry: LogEntry
    head: SignedHead
    proof: list[bytes]


@dataclass
class _Waiter:
    """One queued append. `wake` is a lock held until the waiter is finished or promoted to
    lead (a bare lock is cheaper than an Event on this hot path)."""

    item: NewEntry
    wake: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    lead: bool = False
    result: Appended | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.wake.acquire()

    def finish(self, outcome: Appended | BaseException) -> None:
        if isinstance(outcome, BaseException):
            self.error = outcome
        else:
            self.result = outcome
        self.done = True
        if not self.lead:
            self.wake.release()

    def promote(self) -> None:
        self.lead = True
        self.wake.release()

    def outcome(self) -> Appended:
        if self.error is not None:
            raise self.error
        if self.result is None:
            raise RuntimeError("group commit finished a waiter without an outcome")
        return self.result


class _KnownNodes:
    """Node hashes already read or computed in this transaction, falling back to storage."""

    def __init__(self, known: dict[merkle.NodeID, bytes], view: ReadView) -> None:
        self._known = known
        self._view = view

    def read_nodes(self, ids: Sequence[merkle.NodeID]) -> list[bytes]:
        missing = [node for node in dict.fromkeys(ids) if node not in self._known]
        if missing:
            self._known.update(zip(missing, self._view.read_nodes(missing), strict=True))
        return [self._known[node] for node in ids]


class MerkleLog:
    """A durable Merkle log: append, read, prove, and sign consistent tree heads."""

    def __init__(
        self,
        storage: LogStorage,
        signer: TreeHeadSigner,
        *,
        clock: Callable[[], float] = time.time,
        max_batch: int = 512,
        anchor: Anchor | None = None,
        new_log: bool = False,
        on_signed: Callable[[SignedHead], None] | None = None,
    ) -> None:
        """`anchor` keeps signed heads outside the database; with it, an empty database is a
        new log only if `new_log` (a first run, or the operator's explicit act). `on_signed` is
        given each newly signed head once it is kept, before the appends it covers are
        acknowledged (witnesses cosign it there); it must not raise, and bounds its own wait.

        Raises:
            LogStartError: the database, key, origin or checkpoint file disagree (anchor only).
        """
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._storage = storage
        self._signer = signer
        self._clock = clock
        self._max_batch = max_batch
        self._mutex = threading.Lock()
        self._queue: list[_Waiter] = []
        self._busy = False
        # The last head this process signed or verified. A stored head byte-identical to it
        # needs no second signature check (ECDSA signatures are randomised, so identical bytes
        # are that very head); anything else is read from storage and checked in full.
        self._verified_head: SignedHead | None = None
        self._anchor = anchor
        self._on_signed = on_signed
        # Why the last group commit failed, None once one succeeds: for health checks.
        self.last_commit_error: str | None = None
        with storage.writer() as view:
            stored = view.latest_head()
            kept = anchor.checkpoint.read() if anchor is not None else None
            if stored is None:
                if view.size() != 0:
                    raise InconsistentLogError("log has entries but no signed tree head")
                if anchor is not None:
                    self._refuse_empty(anchor, kept, new_log=new_log)
                stored = self._sign_head(
                    view, size=0, root=merkle.EMPTY_ROOT, now_ms=self._now_ms()
                )
            elif anchor is not None:
                self._check_stored(view, anchor, stored, kept)
        # The last head this process found kept or committed itself: the stored tree never
        # goes below it, and every later head must extend it.
        self._floor: SignedHead | None = None
        if anchor is not None:
            self._keep(stored)
            self._floor = stored

    def _refuse_empty(self, anchor: Anchor, kept: SignedHead | None, *, new_log: bool) -> None:
        if kept is not None:
            raise LogStartError(
                f"the log database {anchor.database} is empty (deleted or truncated?), but this "
                f"log has signed a tree of size {kept.size} (kept in {anchor.checkpoint.path}); "
                "starting it again would sign a second history",
                hint="restore the database from a backup taken after that checkpoint; "
                + NEW_LOG_HINT,
            )
        if not new_log:
            raise LogStartError(
                f"the log database {anchor.database} is empty and there is no checkpoint file "
                f"{anchor.checkpoint.path}, but the log key {anchor.key} exists: the log's "
                "files were removed",
                hint="restore the database and checkpoint file from a backup; " + NEW_LOG_HINT,
            )

    def _check_stored(
        self, view: ReadView, anchor: Anchor, stored: SignedHead, kept: SignedHead | None
    ) -> None:
        """Refuse a stored head the key does not sign, or a tree behind or beside `kept`."""
        try:
            self._signer.verify(stored.signed, size=stored.size, root_hash=stored.root_hash)
        except LogError as exc:
            raise LogStartError(
                f"the log database {anchor.database} was signed by another key: its checkpoint "
                f"at size {stored.size} does not verify with {anchor.key}",
                hint="restore the key that signed this log; " + NEW_LOG_HINT,
            ) from exc
        self._verified_head = stored
        if kept is None:
            self._adopt(anchor, stored)
            return
        try:
            self._signer.verify(kept.signed, size=kept.size, root_hash=kept.root_hash)
        except LogError as exc:
            raise LogStartError(
                f"the log checkpoint file {anchor.checkpoint.path} was not signed by this log "
                f"(key {anchor.key}, database {anchor.database}): one of them was replaced",
                hint="restore the database, key and checkpoint file of one log together",
            ) from exc
        hint = "restore the database from a backup taken after that checkpoint; " + NEW_LOG_HINT
        if stored.size < kept.size:
            raise LogStartError(
                f"the log database {anchor.database} is behind this log's last checkpoint "
                f"(tree size {stored.size}, but size {kept.size} was signed and kept in "
                f"{anchor.checkpoint.path}): an older copy was restored?",
                hint=hint,
            )
        if stored.size == kept.size:
            consistent = stored.root_hash == kept.root_hash
        else:
            consistent = _extends(view, kept, stored)
        if not consistent:
            raise LogStartError(
                f"the log database {anchor.database} holds a tree of size {stored.size} that "
                f"does not extend the tree of size {kept.size} this log signed (kept in "
                f"{anchor.checkpoint.path})",
                hint=hint,
            )

    def _adopt(self, anchor: Anchor, stored: SignedHead) -> None:
        """A stored tree with no checkpoint file becomes this log's only by the operator's
        explicit act (the file then starts from it); an empty one is a log just created."""
        if stored.size == 0:
            return
        if not anchor.adopt_existing:
            raise LogStartError(
                f"the log database {anchor.database} holds a tree of size {stored.size}, but "
                f"there is no checkpoint file {anchor.checkpoint.path}: a database restored "
                "without it cannot be told from the log's latest state",
                hint="restore the checkpoint file with the database; for a log from before "
                "checkpoint files, or a new instance joining a shared PostgreSQL log, start "
                "once with keyless serve --adopt-existing-log (KEYLESS_ADOPT_EXISTING_LOG=1 "
                "under gunicorn)",
            )
        _logger.warning(
            "ADOPTING AN EXISTING LOG: the log database %s holds a tree of size %d and there "
            "was no checkpoint file; --adopt-existing-log takes it as this log's latest state "
            "and keeps it in %s. If this database was restored from a backup, entries "
            "acknowledged after that backup are gone and this log now signs a second history.",
            anchor.database,
            stored.size,
            anchor.checkpoint.path,
        )

    def _keep(self, head: SignedHead) -> None:
        """Keep `head` in the anchor's file (durably) before anything acknowledges it."""
        if self._anchor is None:
            return
        try:
            self._anchor.checkpoint.advance(head)
        except OSError as exc:
            error = StorageError(
                f"cannot write the log checkpoint file {self._anchor.checkpoint.path}: "
                f"{exc.strerror or exc}"
            )
            # Nothing can be acknowledged: the log cannot commit, as far as health goes.
            self.last_commit_error = error.message
            raise error from exc

    def _signed(self, head: SignedHead) -> None:
        """Hand a kept head to `on_signed` (the seam where witnesses cosign it)."""
        if self._on_signed is not None:
            self._on_signed(head)

    def close(self) -> None:
        """Close the storage's connections in this process (a log that stops serving)."""
        self._storage.close()

    @property
    def tree_id(self) -> int:
        """The storage's tree ID."""
        return self._storage.tree_id

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # Appending.

    def append(
        self, data: bytes, *, extra: bytes = b"", keys: Sequence[str] = (), prove: bool = False
    ) -> Appended:
        """Append one entry through group commit; returns once it is durable.

        With `prove`, the result carries the entry's inclusion proof in the returned head,
        computed inside the commit (one batched read for the whole group).

        Raises:
            DuplicateEntryError: an entry with the same leaf hash exists (its index is given).
            InconsistentLogError: the stored tree disagrees with the last signed head.
            StorageError: the storage failed; the entry was not acknowledged.
        """
        waiter = _Waiter(NewEntry(data, extra, tuple(keys), prove))
        with self._mutex:
            self._queue.append(waiter)
            lead = not self._busy
            self._busy = True
        if lead:
            waiter.lead = True
        else:
            waiter.wake.acquire()
        if not waiter.done:
            self._lead()
        return waiter.outcome()

    def _lead(self) -> None:
        with self._mutex:
            # Bounded by count and by bytes (the first waiter always goes, being our own).
            taken, total = 0, 0
            for waiter in self._queue[: self._max_batch]:
                total += len(waiter.item.data) + len(waiter.item.extra)
                if taken and total > MAX_BATCH_BYTES:
                    break
                taken += 1
            batch = self._queue[:taken]
            del self._queue[:taken]
        head: SignedHead | None = None
        try:
            outcomes: Sequence[Appended | LogError | BaseException]
            outcomes, head = self._timed_commit([waiter.item for waiter in batch])
        except BaseException as exc:
            outcomes = [exc] * len(batch)
        # The lead passes on before this group's checkpoint is written, so the next group
        # commits meanwhile; this group is acknowledged only once the file holds its head
        # (or a later one: the file never goes back).
        with self._mutex:
            if self._queue:
                self._queue[0].promote()
            else:
                self._busy = False
        if head is not None:
            try:
                self._keep(head)
            except BaseException as exc:
                outcomes = [exc if isinstance(o, Appended) else o for o in outcomes]
            else:
                self._signed(head)
        for waiter, outcome in zip(batch, outcomes, strict=True):
            waiter.finish(outcome)

    def append_batch(self, items: Sequence[NewEntry]) -> list[Appended | LogError]:
        """Append `items` in one durable transaction; duplicates come back as errors.

        Raises:
            InconsistentLogError: the stored tree disagrees with the last signed head.
            StorageError: the storage failed; nothing was appended (or, for the checkpoint
                file only, nothing was acknowledged).
        """
        result, head = self._timed_commit(items)
        if head is not None:
            self._keep(head)
            self._signed(head)
        return result

    def _timed_commit(
        self, items: Sequence[NewEntry]
    ) -> tuple[list[Appended | LogError], SignedHead | None]:
        """`_commit_batch`, timed and its failure kept for /metrics and /healthz."""
        started = time.perf_counter()
        try:
            outcome = self._commit_batch(items)
        except BaseException as exc:
            metrics.COMMIT_FAILURES.inc()
            self.last_commit_error = str(exc)[:300] or type(exc).__name__
            raise
        finally:
            metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        self.last_commit_error = None
        return outcome

    def check_kept(self) -> str | None:
        """Why this log's checkpoint file does not verify with its key, or None (also for a
        log without one). Reads one small file: cheap enough for a health check."""
        if self._anchor is None:
            return None
        path = self._anchor.checkpoint.path
        try:
            kept = self._anchor.checkpoint.read()
        except LogError as exc:
            return exc.message
        if kept is None:
            return f"the log checkpoint file {path} is missing"
        try:
            self._signer.verify(kept.signed, size=kept.size, root_hash=kept.root_hash)
        except LogError:
            return f"the log checkpoint file {path} does not verify with the log's key"
        return None

    def _commit_batch(
        self, items: Sequence[NewEntry]
    ) -> tuple[list[Appended | LogError], SignedHead | None]:
        """Commit `items`; also returns the newly signed head (None if nothing was new), which
        must be kept (`_keep`) before anything is acknowledged."""
        now_ms = self._now_ms()
        outcomes: list[Appended | LogError | None] = [None] * len(items)
        with self._storage.writer() as view:
            size = view.size()
            previous = self._check_latest_head(view, size)
            self._check_anchored(view, previous)
            hashes = [merkle.leaf_hash(item.data) for item in items]
            existing = view.find_leaves(hashes)
            fresh: list[LogEntry] = []
            fresh_items: list[NewEntry] = []
            fresh_keys: list[tuple[str, ...]] = []
            proofs: dict[int, list[bytes]] = {}
            positions: dict[bytes, int] = {}
            for slot, (item, digest) in enumerate(zip(items, hashes, strict=True)):
                index = existing.get(digest, positions.get(digest))
                if index is not None:
                    outcomes[slot] = DuplicateEntryError(
                        "an equivalent entry already exists in the log",
                        index=index,
                        leaf_hash=digest,
                    )
                    continue
                index = size + len(fresh)
                positions[digest] = index
                fresh.append(LogEntry(index, item.data, digest, now_ms, item.extra))
                fresh_items.append(item)
                fresh_keys.append(item.keys)
            head = previous
            if fresh:
                frontier_ids = merkle.frontier(size)
                frontier = view.read_nodes(frontier_ids)
                nodes = merkle.append_nodes(size, frontier, [e.leaf_hash for e in fresh])
                view.add_entries(fresh, fresh_keys)
                view.add_nodes(nodes)
                # Roots and proofs over the new tree need the stored frontier and the new
                # nodes, both at hand; anything else is read from the transaction.
                known = _KnownNodes(
                    {**dict(zip(frontier_ids, frontier, strict=True)), **nodes}, view
                )
                new_size = size + len(fresh)
                root = merkle.root_hash(new_size, known)
                self._check_consistent(known, previous, new_size, root)
                head = self._sign_head(view, size=new_size, root=root, now_ms=now_ms)
                wanted = [e.index for e, item in zip(fresh, fresh_items, strict=True) if item.prove]
                proofs = merkle.inclusion_proofs(wanted, new_size, known)
        if head is not previous and self._anchor is not None:
            self._floor = head
        by_index = {entry.index: entry for entry in fresh}
        result: list[Appended | LogError] = []
        for slot, digest in enumerate(hashes):
            outcome = outcomes[slot]
            if outcome is None:
                index = positions[digest]
                proof = proofs.get(index)
                outcome = Appended(
                    by_index[index], head, tuple(proof) if proof is not None else None
                )
            result.append(outcome)
        return result, (head if head is not previous else None)

    def _check_latest_head(self, view: ReadView, size: int) -> SignedHead:
        head = view.latest_head()
        if head is None or head.size != size:
            raise InconsistentLogError(
                f"the latest signed tree head does not cover the stored tree of size {size}"
            )
        if head == self._verified_head:
            return head
        try:
            self._signer.verify(head.signed, size=head.size, root_hash=head.root_hash)
        except LogError as exc:
            raise InconsistentLogError(
                f"the stored signed tree head at size {head.size} does not verify: {exc.message}"
            ) from exc
        self._verified_head = head
        return head

    def _check_anchored(self, view: ReadView, previous: SignedHead) -> None:
        """The stored tree may have been moved forward by another process or instance, never
        back: it must extend the last head this process kept or committed."""
        anchored = self._floor
        if anchored is None or previous == anchored:
            return
        if previous.size < anchored.size or not _extends(view, anchored, previous):
            raise InconsistentLogError(
                f"the stored tree of size {previous.size} does not extend the checkpoint of size "
                f"{anchored.size} this log signed; refusing to sign"
            )

    def _check_consistent(
        self, view: merkle.NodeReader, previous: SignedHead, new_size: int, root: bytes
    ) -> None:
        if previous.size == 0:
            return
        proof = merkle.consistency_proof(previous.size, new_size, view)
        try:
            merkle.verify_consistency(
                size1=previous.size,
                size2=new_size,
                proof=proof,
                root1=previous.root_hash,
                root2=root,
            )
        except ProofError as exc:
            raise InconsistentLogError(
                f"tree of size {new_size} is not consistent with the signed head at size "
                f"{previous.size}; refusing to sign"
            ) from exc

    def _sign_head(self, view: WriteView, *, size: int, root: bytes, now_ms: int) -> SignedHead:
        signed = self._signer.sign(size=size, root_hash=root, timestamp_ms=now_ms)
        head = SignedHead(size, root, now_ms, signed)
        view.add_head(head)
        self._verified_head = head
        return head

    # Reading and proving.

    def head(self) -> SignedHead:
        """The latest signed tree head (it covers every entry)."""
        with self._storage.reader() as view:
            head = view.latest_head()
        if head is None:
            raise StorageError("log has no signed tree head")
        return head

    def entry(self, index: int) -> LogEntry:
        """The entry at `index`.

        Raises:
            NotFoundError: no such entry.
        """
        found = self.entries(index, index + 1)
        if not found:
            raise NotFoundError(f"no entry at index {index}")
        return found[0]

    def entries(self, start: int, end: int) -> list[LogEntry]:
        """Entries with start <= index < end (fewer at the end of the log)."""
        if not 0 <= start <= end or end - start > 10_000:
            raise RequestError(f"bad entry range [{start}, {end})")
        with self._storage.reader() as view:
            return view.entries(start, end)

    def find(self, leaf_hash: bytes) -> int | None:
        """The index of the entry with this leaf hash, if any."""
        with self._storage.reader() as view:
            return view.find_leaves([leaf_hash]).get(leaf_hash)

    def search(self, key: str, *, limit: int = 1000) -> list[int]:
        """Indices stored under search `key`, oldest first."""
        with self._storage.reader() as view:
            return view.search(key, limit=limit)

    def prove(self, index: int) -> EntryProof:
        """Entry `index` with its inclusion proof in the latest signed head.

        Raises:
            NotFoundError: no such entry.
        """
        with self._storage.reader() as view:
            head = view.latest_head()
            if head is None:
                raise StorageError("log has no signed tree head")
            found = view.entries(index, index + 1) if 0 <= index < head.size else []
            if not found:
                raise NotFoundError(f"no entry at index {index}")
            proof = merkle.inclusion_proof(index, head.size, view)
        return EntryProof(found[0], head, proof)

    def inclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """The root at `size` and the audit path of leaf `index` in it."""
        with self._storage.reader() as view:
            current = view.size()
            if not 0 <= index < size <= current:
                raise RequestError(f"no leaf {index} in a tree of {size} (log size {current})")
            return merkle.root_hash(size, view), merkle.inclusion_proof(index, size, view)

    def consistency_proof(self, size1: int, size2: int) -> tuple[bytes, list[bytes]]:
        """The root at `size2` and the consistency proof from `size1` to it."""
        with self._storage.reader() as view:
            current = view.size()
            if not 1 <= size1 <= size2 <= current:
                raise RequestError(
                    f"no consistency proof from size {size1} to {size2} (log size {current})"
                )
            return merkle.root_hash(size2, view), merkle.consistency_proof(size1, size2, view)

    def root_hash(self, size: int) -> bytes:
        """The root of the tree of the first `size` entries."""
        with self._storage.reader() as view:
            current = view.size()
            if not 0 <= size <= current:
                raise RequestError(f"no tree of size {size} (log size {current})")
            return merkle.root_hash(size, view)


def _extends(view: merkle.NodeReader, older: SignedHead, newer: SignedHead) -> bool:
    """Whether the stored tree behind `newer` extends `older` (a consistency proof)."""
    if older.size == 0:
        return older.root_hash == merkle.EMPTY_ROOT
    if newer.size < older.size:
        return False
    if newer.size == older.size:
        return newer.root_hash == older.root_hash
    try:
        proof = merkle.consistency_proof(older.size, newer.size, view)
        merkle.verify_consistency(
            size1=older.size,
            size2=newer.size,
            proof=proof,
            root1=older.root_hash,
            root2=newer.root_hash,
        )
    except (ProofError, StorageError):
        return False
    return True
