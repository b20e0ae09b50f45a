"""No log a keyless server keeps (Rekor v1, Rekor v2, CT) ever signs two histories: a server
whose log database was deleted, truncated, rolled back or forked, whose checkpoint file is
another log's, or whose log key was lost or replaced, refuses to start with one line and
appends nothing. Each case runs once per log."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from keyless.server.state import StateDirError
from keyless.tlog.errors import LogStartError
from tests.e2e.log_files import LOGS, LogFiles, start

HINT = (
    "a new log is an explicit act: keyless serve --new-log, with the old log's files moved "
    "aside (README: 'A log that never signs two histories')"
)


@pytest.fixture(params=LOGS, ids=[log.name for log in LOGS])
def log(request) -> LogFiles:
    return request.param


@pytest.fixture
def state(tmp_path, log: LogFiles) -> Path:
    """A state directory whose log signed a tree of 3 entries."""
    state = tmp_path / "state"
    app = start(state)
    assert log.append(app, 3) == 3
    log.close(app)
    assert log.kept_size(state) == 3
    return state


def test_a_restart_with_everything_in_place_serves_the_same_log(state, log) -> None:
    app = start(state)
    assert log.append(app, 2) == 5
    assert log.kept_size(state) == 5
    assert (state / log.checkpoint).stat().st_mode & 0o777 == 0o600


def test_a_database_without_its_checkpoint_file_refuses(state, log) -> None:
    """A database restored without the checkpoint file that would show it is behind looks
    like a log from before checkpoint files: neither is taken without the operator's word."""
    (state / log.checkpoint).unlink()
    with pytest.raises(LogStartError) as refused:
        start(state)
    assert refused.value.message == (
        f"the log database {state / log.database} holds a tree of size 3, but there is no "
        f"checkpoint file {state / log.checkpoint}: a database restored without it cannot be "
        "told from the log's latest state"
    )
    assert refused.value.hint == (
        "restore the checkpoint file with the database; for a log from before checkpoint "
        "files, or a new instance joining a shared PostgreSQL log, start once with keyless "
        "serve --adopt-existing-log (KEYLESS_ADOPT_EXISTING_LOG=1 under gunicorn)"
    )
    assert not (state / log.checkpoint).exists()
    assert log.stored_size(state) == 3


def test_a_log_from_before_checkpoint_files_is_adopted_explicitly(state, log, caplog) -> None:
    (state / log.checkpoint).unlink()
    with caplog.at_level(logging.WARNING, logger="keyless.tlog.log"):
        app = start(state, adopt_existing_log=True)
    assert (
        f"ADOPTING AN EXISTING LOG: the log database {state / log.database} holds a tree of "
        "size 3 and there was no checkpoint file"
    ) in caplog.text
    assert log.kept_size(state) == 3
    assert log.append(app, 1) == 4
    log.close(app)
    # From then on the checkpoint file anchors it: no flag needed, and none taken as adoption.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="keyless.tlog.log"):
        app = start(state)
    assert "ADOPTING" not in caplog.text
    assert log.append(app, 1) == 5


def test_a_deleted_database_refuses(state, log) -> None:
    log.remove_database(state)
    with pytest.raises(LogStartError) as refused:
        start(state)
    assert refused.value.message == (
        f"the log database {state / log.database} is empty (deleted or truncated?), but this "
        f"log has signed a tree of size 3 (kept in {state / log.checkpoint}); "
        "starting it again would sign a second history"
    )
    assert refused.value.hint == (
        "restore the database from a backup taken after that checkpoint; " + HINT
    )
    assert log.stored_size(state) == 0
    assert log.kept_size(state) == 3


def test_a_database_truncated_to_nothing_refuses(state, log) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{state / log.database}{suffix}").unlink(missing_ok=True)
    os.truncate(state / log.database, 0)
    with pytest.raises(LogStartError) as refused:
        start(state)
    assert "is empty (deleted or truncated?), but this log has signed a tree of size 3" in (
        refused.value.message
    )
    assert log.stored_size(state) == 0


