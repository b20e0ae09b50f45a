"""The signature log never signs two histories: a server whose log database was deleted,
truncated or rolled back, whose log key was lost or replaced, or that would sign under another
public URL refuses to start with one line, and appends nothing."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.app import create_app
from server.config import dev_config
from server.state import StateDirError
from tlog.checkpoint_file import CheckpointFile
from tlog.errors import LogStartError, StorageError
from tlog.rekor_api import EXTENSION

PORT = 18_731  # never bound: these tests build the app, they do not serve it
HINT = (
    "a new log is an explicit act: keyless serve --new-log, with the old log's files moved "
    "aside (README: 'A log that never signs two histories')"
)


def _start(state: Path, port: int = PORT, **options):
    config = dev_config(port=port, state_dir=state)
    if options:
        from dataclasses import replace

        config = replace(config, **options)
    return create_app(config)


def _append(app, count: int) -> int:
    log = app.extensions[EXTENSION].log
    for _ in range(count):
        log.append(os.urandom(32))
    return log.head().size


def _close(app) -> None:
    """Close the log's database connections, as a stopped server would."""
    app.extensions[EXTENSION].log._storage.close()


def _stored_size(state: Path) -> int:
    with sqlite3.connect(state / "rekor.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM leaves").fetchone()[0]


def _remove_database(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state / 'rekor.sqlite'}{suffix}").unlink(missing_ok=True)


def _kept_size(state: Path) -> int:
    return CheckpointFile(state / "rekor-checkpoint").read().size


@pytest.fixture
def state(tmp_path) -> Path:
    """A state directory whose log signed a tree of 3 entries."""
    state = tmp_path / "state"
    app = _start(state)
    assert _append(app, 3) == 3
    _close(app)
    assert _kept_size(state) == 3
    return state


def test_a_restart_with_everything_in_place_serves_the_same_log(state) -> None:
    app = _start(state)
    assert _append(app, 2) == 5
    assert _kept_size(state) == 5
    assert (state / "rekor-checkpoint").stat().st_mode & 0o777 == 0o600


def test_a_deleted_database_refuses(state) -> None:
    _remove_database(state)
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / 'rekor.sqlite'} is empty (deleted or truncated?), but this "
        f"log has signed a tree of size 3 (kept in {state / 'rekor-checkpoint'}); "
        "starting it again would sign a second history"
    )
    assert refused.value.hint == (
        "restore the database from a backup taken after that checkpoint; " + HINT
    )
    assert _stored_size(state) == 0
    assert _kept_size(state) == 3


def test_a_database_truncated_to_nothing_refuses(state) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{state / 'rekor.sqlite'}{suffix}").unlink(missing_ok=True)
    os.truncate(state / "rekor.sqlite", 0)
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert "is empty (deleted or truncated?), but this log has signed a tree of size 3" in (
        refused.value.message
    )
    assert _stored_size(state) == 0


def test_a_database_truncated_halfway_refuses(state) -> None:
    app = _start(state)
    _append(app, 200)
    _close(app)
    database = state / "rekor.sqlite"
    assert not Path(f"{database}-wal").exists()  # checkpointed into the file on close
    os.truncate(database, database.stat().st_size // 2)
    with pytest.raises(StorageError) as refused:
        _start(state)
    assert refused.value.message == (
        f"cannot open log database {database}: database disk image is malformed"
    )
    assert _kept_size(state) == 203


def test_a_backup_from_an_hour_earlier_refuses(state, tmp_path) -> None:
    """Copy the database, append more, restore the copy: the database is behind the log."""
    backup = tmp_path / "backup"
    backup.mkdir()
    app = _start(state)
    _close(app)
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{state / 'rekor.sqlite'}{suffix}")
        if source.exists():
            shutil.copy2(source, backup)
    assert _append(app, 4) == 7
    _close(app)
    _remove_database(state)
    for copy in backup.iterdir():
        shutil.copy2(copy, state / copy.name)
    assert _stored_size(state) == 3
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / 'rekor.sqlite'} is behind this log's last checkpoint "
        f"(tree size 3, but size 7 was signed and kept in {state / 'rekor-checkpoint'}): "
        "an older copy was restored?"
    )
    assert _stored_size(state) == 3
    assert _kept_size(state) == 7


def test_a_database_that_grew_another_history_refuses(state, tmp_path) -> None:
    """A backup of size 3 grown to size 9 with other entries: larger, but not an extension."""
    backup = tmp_path / "backup"
    shutil.copytree(state, backup)
    for directory, count, size in ((state, 2, 5), (backup, 6, 9)):
        # The copy's own checkpoint file follows it to size 9.
        app = _start(directory)
        assert _append(app, count) == size
        _close(app)
    shutil.copy2(state / "rekor-checkpoint", backup / "rekor-checkpoint")
    with pytest.raises(LogStartError) as refused:
        _start(backup)
    assert refused.value.message == (
        f"the log database {backup / 'rekor.sqlite'} holds a tree of size 9 that does not "
        f"extend the tree of size 5 this log signed (kept in {backup / 'rekor-checkpoint'})"
    )


