"""Witnessed logs end to end: a keyless server whose Rekor v1 and v2 logs a real witness (over
loopback HTTP) cosigns. A whole state directory restored from a backup is refused at start-up
because the witness has cosigned a larger tree, or another root at the size it holds; with the
witness unreachable the server starts, and says it could not confirm. Bundles carry the
cosignatures, `keyless verify --witness` requires them, and `keyless monitor --witness` holds
a witness that cosigned a fork against the log."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from keyless.cli.main import main
from keyless.server.app import _close
from keyless.server.config import WitnessSetting
from keyless.server.witness_app import create_witness_app, server_logs
from keyless.tlog import parse_note
from keyless.tlog.cosignature import verify_cosignature
from keyless.tlog.errors import LogStartError
from keyless.tlog.witness import Witness
from tests.conftest import dev_server, free_port, serve_factory
from tests.e2e.log_files import REKOR_V1, REKOR_V2, start

HINT = (
    "this log's state is older than what it signed (a restore from a backup?): restore its "
    "latest state; never serve it as it is, it would sign a second history"
)


@contextlib.contextmanager
def witness_served(
    path: Path, port: int = 0, name: str = "w1.test"
) -> Iterator[tuple[str, Witness]]:
    """A witness over `path` (made on first use) on a loopback port (free unless given)."""
    witness = Witness.open(path, name=name)
    try:
        with serve_factory(lambda _url: create_witness_app(witness), port=port) as url:
            yield url, witness
    finally:
        witness.close()


def _serve(state: Path, port: int, *witnesses: str) -> Any:
    return dev_server(state, port=port, witnesses=tuple(WitnessSetting(w) for w in witnesses))


def _append(app: Any, count: int) -> None:
    for log in (REKOR_V1, REKOR_V2):
        log.append(app, count)


@pytest.fixture
def history(tmp_path: Path) -> dict[str, Any]:
    """A server whose logs a witness cosigned at size 3 (backed up then) and then at size 5;
    the witness is stopped, its state kept."""
    state, backup, port = tmp_path / "state", tmp_path / "backup", free_port()
    witness_port = free_port()
    with witness_served(tmp_path / "witness", witness_port) as (url, witness):
        with _serve(state, port, url) as server:
            for origin, key in server_logs(server.url):
                witness.learn(origin, key)
            _append(server.app, 3)
            _close(server.app)
        shutil.copytree(state, backup)
        with _serve(state, port, url) as server:
            _append(server.app, 2)
            assert REKOR_V1.size(server.app) == 5
            _close(server.app)
        sizes = {log.origin: log.size for log in witness.logs()}
    assert sorted(sizes.values()) == [5, 5]
    return {
        "state": state,
        "backup": backup,
        "port": port,
        "witness": tmp_path / "witness",
        "witness_port": witness_port,
        "witness_url": url,
    }


def _restore(history: dict[str, Any]) -> None:
    shutil.rmtree(history["state"])
    shutil.copytree(history["backup"], history["state"])


def _start(history: dict[str, Any]) -> Any:
    return start(
        history["state"],
        port=history["port"],
        witnesses=(WitnessSetting(history["witness_url"]),),
    )


def test_a_whole_state_restore_is_refused_by_the_witness(history) -> None:
    _restore(history)
    with (
        witness_served(history["witness"], history["witness_port"]),
        pytest.raises(LogStartError) as refused,
    ):
        _start(history)
    assert refused.value.message == (
        f"the signature log refuses to sign: the witness {history['witness_url']} has "
        "cosigned a tree of size 5 of this log, larger than its head (size 3)"
    )
    assert refused.value.hint == HINT


def test_a_restore_that_grew_another_history_is_refused(history, caplog) -> None:
    """Restored while the witness was down, the log signed two new entries of its own: size 5
    again, another root. The witness holds the first size 5."""
    _restore(history)
    with caplog.at_level(logging.WARNING):
        app = _start(history)
    _append(app, 2)
    _close(app)
    with (
        witness_served(history["witness"], history["witness_port"]),
        pytest.raises(LogStartError) as refused,
    ):
        _start(history)
    message = refused.value.message
    assert message.startswith(
        f"the signature log refuses to sign: the witness {history['witness_url']} holds "
        "another root at size 5 than this log's tree (HTTP 422: "
    )


def test_a_restore_with_no_witness_reachable_starts_and_says_so(history, caplog) -> None:
    _restore(history)
    with caplog.at_level(logging.WARNING, logger="keyless.tlog.witnessing"):
        app = _start(history)
    url = history["witness_url"]
    assert (
        "WARNING: could not confirm the signature log's head (size 3) with its witnesses (0 "
        f"of 1 confirmed, 1 needed: {url}: unreachable (ConnectionError)); starting on its own "
        "checkpoint file, which agrees with its database, but a restore of the whole state "
        "would go unseen"
    ) in caplog.text
    assert REKOR_V1.size(app) == 3
    _close(app)


def test_checkpoints_are_served_with_their_cosignatures(tmp_path) -> None:
    with witness_served(tmp_path / "witness") as (url, witness):
        with _serve(tmp_path / "state", free_port(), url) as server:
            for origin, key in server_logs(server.url):
                witness.learn(origin, key)
            _append(server.app, 1)
            v2 = requests.get(f"{server.url}/api/v2/checkpoint", timeout=10).text
            v1 = requests.get(f"{server.url}/api/v1/log", timeout=10).json()["signedTreeHead"]
            monitoring = {
                origin: requests.get(
                    f"{url}/{hashlib.sha256(origin.encode()).hexdigest()}/checkpoint", timeout=10
                ).text
                for origin in (log.origin for log in witness.logs())
            }
            _close(server.app)
        for note in (v1, v2):
            parsed = parse_note(note)
            assert len(parsed.signatures) == 2
            verify_cosignature(parsed, witness.verifier_key)
            assert note in monitoring.values()
    kept = json.loads((tmp_path / "state" / "witness-keys.json").read_text())
    assert kept == {url: witness.verifier_key.render()}
    assert (tmp_path / "state" / "witness-keys.json").stat().st_mode & 0o777 == 0o600


def test_verify_requires_the_witnesses_cosignatures(tmp_path, capsys) -> None:
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release\n")
    bundle = tmp_path / "release.tar.gz.sigstore.json"
    other = Witness.open(tmp_path / "other", name="w2.test")
    other_key = other.verifier_key.render()
    other.close()
    with (
        witness_served(tmp_path / "witness") as (url, witness),
        _serve(tmp_path / "state", free_port(), url) as server,
    ):
        for origin, key in server_logs(server.url):
            witness.learn(origin, key)
        token = server.email_token("alice@example.com")
        assert main(["sign", "--server", server.url, "--identity-token", token, str(artifact)]) == 0
        verify = [
            "verify",
            "--server",
            server.url,
            "--certificate-identity",
            "alice@example.com",
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            "--bundle",
            str(bundle),
        ]
        key = witness.verifier_key.render()
        key_file = tmp_path / "witness.vkey"
        key_file.write_text(key + "\n")
        capsys.readouterr()
        assert main([*verify, "--witness", str(key_file), str(artifact)]) == 0
        assert "Verified OK" in capsys.readouterr().err
        assert (
            main(
                [
                    *verify,
                    "--witness",
                    key,
                    "--witness",
                    other_key,
                    "--witness-threshold",
                    "1",
                    str(artifact),
                ]
            )
            == 0
        )
        capsys.readouterr()
        assert main([*verify, "--witness", key, "--witness", other_key, str(artifact)]) == 1
        assert capsys.readouterr().err.splitlines()[0] == (
            "error: verification failed (witness-cosignature): 1 of the given witnesses "
            "cosigned the bundle's checkpoint, 2 needed (none from w2.test)"
        )
        _close(server.app)


def test_verify_refuses_a_bundle_no_witness_cosigned(server, tmp_path, capsys) -> None:
    """The session's server has no witness: its bundles carry only the log's signature."""
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"unwitnessed\n")
    token = server.email_token("alice@example.com")
    assert main(["sign", "--server", server.url, "--identity-token", token, str(artifact)]) == 0
    witness = Witness.open(tmp_path / "w", name="w1.test")
    key = witness.verifier_key.render()
    witness.close()
    capsys.readouterr()
    code = main(
        [
            "verify",
            "--server",
            server.url,
            "--certificate-identity",
            "alice@example.com",
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            "--witness",
            key,
            str(artifact),
        ]
    )
    assert code == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: verification failed (witness-cosignature): 0 of the given witnesses cosigned "
        "the bundle's checkpoint, 1 needed (none from w1.test)"
    )


def test_the_monitor_catches_a_witness_that_cosigned_a_fork(tmp_path, capsys) -> None:
    """The log's key signs a second tree of size 2 (a fork) shown only to a second witness,
    which cosigns it: the monitor, which follows the real log, exits 1 with both checkpoints."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from keyless.server.state import read_private_key
    from keyless.tlog.checkpoint import CheckpointSigner
    from keyless.tlog.witness_wire import AddCheckpoint

    state = tmp_path / "state"
    with (
        witness_served(tmp_path / "liar", name="liar.test") as (url, liar),
        _serve(state, free_port()) as server,
    ):
        _append(server.app, 2)
        origin, vkey = _v2_log(server.url)
        liar.learn(origin, vkey)
        key = read_private_key(state / REKOR_V2.key)
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        fork = CheckpointSigner(origin=origin, name=origin, private_key=key).sign(
            size=2, root_hash=os.urandom(32), timestamp_ms=0
        )
        response = requests.post(
            f"{url}/add-checkpoint",
            data=AddCheckpoint(0, (), fork.decode()).render(),
            timeout=10,
        )
        assert response.status_code == 200
        liar_key = liar.verifier_key.render()
        monitor = [
            "monitor",
            "--server",
            server.url,
            "--state",
            str(tmp_path / "m.json"),
            "--witness",
            liar_key,
            url,
        ]
        assert main(monitor) == 1
        err = capsys.readouterr().err
        _close(server.app)
    assert f"error: log inconsistency: the witness {url} cosigned the log at size 2" in err
    assert f"the witness's checkpoint:\n{fork.decode()}" in err
    assert "the log's checkpoint:\n" in err


