"""The in-process CT log never signs two histories either: a server whose CT database was
deleted, truncated, rolled back or forked, or whose CT key was lost or replaced, refuses to start
with one line, and logs nothing; a new CT log is the operator's explicit act (--new-log)."""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ca.profile import build_leaf
from ca.sct import build_precertificate
from oidc import Principal, SANType
from server.app import create_app
from server.config import dev_config
from server.state import StateDirError
from tlog.checkpoint_file import CheckpointFile
from tlog.ct_api import EXTENSION_KEY
from tlog.errors import LogStartError

PORT = 18_733  # never bound: these tests build the app, they do not serve it
HINT = (
    "a new log is an explicit act: keyless serve --new-log, with the old log's files moved "
    "aside (README: 'A log that never signs two histories')"
)
_SERIALS = itertools.count(1)


def _start(state: Path, **options):
    return create_app(replace(dev_config(port=PORT, state_dir=state), **options))


def _append(app, count: int) -> int:
    """Log `count` precertificates from the deployment's own CA; the CT tree's size after."""
    ct = app.extensions[EXTENSION_KEY]
    config = app.extensions["keyless.config"]
    now = datetime.now(UTC)
    signer = config.ca.load_signer(state_dir=config.state_dir, now=now)
    for _ in range(count):
        principal = Principal(SANType.EMAIL, "ct@example.com", "ct@example.com", {1: "x"})
        builder = build_leaf(
            principal,
            public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
            issuer=signer.chain[0],
            serial=next(_SERIALS),
            now=now,
        )
        precert = build_precertificate(builder, signer)
        ct.add_pre_chain(
            [c.public_bytes(serialization.Encoding.DER) for c in (precert, *signer.chain)]
        )
    return ct.get_sth()["tree_size"]


def _close(app) -> None:
    """Close the CT log's database connections, as a stopped server would."""
    app.extensions[EXTENSION_KEY].log._storage.close()


def _stored_size(state: Path) -> int:
    with sqlite3.connect(state / "ct.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM leaves").fetchone()[0]


def _remove_database(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state / 'ct.sqlite'}{suffix}").unlink(missing_ok=True)


def _kept_size(state: Path) -> int:
    return CheckpointFile(state / "ct-checkpoint").read().size


def _new_key_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture
def state(tmp_path) -> Path:
    """A state directory whose CT log signed a tree of 3 entries."""
    state = tmp_path / "state"
    app = _start(state)
    assert _append(app, 3) == 3
    _close(app)
    assert _kept_size(state) == 3
    return state


def test_a_restart_with_everything_in_place_serves_the_same_ct_log(state) -> None:
    app = _start(state)
    assert _append(app, 2) == 5
    assert _kept_size(state) == 5
    assert (state / "ct-checkpoint").stat().st_mode & 0o777 == 0o600


def test_a_ct_state_from_before_checkpoint_files_starts_one(state) -> None:
    (state / "ct-checkpoint").unlink()
    app = _start(state)
    assert _kept_size(state) == 3
    assert _append(app, 1) == 4
    assert _kept_size(state) == 4


def test_a_deleted_ct_database_refuses(state) -> None:
    _remove_database(state)
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / 'ct.sqlite'} is empty (deleted or truncated?), but this "
        f"log has signed a tree of size 3 (kept in {state / 'ct-checkpoint'}); "
        "starting it again would sign a second history"
    )
    assert refused.value.hint == (
        "restore the database from a backup taken after that checkpoint; " + HINT
    )
    assert _stored_size(state) == 0
    assert _kept_size(state) == 3


def test_a_ct_database_truncated_to_nothing_refuses(state) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{state / 'ct.sqlite'}{suffix}").unlink(missing_ok=True)
    os.truncate(state / "ct.sqlite", 0)
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert "is empty (deleted or truncated?), but this log has signed a tree of size 3" in (
        refused.value.message
    )
    assert _stored_size(state) == 0


def test_a_ct_backup_from_earlier_refuses(state, tmp_path) -> None:
    """Copy the database, log more, restore the copy: the database is behind the log."""
    backup = tmp_path / "backup"
    backup.mkdir()
    for name in os.listdir(state):
        if name.startswith("ct.sqlite"):
            shutil.copy2(state / name, backup / name)
    app = _start(state)
    assert _append(app, 4) == 7
    _close(app)
    _remove_database(state)
    for copy in backup.iterdir():
        shutil.copy2(copy, state / copy.name)
    assert _stored_size(state) == 3
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / 'ct.sqlite'} is behind this log's last checkpoint "
        f"(tree size 3, but size 7 was signed and kept in {state / 'ct-checkpoint'}): "
        "an older copy was restored?"
    )
    assert _stored_size(state) == 3
    assert _kept_size(state) == 7


