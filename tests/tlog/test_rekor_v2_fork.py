"""The Rekor v2 log and the TSA in `keyless serve` keep what they signed: the v2 log refuses to
start on a deleted, older or foreign database, a replaced key or another public URL, as the
v1 log does; a state directory from before the v2 log and the TSA gets them once; a lost TSA
key or chain is refused."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.server.app import create_app
from keyless.server.config import dev_config
from keyless.server.state import StateDirError
from keyless.tlog.errors import LogStartError
from keyless.tlog.rekor_v2_api import EXTENSION

PORT = 18_741  # never bound: these tests build the app, they do not serve it
DATABASE = "rekor-v2.sqlite"
CHECKPOINT = "rekor-v2-checkpoint"


def _start(state: Path, port: int = PORT):
    return create_app(replace(dev_config(port=port, state_dir=state)))


def _append(app, count: int) -> int:
    log = app.extensions[EXTENSION].log
    for _ in range(count):
        log.append(os.urandom(32))
    return log.head().size


def _close(app) -> None:
    app.extensions[EXTENSION].log._storage.close()


def _kept_size(state: Path) -> int:
    from keyless.tlog.checkpoint_file import CheckpointFile

    return CheckpointFile(state / CHECKPOINT).read().size


def _remove_database(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state / DATABASE}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def state(tmp_path) -> Path:
    """A state directory whose v2 log signed a tree of 3 entries."""
    state = tmp_path / "state"
    app = _start(state)
    assert _append(app, 3) == 3
    _close(app)
    assert _kept_size(state) == 3
    return state


def test_a_restart_serves_the_same_v2_log(state) -> None:
    app = _start(state)
    assert _append(app, 2) == 5
    assert _kept_size(state) == 5
    assert (state / CHECKPOINT).stat().st_mode & 0o777 == 0o600


def test_a_deleted_v2_database_refuses(state) -> None:
    _remove_database(state)
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / DATABASE} is empty (deleted or truncated?), but this log "
        f"has signed a tree of size 3 (kept in {state / CHECKPOINT}); starting it again would "
        "sign a second history"
    )


def test_an_older_copy_of_the_v2_database_refuses(state, tmp_path) -> None:
    backup = tmp_path / "backup"
    backup.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{state / DATABASE}{suffix}")
        if source.exists():
            shutil.copy2(source, backup)
    app = _start(state)
    assert _append(app, 4) == 7
    _close(app)
    _remove_database(state)
    for copy in backup.iterdir():
        shutil.copy2(copy, state / copy.name)
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the log database {state / DATABASE} is behind this log's last checkpoint (tree size "
        f"3, but size 7 was signed and kept in {state / CHECKPOINT}): an older copy was "
        "restored?"
    )


def test_a_replaced_v2_key_refuses(state) -> None:
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = state / "rekor-v2-key.pem"
    path.unlink()
    path.write_bytes(key)
    path.chmod(0o600)
    with pytest.raises(LogStartError) as refused:
        _start(state)
    assert refused.value.message.startswith(
        f"the log database {state / DATABASE} was signed by another key"
    )


def test_a_lost_v2_key_refuses(state) -> None:
    (state / "rekor-v2-key.pem").unlink()
    with pytest.raises(StateDirError) as refused:
        _start(state)
    assert refused.value.message.startswith(f"key file {state / 'rekor-v2-key.pem'} is missing")


def test_another_public_url_refuses(state) -> None:
    with pytest.raises(LogStartError) as refused:
        _start(state, port=PORT + 1)
    # The v1 log is checked first and names the change; the v2 log alone refuses as well.
    assert "127.0.0.1:18741" in refused.value.message


def test_a_v2_log_of_another_origin_refuses(state, tmp_path) -> None:
    from keyless.tlog.checkpoint_file import CheckpointFile
    from keyless.tlog.log import Anchor
    from keyless.tlog.rekor_v2 import RekorV2Service
    from keyless.tlog.sqlite_storage import SQLiteStorage

    key = serialization.load_pem_private_key((state / "rekor-v2-key.pem").read_bytes(), None)
    anchor = Anchor(
        checkpoint=CheckpointFile(state / CHECKPOINT), database="v2.db", key="v2-key.pem"
    )
    with pytest.raises(LogStartError) as refused:
        RekorV2Service.open(
            storage=SQLiteStorage(state / DATABASE),
            private_key=key,
            origin="127.0.0.1:9999",
            anchor=anchor,
        )
    assert refused.value.message == (
        "the log database v2.db belongs to the log '127.0.0.1:18741', but this server would "
        "sign as '127.0.0.1:9999': its public URL (host or port) changed"
    )


def _published_before_v2_and_the_tsa(state: Path) -> None:
    """Publish, as a server from before the v2 log and the TSA did, a trusted root listing
    neither (the rest of the state directory is this server's own)."""
    from keyless.server.state import StateDir
    from keyless.server.tuf_repository import open_repository, published_target

    directory = state / "tuf"
    root = json.loads(published_target(directory, "trusted_root.json"))
    root["tlogs"] = [
        log for log in root["tlogs"] if log["publicKey"]["keyDetails"] != "PKIX_ED25519"
    ]
    root["timestampAuthorities"] = []
    targets = {
        "trusted_root.json": json.dumps(root).encode(),
        "signing_config.v0.2.json": published_target(directory, "signing_config.v0.2.json"),
    }
    open_repository(StateDir(state)).publish(targets, now=datetime.now(UTC))


def test_a_state_directory_from_before_v2_and_the_tsa_gets_them_once(state) -> None:
    for name in ("rekor-v2-key.pem", CHECKPOINT, "tsa-key.pem", "tsa-chain.pem"):
        (state / name).unlink()
    _remove_database(state)
    _published_before_v2_and_the_tsa(state)
    app = _start(state)
    assert _append(app, 1) == 1
    assert (state / "rekor-v2-key.pem").stat().st_mode & 0o777 == 0o600
    assert (state / "tsa-key.pem").stat().st_mode & 0o777 == 0o600
    assert (state / "tsa-chain.pem").exists()


def test_a_lost_v2_log_refuses_as_the_v1_log_does(state) -> None:
    """Key, database and checkpoint file all deleted: the published trusted root lists the v2
    log, so a new one would stop every v2 bundle from verifying through --server."""
    (state / "rekor-v2-key.pem").unlink()
    (state / CHECKPOINT).unlink()
    _remove_database(state)
    with pytest.raises(StateDirError) as refused:
        _start(state)
    assert refused.value.message == (
        f"key file {state / 'rekor-v2-key.pem'} is missing, and {state} is not a first run: "
        "a new key would silently replace what clients trust"
    )
    assert refused.value.hint == "restore the file from a backup of the state directory"
    assert not (state / "rekor-v2-key.pem").exists()
    assert not (state / DATABASE).exists()


def test_a_lost_tsa_refuses(state) -> None:
    """Key and chain both deleted: the published trusted root lists this TSA."""
    for name in ("tsa-key.pem", "tsa-chain.pem"):
        (state / name).unlink()
    with pytest.raises(StateDirError) as refused:
        _start(state)
    assert refused.value.message == (
        f"the TSA key {state / 'tsa-key.pem'} and chain {state / 'tsa-chain.pem'} are missing, "
        "but the trusted root this server last published lists its TSA "
        f"(http://127.0.0.1:{PORT}/api/v1/timestamp): a new one would stop every timestamp it "
        "issued from verifying"
    )
    assert not (state / "tsa-key.pem").exists()


@pytest.mark.parametrize("lost", ["tsa-key.pem", "tsa-chain.pem"])
def test_a_lost_tsa_key_or_chain_refuses(state, lost) -> None:
    (state / lost).unlink()
    with pytest.raises(StateDirError) as refused:
        _start(state)
    assert str(state / lost) in refused.value.message
    assert not (state / lost).exists()
