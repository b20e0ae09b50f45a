"""A Merkle log anchored by a checkpoint file outside its database: the file only moves forward,
is written before an append is acknowledged, and a database behind it is refused at start-up
and at every append, on SQLite and on a PostgreSQL log shared by instances."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.tlog.checkpoint import CheckpointSigner
from keyless.tlog.checkpoint_file import SLOT_BYTES, CheckpointFile, _decode
from keyless.tlog.errors import InconsistentLogError, LogStartError, StorageError
from keyless.tlog.log import Anchor, MerkleLog
from keyless.tlog.sqlite_storage import SQLiteStorage

KEY = ec.generate_private_key(ec.SECP256R1())


def _log(storage, checkpoint: Path, *, new_log: bool = True) -> MerkleLog:
    signer = CheckpointSigner(origin=f"test - {storage.tree_id}", name="test", private_key=KEY)
    anchor = Anchor(CheckpointFile(checkpoint), database="the test database", key="the test key")
    return MerkleLog(storage, signer, anchor=anchor, new_log=new_log)


def _fill(log: MerkleLog, count: int) -> int:
    for _ in range(count):
        log.append(os.urandom(16))
    return log.head().size


def test_the_file_follows_every_commit_and_never_goes_back(tmp_path) -> None:
    checkpoint = tmp_path / "checkpoint"
    first = _log(SQLiteStorage(tmp_path / "log.db"), checkpoint)
    second = _log(SQLiteStorage(tmp_path / "log.db"), checkpoint)  # another worker
    assert _fill(first, 2) == 2
    assert _fill(second, 3) == 5
    kept = CheckpointFile(checkpoint).read()
    assert kept == second.head()
    old = first.head()
    CheckpointFile(checkpoint).advance(old)  # a slower worker finishing late
    assert CheckpointFile(checkpoint).read() == kept
    assert _fill(first, 1) == 6  # the first worker follows the second's tree forward
    assert CheckpointFile(checkpoint).read().size == 6


def test_a_file_left_behind_by_a_crash_catches_up(tmp_path) -> None:
    """A crash after the commit and before the file write leaves the file behind: the stored
    tree extends it, so the log starts and the file moves forward."""
    checkpoint = tmp_path / "checkpoint"
    log = _log(SQLiteStorage(tmp_path / "log.db"), checkpoint)
    _fill(log, 3)
    shutil.copy2(checkpoint, tmp_path / "at-3.checkpoint")
    _fill(log, 2)
    shutil.copy2(tmp_path / "at-3.checkpoint", checkpoint)
    restarted = _log(SQLiteStorage(tmp_path / "log.db"), checkpoint, new_log=False)
    assert CheckpointFile(checkpoint).read().size == 5
    assert _fill(restarted, 1) == 6


def test_a_torn_write_keeps_the_previous_head(tmp_path) -> None:
    """A crash in the middle of a slot write damages that slot only: the other one holds the
    previous head, which the database extends, so the log starts and carries on."""
    checkpoint = tmp_path / "checkpoint"
    log = _log(SQLiteStorage(tmp_path / "log.db"), checkpoint)
    _fill(log, 2)
    raw = bytearray(checkpoint.read_bytes())
    assert len(raw) == 2 * SLOT_BYTES
    newest = 0 if CheckpointFile(checkpoint)._newest(bytes(raw)) == _decode(raw[:SLOT_BYTES]) else 1
    raw[newest * SLOT_BYTES + 100 : newest * SLOT_BYTES + 200] = os.urandom(100)
    checkpoint.write_bytes(raw)
    assert CheckpointFile(checkpoint).read().size == 1
    restarted = _log(SQLiteStorage(tmp_path / "log.db"), checkpoint, new_log=False)
    assert CheckpointFile(checkpoint).read().size == 2
    assert _fill(restarted, 1) == 3
    assert CheckpointFile(checkpoint).read() == restarted.head()


def test_an_append_whose_checkpoint_cannot_be_kept_is_not_acknowledged(tmp_path) -> None:
    checkpoint = tmp_path / "checkpoint"
    log = _log(SQLiteStorage(tmp_path / "log.db"), checkpoint)
    checkpoint.unlink()
    checkpoint.mkdir()  # os.replace onto a directory fails
    with pytest.raises(StorageError) as refused:
        log.append(b"not acknowledged")
    assert refused.value.message.startswith(f"cannot write the log checkpoint file {checkpoint}: ")


@pytest.mark.parametrize("content", [b"", b"{}", b'{"size": -1}', b"\xff" * 10, b"[" * 100_000])
def test_a_damaged_checkpoint_file_refuses_to_start(tmp_path, content: bytes) -> None:
    checkpoint = tmp_path / "checkpoint"
    _fill(_log(SQLiteStorage(tmp_path / "log.db"), checkpoint), 1)
    checkpoint.write_bytes(content)
    with pytest.raises(LogStartError) as refused:
        _log(SQLiteStorage(tmp_path / "log.db"), checkpoint)
    assert refused.value.message == f"the log checkpoint file {checkpoint} is not a checkpoint file"
    assert refused.value.hint == "restore it from a backup taken with the log database"


def test_a_checkpoint_signed_by_another_log_refuses_to_start(tmp_path) -> None:
    _fill(_log(SQLiteStorage(tmp_path / "other.db"), tmp_path / "other.checkpoint"), 4)
    checkpoint = tmp_path / "checkpoint"
    _fill(_log(SQLiteStorage(tmp_path / "log.db"), checkpoint), 4)
    shutil.copy2(tmp_path / "other.checkpoint", checkpoint)
    with pytest.raises(LogStartError) as refused:
        _log(SQLiteStorage(tmp_path / "log.db"), checkpoint)
    assert refused.value.message == (
        f"the log checkpoint file {checkpoint} was not signed by this log (key the test key, "
        "database the test database): one of them was replaced"
    )


# A PostgreSQL log shared by two instances, each with its own checkpoint file.

_TABLES = ("meta", "leaves", "nodes", "heads", "search")


def _pg(conninfo: str, prefix: str):
    from keyless.tlog.postgres_storage import PostgresStorage

    return PostgresStorage(conninfo, prefix=prefix)


def _sql(conninfo: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as db:
        for statement in statements:
            db.execute(statement)


def test_instances_accept_each_others_progress_and_refuse_a_rollback(postgres, tmp_path) -> None:
    prefix = f"anchor{os.getpid()}_"
    one = _log(_pg(postgres, prefix), tmp_path / "one.checkpoint")
    two = _log(_pg(postgres, prefix), tmp_path / "two.checkpoint")
    assert _fill(one, 3) == 3
    # A backup of the shared database, taken at size 3.
    _sql(postgres, *(f"CREATE TABLE bk_{prefix}{t} AS TABLE {prefix}{t}" for t in _TABLES))
    assert _fill(two, 2) == 5
    assert _fill(one, 1) == 6  # the other instance moved the tree forward: consistent
    assert CheckpointFile(tmp_path / "two.checkpoint").read().size == 5
    # A restart checks consistency, not equality: instance two's file says 5, the tree is 6.
    two = _log(_pg(postgres, prefix), tmp_path / "two.checkpoint", new_log=False)
    assert CheckpointFile(tmp_path / "two.checkpoint").read().size == 6

    _sql(
        postgres,
        *(f"TRUNCATE {prefix}{t}" for t in _TABLES),
        *(f"INSERT INTO {prefix}{t} SELECT * FROM bk_{prefix}{t}" for t in _TABLES),
    )
    # A running instance refuses to sign over the restored (older) tree...
    with pytest.raises(InconsistentLogError) as refused:
        one.append(b"over the rollback")
    assert refused.value.message == (
        "the stored tree of size 3 does not extend the checkpoint of size 6 this log signed; "
        "refusing to sign"
    )
    assert one.head().size == 3
    # ...and neither instance starts again over it.
    for name in ("one", "two"):
        with pytest.raises(LogStartError) as refused:
            _log(_pg(postgres, prefix), tmp_path / f"{name}.checkpoint", new_log=False)
        assert refused.value.message == (
            "the log database the test database is behind this log's last checkpoint (tree "
            f"size 3, but size 6 was signed and kept in {tmp_path / f'{name}.checkpoint'}): an older "
            "copy was restored?"
        )
    assert one.head().size == 3