def test_a_ct_database_that_grew_another_history_refuses(state, tmp_path) -> None:
    """A copy of size 3 grown to size 9 with other entries: larger, but not an extension."""
    fork = tmp_path / "fork"
    shutil.copytree(state, fork)
    for directory, count, size in ((state, 2, 5), (fork, 6, 9)):
        app = _start(directory)
        assert _append(app, count) == size
        _close(app)
    shutil.copy2(state / "ct-checkpoint", fork / "ct-checkpoint")
    with pytest.raises(LogStartError) as refused:
        _start(fork)
    assert refused.value.message == (
        f"the log database {fork / 'ct.sqlite'} holds a tree of size 9 that does not "
        f"extend the tree of size 5 this log signed (kept in {fork / 'ct-checkpoint'})"
    )


def test_a_deleted_ct_key_refuses(state) -> None:
    (state / "ct-key.pem").unlink()
    with pytest.raises(StateDirError) as refused:
        _start(state)
    assert refused.value.message == (
        f"key file {state / 'ct-key.pem'} is missing, and {state} is not a first run: a new "
        "key would silently replace what clients trust"
    )
    assert not (state / "ct-key.pem").exists()
    assert _stored_size(state) == 3


def test_a_replaced_ct_key_refuses(state) -> None:
    (state / "ct-key.pem").write_bytes(_new_key_pem())
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / 'ct.sqlite'} was signed by another key: its checkpoint "
        f"at size 3 does not verify with {state / 'ct-key.pem'}"
    )
    assert _stored_size(state) == 3


def test_a_ct_checkpoint_from_another_log_refuses(state, tmp_path) -> None:
    """The database and key agree, but the kept head is another CT log's (a mixed restore)."""
    other = tmp_path / "other"
    app = _start(other)
    _append(app, 4)
    _close(app)
    shutil.copy2(other / "ct-checkpoint", state / "ct-checkpoint")
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log checkpoint file {state / 'ct-checkpoint'} was not signed by this log "
        f"(key {state / 'ct-key.pem'}, database {state / 'ct.sqlite'}): one of them was replaced"
    )


def test_a_deleted_ct_database_and_checkpoint_refuse_while_the_key_remains(state) -> None:
    _remove_database(state)
    (state / "ct-checkpoint").unlink()
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / 'ct.sqlite'} is empty and there is no checkpoint file "
        f"{state / 'ct-checkpoint'}, but the log key {state / 'ct-key.pem'} exists: "
        "the log's files were removed"
    )
    # --new-log never starts a tree under the old key either.
    with pytest.raises(LogStartError) as refused:
        _start(state, new_log=True)
    assert refused.value.message.endswith(
        f"but the log key {state / 'ct-key.pem'} exists: the log's files were removed"
    )


def test_a_new_ct_log_is_an_explicit_act(state, tmp_path) -> None:
    old_key = (state / "ct-key.pem").read_bytes()
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.move(state / "ct-key.pem", archive / "ct-key.pem")
    with pytest.raises(StateDirError):
        _start(state)
    with pytest.raises(LogStartError) as refused:
        _start(state, new_log=True)
    assert refused.value.message == (
        "--new-log starts a new CT log with a new key, but the old log's files are still "
        f"in place: {state / 'ct-checkpoint'}, {state / 'ct.sqlite'}"
    )
    assert refused.value.hint == (
        "move them to an archive with the old key (keep them: the old log's entries still "
        "verify), and list the old key under retired-trust as a ctlog-key"
    )
    assert not (state / "ct-key.pem").exists()
    for name in os.listdir(state):
        if name.startswith(("ct-checkpoint", "ct.sqlite")):
            shutil.move(state / name, archive / name)
    app = _start(state, new_log=True)
    assert app.extensions[EXTENSION_KEY].get_sth()["tree_size"] == 0
    assert (state / "ct-key.pem").read_bytes() != old_key
    # The trusted root now lists the new CT key.
    root = app.test_client().get("/api/v1/trust/trusted_root.json").get_json()
    (ctlog,) = root["ctlogs"]
    new_key = serialization.load_pem_private_key((state / "ct-key.pem").read_bytes(), None)
    assert base64.b64decode(ctlog["publicKey"]["rawBytes"]) == new_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert _append(app, 1) == 1
    _close(app)
    # Once made, it is an ordinary log: a restart with the flag serves it.
    app = _start(state, new_log=True)
    assert _append(app, 1) == 2
