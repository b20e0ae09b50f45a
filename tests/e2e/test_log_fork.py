"""What is particular to each log's start-up (tests/e2e/test_log_history.py has what every log
shares): the signature log refuses a half-truncated database and a changed public URL (its
checkpoint origin), and a new signature log or CT log is the operator's explicit act
(--new-log, once the old log's files are moved aside)."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from keyless.server.state import StateDirError
from keyless.tlog.ct_api import EXTENSION_KEY
from keyless.tlog.errors import LogStartError, StorageError
from keyless.tlog.rekor_api import EXTENSION
from tests.e2e.log_files import CT, PORT, REKOR_V1, LogFiles, start


def _state(tmp_path: Path, log: LogFiles) -> Path:
    """A state directory whose log signed a tree of 3 entries."""
    state = tmp_path / "state"
    app = start(state)
    assert log.append(app, 3) == 3
    log.close(app)
    return state


@pytest.fixture
def state(tmp_path) -> Path:
    return _state(tmp_path, REKOR_V1)


@pytest.fixture
def ct_state(tmp_path) -> Path:
    return _state(tmp_path, CT)


def test_a_database_truncated_halfway_refuses(state) -> None:
    app = start(state)
    REKOR_V1.append(app, 200)
    REKOR_V1.close(app)
    database = state / "rekor.sqlite"
    assert not Path(f"{database}-wal").exists()  # checkpointed into the file on close
    os.truncate(database, database.stat().st_size // 2)
    with pytest.raises(StorageError) as refused:
        start(state)
    assert refused.value.message == (
        f"cannot open log database {database}: database disk image is malformed"
    )
    assert REKOR_V1.kept_size(state) == 203


def test_another_port_refuses(state) -> None:
    with pytest.raises(LogStartError) as refused:
        start(state, port=PORT + 1)
    message = refused.value.message
    assert message.startswith(
        f"the log database {state / 'rekor.sqlite'} belongs to the log '127.0.0.1:{PORT} - "
    )
    assert message.endswith(
        f"but this server would sign as '127.0.0.1:{PORT + 1} - "
        + message.split(" - ", 1)[1].split("'", 1)[0]
        + "': its public URL (host or port) changed"
    )
    assert REKOR_V1.stored_size(state) == 3


def test_another_public_url_refuses(state) -> None:
    with pytest.raises(LogStartError) as refused:
        start(state, public_url=f"http://localhost:{PORT}")
    assert f"but this server would sign as 'localhost:{PORT} - " in refused.value.message
    assert REKOR_V1.kept_size(state) == 3


def test_a_new_log_is_an_explicit_act(state, tmp_path) -> None:
    old_key = (state / "rekor-key.pem").read_bytes()
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.move(state / "rekor-key.pem", archive / "rekor-key.pem")
    # Without --new-log, a lost key is refused; with it, the old log's files must be gone too.
    with pytest.raises(StateDirError):
        start(state)
    with pytest.raises(LogStartError) as refused:
        start(state, new_log=True)
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
    app = start(state, new_log=True)
    service = app.extensions[EXTENSION]
    assert service.log.head().size == 0
    assert (state / "rekor-key.pem").read_bytes() != old_key
    assert REKOR_V1.append(app, 1) == 1
    REKOR_V1.close(app)
    # Once made, it is an ordinary log: a restart (or a worker) with the flag serves it.
    app = start(state, new_log=True)
    assert REKOR_V1.append(app, 1) == 2


def test_a_new_ct_log_is_an_explicit_act(ct_state, tmp_path) -> None:
    old_key = (ct_state / "ct-key.pem").read_bytes()
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.move(ct_state / "ct-key.pem", archive / "ct-key.pem")
    with pytest.raises(StateDirError):
        start(ct_state)
    with pytest.raises(LogStartError) as refused:
        start(ct_state, new_log=True)
    assert refused.value.message == (
        "--new-log starts a new CT log with a new key, but the old log's files are still "
        f"in place: {ct_state / 'ct-checkpoint'}, {ct_state / 'ct.sqlite'}"
    )
    assert refused.value.hint == (
        "move them to an archive with the old key (keep them: the old log's entries still "
        "verify), and list the old key under retired-trust as a ctlog-key"
    )
    assert not (ct_state / "ct-key.pem").exists()
    for name in os.listdir(ct_state):
        if name.startswith(("ct-checkpoint", "ct.sqlite")):
            shutil.move(ct_state / name, archive / name)
    app = start(ct_state, new_log=True)
    assert app.extensions[EXTENSION_KEY].get_sth()["tree_size"] == 0
    assert (ct_state / "ct-key.pem").read_bytes() != old_key
    # The trusted root now lists the new CT key.
    root = app.test_client().get("/api/v1/trust/trusted_root.json").get_json()
    (ctlog,) = root["ctlogs"]
    new_key = serialization.load_pem_private_key((ct_state / "ct-key.pem").read_bytes(), None)
    assert base64.b64decode(ctlog["publicKey"]["rawBytes"]) == new_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert CT.append(app, 1) == 1
    CT.close(app)
    # Once made, it is an ordinary log: a restart with the flag serves it.
    app = start(ct_state, new_log=True)
    assert CT.append(app, 1) == 2