def test_a_deleted_log_key_refuses(state) -> None:
    (state / "rekor-key.pem").unlink()
    with pytest.raises(StateDirError) as refused:
        _start(state)
    assert refused.value.message == (
        f"key file {state / 'rekor-key.pem'} is missing, and {state} is not a first run: a new "
        "key would silently replace what clients trust"
    )
    assert not (state / "rekor-key.pem").exists()
    assert _stored_size(state) == 3


def test_a_replaced_log_key_refuses(state) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (state / "rekor-key.pem").write_bytes(pem)
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / 'rekor.sqlite'} was signed by another key: its checkpoint "
        f"at size 3 does not verify with {state / 'rekor-key.pem'}"
    )
    assert _stored_size(state) == 3


def test_another_port_refuses(state) -> None:
    with pytest.raises(LogStartError) as refused:
        _start(state, port=PORT + 1)
    message = refused.value.message
    assert message.startswith(
        f"the log database {state / 'rekor.sqlite'} belongs to the log '127.0.0.1:{PORT} - "
    )
    assert message.endswith(
        f"but this server would sign as '127.0.0.1:{PORT + 1} - "
        + message.split(" - ", 1)[1].split("'", 1)[0]
        + "': its public URL (host or port) changed"
    )
    assert _stored_size(state) == 3


def test_another_public_url_refuses(state) -> None:
    with pytest.raises(LogStartError) as refused:
        _start(state, public_url=f"http://localhost:{PORT}")
    assert f"but this server would sign as 'localhost:{PORT} - " in refused.value.message
    assert _kept_size(state) == 3


def test_a_deleted_database_and_checkpoint_refuse_while_the_key_remains(state) -> None:
    _remove_database(state)
    (state / "rekor-checkpoint").unlink()
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / 'rekor.sqlite'} is empty and there is no checkpoint file "
        f"{state / 'rekor-checkpoint'}, but the log key {state / 'rekor-key.pem'} exists: "
        "the log's files were removed"
    )


def test_a_new_log_is_an_explicit_act(state, tmp_path) -> None:
    old_key = (state / "rekor-key.pem").read_bytes()
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.move(state / "rekor-key.pem", archive / "rekor-key.pem")
    # Without --new-log, a lost key is refused; with it, the old log's files must be gone too.
    with pytest.raises(StateDirError):
        _start(state)
    with pytest.raises(LogStartError) as refused:
        _start(state, new_log=True)
    assert refused.value.message == (
        "--new-log starts a new signature log with a new key, but the old log's files are still "
        f"in place: {state / 'rekor-checkpoint'}, {state / 'rekor.sqlite'}"
    )
    assert refused.value.hint == (
        "move them to an archive with the old key (keep them: the old log's entries still "
        "verify), and list the old key under retired-trust as a tlog-key"
    )
    assert not (state / "rekor-key.pem").exists()
    for name in os.listdir(state):
        if name.startswith(("rekor-checkpoint", "rekor.sqlite")):
            shutil.move(state / name, archive / name)
    app = _start(state, new_log=True)
    service = app.extensions[EXTENSION]
    assert service.log.head().size == 0
    assert (state / "rekor-key.pem").read_bytes() != old_key
    assert _append(app, 1) == 1
    _close(app)
    # Once made, it is an ordinary log: a restart (or a worker) with the flag serves it.
    app = _start(state, new_log=True)
    assert _append(app, 1) == 2


def test_new_log_never_starts_a_tree_under_the_old_key(state) -> None:
    _remove_database(state)
    (state / "rekor-checkpoint").unlink()
    with pytest.raises(LogStartError) as refused:
        _start(state, new_log=True)
    assert refused.value.message.endswith(
        f"but the log key {state / 'rekor-key.pem'} exists: the log's files were removed"
    )


def test_the_rekor_v2_log_refuses_a_restored_database(tmp_path) -> None:
    from tlog.rekor_v2_api import EXTENSION as V2

    state, backup = tmp_path / "state", tmp_path / "backup"
    app = _start(state)
    log = app.extensions[V2].log
    log.append(os.urandom(32))
    log._storage.close()
    backup.mkdir()
    for name in os.listdir(state):
        if name.startswith("rekor-v2.sqlite"):
            shutil.copy2(state / name, backup / name)
    for _ in range(2):
        log.append(os.urandom(32))
    log._storage.close()
    _close(app)
    for name in os.listdir(state):
        if name.startswith("rekor-v2.sqlite"):
            (state / name).unlink()
    for copy in backup.iterdir():
        shutil.copy2(copy, state / copy.name)
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / 'rekor-v2.sqlite'} is behind this log's last checkpoint "
        f"(tree size 1, but size 3 was signed and kept in {state / 'rekor-v2-checkpoint'}): "
        "an older copy was restored?"
    )