def _v2_log(url: str) -> Any:
    from keyless.tlog import checkpoint_origin

    origin = checkpoint_origin(url)
    return next((o, k) for o, k in server_logs(url) if o == origin)


def test_keyless_witness_serve_learns_a_servers_logs(tmp_path) -> None:
    """The command as an operator runs it (gunicorn, plain HTTP), its logs taken on first use
    from a keyless server's trusted root: both signature logs, under their origins."""
    import signal
    import subprocess
    import time

    from tests.conftest import KEYLESS

    port = free_port()
    with _serve(tmp_path / "state", free_port()) as server:
        process = subprocess.Popen(
            [
                *KEYLESS,
                "witness",
                "serve",
                "--state-dir",
                str(tmp_path / "w"),
                "--port",
                str(port),
                "--name",
                "w1.test",
                "--log",
                server.url,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    vkey = requests.get(f"http://127.0.0.1:{port}/vkey", timeout=1)
                    break
                except requests.ConnectionError:
                    assert process.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=15)
        _close(server.app)
    host = server.url.removeprefix("http://")
    lines = err.splitlines()
    first_use = [line for line in lines if line.endswith(f"taken on first use from {server.url}")]
    assert len(first_use) == 2
    banner = lines[lines.index(next(x for x in lines if x.startswith("keyless witness "))) :]
    assert banner[0] == f"keyless witness listening on 127.0.0.1:{port} (state in {tmp_path / 'w'})"
    assert banner[1] == f"  verifier key: {vkey.text.strip()}"
    tree_id = server.app.extensions["keyless.rekor"].tree_id
    assert sorted(banner[2:4]) == sorted(
        [f"  witnessing:   {host} (size 0)", f"  witnessing:   {host} - {tree_id} (size 0)"]
    )


@pytest.mark.parametrize(
    ("witnesses", "problem"),
    [
        (
            "[{url: 'ftp://w', key: 'w+00000000+AQ=='}]",
            "log: witnesses[1]: url must be the witness's http(s) URL",
        ),
        ("[{url: 'http://w'}]", "log: witnesses[1]: give exactly url and key"),
        (
            "[{url: 'http://w', key: 'w+0+AQ=='}]",
            "log: witnesses[1]: key: verifier key is too short",
        ),
    ],
    ids=["not-http", "no-key", "bad-key"],
)
def test_log_witnesses_config_errors(tmp_path, witnesses, problem) -> None:
    from keyless.server.config import ServerConfigError, load_server_config

    config = tmp_path / "server.yaml"
    config.write_text(f"dev-issuer: {{enabled: true}}\nlog:\n  witnesses: {witnesses}\n")
    with pytest.raises(ServerConfigError) as refused:
        load_server_config(config, state_dir=tmp_path / "state")
    assert problem in refused.value.problems


def test_log_witnesses_config(tmp_path) -> None:
    from keyless.server.config import load_server_config

    key = Witness.open(tmp_path / "w", name="w1.test")
    vkey = key.verifier_key.render()
    key.close()
    (tmp_path / "w1.vkey").write_text(vkey + "\n")
    config = tmp_path / "server.yaml"
    config.write_text(
        "dev-issuer: {enabled: true}\nlog:\n  witnesses:\n"
        f"    - {{url: 'http://127.0.0.1:9/', key: '{vkey}'}}\n"
        "    - {url: 'http://127.0.0.1:10', key: w1.vkey}\n"
        "  witness-threshold: 2\n  witness-wait-seconds: 0\n"
    )
    loaded = load_server_config(config, state_dir=tmp_path / "state")
    assert loaded.witnesses == (
        WitnessSetting("http://127.0.0.1:9", vkey),
        WitnessSetting("http://127.0.0.1:10", vkey),
    )
    assert (loaded.witness_threshold, loaded.witness_wait_seconds) == (2, 0.0)