def test_a_backup_from_earlier_refuses(state, log, tmp_path) -> None:
    """Copy the database, append more, restore the copy: the database is behind the log."""
    backup = tmp_path / "backup"
    backup.mkdir()
    for name in os.listdir(state):
        if name.startswith(log.database):
            shutil.copy2(state / name, backup / name)
    app = start(state)
    assert log.append(app, 4) == 7
    log.close(app)
    log.remove_database(state)
    for copy in backup.iterdir():
        shutil.copy2(copy, state / copy.name)
    assert log.stored_size(state) == 3
    with pytest.raises(LogStartError) as refused:
        start(state)
    assert refused.value.message == (
        f"the log database {state / log.database} is behind this log's last checkpoint "
        f"(tree size 3, but size 7 was signed and kept in {state / log.checkpoint}): "
        "an older copy was restored?"
    )
    assert log.stored_size(state) == 3
    assert log.kept_size(state) == 7


def test_a_database_that_grew_another_history_refuses(state, log, tmp_path) -> None:
    """A copy of size 3 grown to size 9 with other entries: larger, but not an extension."""
    fork = tmp_path / "fork"
    shutil.copytree(state, fork)
    for directory, count, size in ((state, 2, 5), (fork, 6, 9)):
        # The copy's own checkpoint file follows it to size 9.
        app = start(directory)
        assert log.append(app, count) == size
        log.close(app)
    shutil.copy2(state / log.checkpoint, fork / log.checkpoint)
    with pytest.raises(LogStartError) as refused:
        start(fork)
    assert refused.value.message == (
        f"the log database {fork / log.database} holds a tree of size 9 that does not "
        f"extend the tree of size 5 this log signed (kept in {fork / log.checkpoint})"
    )


def test_a_deleted_key_refuses(state, log) -> None:
    (state / log.key).unlink()
    with pytest.raises(StateDirError) as refused:
        start(state)
    assert refused.value.message == (
        f"key file {state / log.key} is missing, and {state} is not a first run: a new "
        "key would silently replace what clients trust"
    )
    assert not (state / log.key).exists()
    assert log.stored_size(state) == 3


def test_a_replaced_key_refuses(state, log) -> None:
    (state / log.key).write_bytes(log.new_key_pem())
    with pytest.raises(LogStartError) as refused:
        start(state)
    assert refused.value.message == (
        f"the log database {state / log.database} was signed by another key: its checkpoint "
        f"at size 3 does not verify with {state / log.key}"
    )
    assert log.stored_size(state) == 3


def test_a_checkpoint_from_another_log_refuses(state, log, tmp_path) -> None:
    """The database and key agree, but the kept head is another log's (a mixed restore)."""
    other = tmp_path / "other"
    app = start(other)
    log.append(app, 4)
    log.close(app)
    shutil.copy2(other / log.checkpoint, state / log.checkpoint)
    with pytest.raises(LogStartError) as refused:
        start(state)
    assert refused.value.message == (
        f"the log checkpoint file {state / log.checkpoint} was not signed by this log "
        f"(key {state / log.key}, database {state / log.database}): one of them was replaced"
    )


def test_a_deleted_database_and_checkpoint_refuse_while_the_key_remains(state, log) -> None:
    log.remove_database(state)
    (state / log.checkpoint).unlink()
    with pytest.raises(LogStartError) as refused:
        start(state)
    assert refused.value.message == (
        f"the log database {state / log.database} is empty and there is no checkpoint file "
        f"{state / log.checkpoint}, but the log key {state / log.key} exists: "
        "the log's files were removed"
    )
    # --new-log never starts a tree under the old key either.
    with pytest.raises(LogStartError) as refused:
        start(state, new_log=True)
    assert refused.value.message.endswith(
        f"but the log key {state / log.key} exists: the log's files were removed"
    )
