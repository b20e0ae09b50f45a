"""The durable Merkle log over SQLite: appends, proofs, heads, concurrency, processes, tampering."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.tlog import merkle
from keyless.tlog.checkpoint import CheckpointSigner, verify_checkpoint
from keyless.tlog.errors import (
    CheckpointError,
    DuplicateEntryError,
    InconsistentLogError,
    NotFoundError,
    RequestError,
)
from keyless.tlog.log import MerkleLog, NewEntry
from keyless.tlog.sqlite_storage import SQLiteStorage
from tests.tlog.conftest import check_tree

KEY = ec.generate_private_key(ec.SECP256R1())


def _open(path: Path, key: ec.EllipticCurvePrivateKey = KEY) -> MerkleLog:
    storage = SQLiteStorage(path)
    signer = CheckpointSigner(
        origin=f"log.test - {storage.tree_id}", name="log.test", private_key=key
    )
    return MerkleLog(storage, signer)


def test_empty_log_has_signed_head(tmp_path: Path) -> None:
    log = _open(tmp_path / "log.db")
    head = log.head()
    assert (head.size, head.root_hash) == (0, merkle.EMPTY_ROOT)
    assert verify_checkpoint(head.signed, public_key=KEY.public_key()).size == 0


def test_append_prove_and_reopen(tmp_path: Path) -> None:
    log = _open(tmp_path / "log.db")
    tree_id = log.tree_id
    appended = [
        log.append(f"entry {i}".encode(), extra=b"x", keys=[f"k{i % 3}"]) for i in range(20)
    ]
    assert [a.entry.index for a in appended] == list(range(20))
    for a in appended:
        assert a.head.size == a.entry.index + 1
        assert a.entry.extra == b"x"
    assert log.search("k1") == [1, 4, 7, 10, 13, 16, 19]
    assert log.find(merkle.leaf_hash(b"entry 5")) == 5
    assert log.find(merkle.leaf_hash(b"absent")) is None
    check_tree(log, key=KEY, name="log.test")
    with sqlite3.connect(tmp_path / "log.db") as db:
        assert db.execute("SELECT size FROM heads").fetchall() == [(20,)]
    reopened = _open(tmp_path / "log.db")
    assert reopened.tree_id == tree_id
    assert reopened.head() == log.head()
    assert reopened.append(b"entry 20").entry.index == 20
    check_tree(reopened, key=KEY, name="log.test")


def test_consistency_between_many_pairs(tmp_path: Path) -> None:
    log = _open(tmp_path / "log.db")
    roots = {0: merkle.EMPTY_ROOT}
    for i in range(40):
        head = log.append(i.to_bytes(2, "big")).head
        roots[head.size] = head.root_hash
    for size1 in range(1, 41):
        for size2 in range(size1, 41):
            root2, proof = log.consistency_proof(size1, size2)
            assert root2 == roots[size2]
            merkle.verify_consistency(
                size1=size1, size2=size2, proof=proof, root1=roots[size1], root2=root2
            )
    with pytest.raises(RequestError):
        log.consistency_proof(5, 41)
    with pytest.raises(RequestError):
        log.consistency_proof(0, 3)


def test_duplicate_is_refused_with_existing_index(tmp_path: Path) -> None:
    log = _open(tmp_path / "log.db")
    log.append(b"a")
    log.append(b"b")
    with pytest.raises(DuplicateEntryError) as excinfo:
        log.append(b"a")
    assert excinfo.value.index == 0
    assert log.head().size == 2
    outcomes = log.append_batch([NewEntry(b"c"), NewEntry(b"c"), NewEntry(b"b")])
    assert outcomes[0].entry.index == 2
    assert isinstance(outcomes[1], DuplicateEntryError) and outcomes[1].index == 2
    assert isinstance(outcomes[2], DuplicateEntryError) and outcomes[2].index == 1
    assert log.head().size == 3


def test_oversized_entry_is_refused(tmp_path: Path) -> None:
    log = _open(tmp_path / "log.db")
    with pytest.raises(RequestError) as excinfo:
        log.append(b"x" * (4 * 1024 * 1024 + 1))
    assert excinfo.value.message == "entry is 4194305 bytes, more than 4194304"
    assert log.head().size == 0


def test_concurrent_threads_group_commit(tmp_path: Path) -> None:
    log = _open(tmp_path / "log.db")
    results: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(40):
            index = log.append(f"{n}-{i}".encode()).entry.index
            with lock:
                results.append(index)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(640))
    proven = log.append(b"proven", prove=True)
    assert proven.proof is not None
    merkle.verify_inclusion(
        index=proven.entry.index,
        size=proven.head.size,
        leaf=merkle.leaf_hash(b"proven"),
        proof=list(proven.proof),
        root=proven.head.root_hash,
    )
    assert log.append(b"unproven").proof is None
    data = check_tree(log, key=KEY, name="log.test")
    expected = [f"{n}-{i}".encode() for n in range(16) for i in range(40)]
    assert sorted(data) == sorted([*expected, b"proven", b"unproven"])


def _process_appender(path: str, tag: int, count: int, key_pem: bytes) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_pem, None)
    log = _open(Path(path), key)
    for i in range(count):
        log.append(f"p{tag}-{i}".encode())


def test_processes_share_one_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    path = tmp_path / "log.db"
    _open(path)
    pem = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_process_appender, args=(str(path), tag, 60, pem))
        for tag in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    log = _open(path)
    data = check_tree(log, key=KEY, name="log.test")
    assert sorted(data) == sorted(f"p{t}-{i}".encode() for t in range(3) for i in range(60))


def test_tampered_node_makes_log_refuse_to_sign(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = _open(path)
    for i in range(6):
        log.append(bytes([i]))
    # Node (1, 2) covers leaves 4-5: it is in the frontier that the next root folds.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE nodes SET hash = ? WHERE id = ?", (b"\x00" * 32, (2 << 2) | 1))
    with pytest.raises(InconsistentLogError) as excinfo:
        log.append(b"next")
    assert excinfo.value.message == (
        "tree of size 7 is not consistent with the signed head at size 6; refusing to sign"
    )
    assert log.head().size == 6
    assert log.find(merkle.leaf_hash(b"next")) is None


def test_forged_head_makes_log_refuse_to_sign(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = _open(path)
    log.append(b"a")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE heads SET root = ? WHERE size = 1", (b"\x01" * 32,))
    with pytest.raises(InconsistentLogError) as excinfo:
        log.append(b"b")
    assert excinfo.value.message.startswith(
        "the stored signed tree head at size 1 does not verify: signed checkpoint is for"
    )
    assert log.entries(0, 10)[-1].index == 0


def test_truncated_tree_makes_log_refuse_to_sign(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = _open(path)
    log.append(b"a")
    log.append(b"b")
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM leaves WHERE idx = 1")
    with pytest.raises(InconsistentLogError) as excinfo:
        log.append(b"c")
    assert excinfo.value.message == (
        "the latest signed tree head does not cover the stored tree of size 1"
    )


def test_concurrent_duplicates_are_logged_once(tmp_path: Path) -> None:
    log = _open(tmp_path / "log.db")
    outcomes: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        for i in range(10):
            try:
                result: object = log.append(b"same %d" % i)
            except DuplicateEntryError as exc:
                result = exc
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data = check_tree(log, key=KEY, name="log.test")
    assert sorted(data) == sorted(b"same %d" % i for i in range(10))
    index_of = {e.data: e.index for e in log.entries(0, 10)}
    appended = [o for o in outcomes if not isinstance(o, DuplicateEntryError)]
    assert sorted(a.entry.index for a in appended) == list(range(10))
    for outcome in outcomes:
        if isinstance(outcome, DuplicateEntryError):
            entry = log.entry(outcome.index)
            assert index_of[entry.data] == outcome.index
            assert merkle.leaf_hash(entry.data) == outcome.leaf_hash


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(
            lambda log: log.entries(5, 3), RequestError, "bad entry range [5, 3)", id="backwards"
        ),
        pytest.param(
            lambda log: log.entries(0, 10_001),
            RequestError,
            "bad entry range [0, 10001)",
            id="range-too-long",
        ),
        pytest.param(
            lambda log: log.prove(3), NotFoundError, "no entry at index 3", id="prove-past-end"
        ),
        pytest.param(
            lambda log: log.inclusion_proof(2, 4),
            RequestError,
            "no leaf 2 in a tree of 4 (log size 3)",
            id="proof-beyond-log",
        ),
        pytest.param(
            lambda log: log.root_hash(4),
            RequestError,
            "no tree of size 4 (log size 3)",
            id="root-beyond-log",
        ),
    ],
)
def test_out_of_range_reads_are_refused(tmp_path: Path, call, error, message: str) -> None:
    log = _open(tmp_path / "log.db")
    for i in range(3):
        log.append(bytes([i]))
    with pytest.raises(error) as excinfo:
        call(log)
    assert excinfo.value.message == message


def test_signer_refuses_a_head_for_another_tree() -> None:
    signer = CheckpointSigner(origin="log.test - 1", name="log.test", private_key=KEY)
    other = CheckpointSigner(origin="log.test - 2", name="log.test", private_key=KEY)
    signed = other.sign(size=3, root_hash=merkle.leaf_hash(b"r"), timestamp_ms=0)
    with pytest.raises(CheckpointError) as excinfo:
        signer.verify(signed, size=3, root_hash=merkle.leaf_hash(b"r"))
    assert excinfo.value.message == (
        "signed checkpoint is for 'log.test - 2' size 3, expected 'log.test - 1' size 3 "
        "with the stored root"
    )
    signed = signer.sign(size=3, root_hash=merkle.leaf_hash(b"r"), timestamp_ms=0)
    signer.verify(signed, size=3, root_hash=merkle.leaf_hash(b"r"))
    with pytest.raises(CheckpointError):
        signer.verify(signed, size=4, root_hash=merkle.leaf_hash(b"r"))
