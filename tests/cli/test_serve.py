"""`keyless serve` as users run it: a real process under gunicorn, on the port they chose."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import KEYLESS, free_port, keyless_serve


def test_dev_mode_on_the_exact_port_with_persistent_keys(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with keyless_serve("--state-dir", str(state)) as (url, process):
        assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "SERVING"}
        first_kid = requests.get(f"{url}/oidc/jwks", timeout=5).json()["keys"][0]["kid"]
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=15)[1]
    assert "WARNING: dev mode" in stderr
    assert "Not for production" in stderr
    assert f"development OIDC issuer: {url}/oidc" in stderr
    assert f"keyless dev-token --server {url} --email alice@example.com" in stderr
    assert f"trust config: {url}/api/v1/trust/client_trust_config.json" in stderr
    assert f"sign:    keyless sign --server {url} --identity-token" in stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    keys = list(state.glob("*.pem"))
    assert keys and all(stat.S_IMODE(key.stat().st_mode) == 0o600 for key in keys)
    # The same public URL: the signature log's checkpoints name it.
    port = int(url.rsplit(":", 1)[1])
    with keyless_serve("--state-dir", str(state), port=port) as (url, _):
        assert requests.get(f"{url}/oidc/jwks", timeout=5).json()["keys"][0]["kid"] == first_kid


def test_two_instances_side_by_side(tmp_path: Path) -> None:
    with (
        keyless_serve("--state-dir", str(tmp_path / "a")) as (a, _),
        keyless_serve("--state-dir", str(tmp_path / "b")) as (b, _),
    ):
        assert a != b
        assert (
            requests.get(f"{a}/healthz", timeout=5).ok
            and requests.get(f"{b}/healthz", timeout=5).ok
        )


def test_production_config_keeps_the_dev_issuer_off(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(
        f"state-dir: {tmp_path / 'state'}\n"
        "issuers:\n  - issuer: https://token.actions.githubusercontent.com\n    type: github-workflow\n"
    )
    with keyless_serve("--config", str(config)) as (url, process):
        assert (
            requests.get(f"{url}/oidc/.well-known/openid-configuration", timeout=5).status_code
            == 404
        )
        mint = requests.post(f"{url}/oidc/mint", json={"email": "a@example.com"}, timeout=5)
        assert mint.status_code == 404
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=15)[1]
    assert "dev mode" not in stderr
    assert "DEVELOPMENT OIDC ISSUER" not in stderr


def _refused(*args: str) -> list[str]:
    result = subprocess.run([*KEYLESS, "serve", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


def test_production_config_problems_are_listed_one_per_line(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(
        "listen: {host: 0.0.0.0, port: 70000}\n"
        "dev-issuer: {enabled: true}\n"
        "public-url: ftp://x\n"
        "oidc-url: 42\n"
        "colour: blue\n"
        "issuers:\n  - issuer: http://idp.example.com\n    type: email\n"
    )
    assert _refused("--config", str(config)) == [
        f"error: {config} is invalid:",
        "  - unknown key 'colour'",
        "  - port 70000 is not between 1 and 65535",
        "  - the development issuer binds to loopback only, but the host is '0.0.0.0'",
        "  - public-url 'ftp://x' must be an origin like https://host[:port]",
        "  - oidc-url 42 must be the URL of the issuer clients log in at",
        "  - issuers: issuers[1]: issuer must be an https:// URL (http is allowed only for "
        "loopback issuers with allow-insecure-loopback)",
    ]


def test_bad_tsa_and_log_key_files_are_listed_and_nothing_starts(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "key.pem").chmod(0o600)
    (tmp_path / "chain.pem").write_text("no certificate here\n")
    config = tmp_path / "server.yaml"
    state = tmp_path / "state"
    config.write_text(
        f"state-dir: {state}\n"
        "dev-issuer: {enabled: true}\n"
        "log: {v2-key: key.pem}\n"
        "tsa: {key: key.pem, chain: chain.pem, policy: x}\n"
        "retired-trust:\n"
        "  - tsa-chain: chain.pem\n    url: https://old.example/api/v1/timestamp\n"
        "    start: 2025-01-01T00:00:00Z\n    end: 2026-01-01T00:00:00Z\n"
    )
    assert _refused("--config", str(config)) == [
        f"error: {config} is invalid:",
        "  - retired-trust[1]: TSA chain file holds no PEM certificate",
        f"  - log: v2-key: {tmp_path / 'key.pem'} is not an Ed25519 or ECDSA P-256 key (the key "
        "types Rekor v2 checkpoints are signed with)",
        "  - tsa: unknown key 'policy'",
        "  - tsa: chain: TSA chain file holds no PEM certificate",
    ]
    assert not state.exists()


def test_a_second_dev_issuer_block_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """A reviewer reads `enabled: false`; PyYAML kept the later `{enabled: true}`, and the
    development issuer (anyone on the host may mint tokens) ran in production mode."""
    config = tmp_path / "server.yaml"
    state = tmp_path / "state"
    config.write_text(
        f"state-dir: {state}\n"
        "dev-issuer: {enabled: false}\n"
        "issuers:\n  - issuer: https://token.actions.githubusercontent.com\n    type: github-workflow\n"
        "dev-issuer: {enabled: true}\n"
    )
    assert _refused("--config", str(config)) == [
        f"error: {config} is invalid:",
        f"  - {config}:6:1: duplicate key 'dev-issuer' (first at line 2)",
    ]
    assert not state.exists()


def test_production_config_without_issuers_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("listen: {port: 8080}\n")
    assert _refused("--config", str(config))[1:] == [
        "  - issuers: no trusted issuers; set `issuers:` to a file or a list"
    ]


def test_dev_mode_refuses_a_public_bind_address(tmp_path: Path) -> None:
    assert _refused("--host", "0.0.0.0", "--state-dir", str(tmp_path)) == [
        "error: dev mode is invalid:",
        "  - the development issuer binds to loopback only, but the host is '0.0.0.0'",
    ]


def test_missing_config_file(tmp_path: Path) -> None:
    assert _refused("--config", str(tmp_path / "nope.yaml"))[1] == (
        "  - cannot read the file: No such file or directory"
    )


def test_unusable_state_dir_is_a_clear_error() -> None:
    assert _refused("--state-dir", "/proc/keyless")[0].startswith(
        "error: cannot create state directory /proc/keyless: "
    )


def test_state_dir_writable_by_others_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    assert _refused("--state-dir", str(state)) == [
        f"error: state directory {state} is writable by others (mode 777)",
        f"hint: chmod go-w {state}",
    ]


@pytest.fixture(scope="module")
def used_state(tmp_path_factory) -> tuple[Path, int]:
    """A state directory a dev server has run on (and the port it ran on), to copy and damage."""
    state = tmp_path_factory.mktemp("used") / "state"
    port = free_port()
    with keyless_serve("--state-dir", str(state), port=port):
        pass
    return state, port


def _damaged(used_state: tuple[Path, int], tmp_path: Path) -> tuple[Path, str]:
    state = tmp_path / "state"
    shutil.copytree(used_state[0], state)
    return state, str(used_state[1])


def test_a_deleted_log_database_is_one_line(used_state, tmp_path: Path) -> None:
    state, port = _damaged(used_state, tmp_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state / 'rekor.sqlite'}{suffix}").unlink(missing_ok=True)
    assert _refused("--state-dir", str(state), "--port", port)[-2:] == [
        f"error: the log database {state / 'rekor.sqlite'} is empty (deleted or truncated?), but "
        f"this log has signed a tree of size 0 (kept in {state / 'rekor-checkpoint'}); "
        "starting it again would sign a second history",
        "hint: restore the database from a backup taken after that checkpoint; a new log is an "
        "explicit act: keyless serve --new-log, with the old log's files moved aside (README: "
        "'A log that never signs two histories')",
    ]


def test_a_log_without_its_checkpoint_file_starts_only_when_adopted(
    used_state, tmp_path: Path
) -> None:
    from tests.e2e.log_files import REKOR_V1, start

    state, port = _damaged(used_state, tmp_path)
    app = start(state, port=int(port))
    assert REKOR_V1.append(app, 2) == 2
    REKOR_V1.close(app)
    (state / "rekor-checkpoint").unlink()
    assert _refused("--state-dir", str(state), "--port", port)[-2].startswith(
        f"error: the log database {state / 'rekor.sqlite'} holds a tree of size 2, but there "
        f"is no checkpoint file {state / 'rekor-checkpoint'}"
    )
    adopting = keyless_serve("--state-dir", str(state), "--adopt-existing-log", port=int(port))
    with adopting as (url, process):
        assert requests.get(f"{url}/api/v1/log", timeout=5).json()["treeSize"] == 2
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=15)[1]
    assert "ADOPTING AN EXISTING LOG: the log database " in stderr
    assert (state / "rekor-checkpoint").exists()


@pytest.mark.parametrize("name", ["rekor-key.pem", "ct-key.pem", "tsa-key.pem"])
def test_a_corrupt_key_file_is_one_line(used_state, tmp_path: Path, name: str) -> None:
    state, port = _damaged(used_state, tmp_path)
    key = state / name
    key.write_bytes(key.read_bytes()[:100])
    assert _refused("--state-dir", str(state), "--port", port)[-2:] == [
        f"error: key file {key} is not an unencrypted PEM private key (corrupt?)",
        "hint: restore the file from a backup of the state directory",
    ]


def test_a_key_file_others_can_read_is_refused(used_state, tmp_path: Path) -> None:
    state, port = _damaged(used_state, tmp_path)
    key = state / "tuf-timestamp-key.pem"
    key.chmod(0o644)
    assert _refused("--state-dir", str(state), "--port", port)[-2:] == [
        f"error: key file {key} is readable or writable by others (mode 644)",
        f"hint: chmod 600 {key} (a Kubernetes Secret: mount it with defaultMode: 0400), and "
        "replace the key if others may have read it",
    ]
    assert stat.S_IMODE(key.stat().st_mode) == 0o644


@pytest.mark.parametrize("name", ["ca-key.pem", "ca-chain.pem"])
def test_a_deleted_ca_file_does_not_make_a_new_ca(used_state, tmp_path: Path, name) -> None:
    state, port = _damaged(used_state, tmp_path)
    (state / "ca" / name).unlink()
    assert _refused("--state-dir", str(state), "--port", port)[-2:] == [
        f"error: CA file {state / 'ca' / name} is missing, and {state} is not a first run: a new "
        "CA would silently replace the root clients trust",
        "hint: restore it from a backup of the state directory",
    ]
    assert not (state / "ca" / name).exists()


def test_log_databases_are_owner_only(used_state) -> None:
    databases = list(used_state[0].glob("*.sqlite*"))
    assert len(databases) >= 3
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in databases)


def test_gunicorn_without_a_config_is_refused(tmp_path: Path) -> None:
    """`gunicorn 'keyless.server.app:app()'` binds wherever it is told: without KEYLESS_CONFIG the
    factory does not fall back to dev mode (and its development issuer)."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("KEYLESS_")
    }
    environment["KEYLESS_STATE_DIR"] = str(tmp_path / "state")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"0.0.0.0:{free_port()}",
            "keyless.server.app:app()",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    assert result.returncode != 0
    assert (
        "KEYLESS_CONFIG is not set: set it to a server.yaml, or set KEYLESS_DEV=1 for dev mode "
        "(development issuer on; only ever with gunicorn bound to loopback)" in result.stderr
    )
    assert not (tmp_path / "state").exists()
