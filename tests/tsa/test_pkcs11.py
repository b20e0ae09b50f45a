"""The TSA key in a PKCS#11 token (SoftHSM2): `keyless ca tsa-init --pkcs11-module` makes it
there and writes only the chain, `keyless serve` signs timestamps with it, and a token that is
wrong stops start-up with one line.

The ceremony and the server run as processes of their own: a PKCS#11 library reads its
configuration once per process, and the CA's token tests use another one in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml

from keyless.cli.main import main
from tests.conftest import KEYLESS, free_port, keyless_serve, skip_unless_ci

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "1234"


@pytest.fixture(scope="module")
def token_env(tmp_path_factory) -> dict[str, str]:
    """The environment of processes that see one fresh SoftHSM2 token `tsa` (PIN 1234, in
    KEYLESS_TEST_PIN)."""
    if shutil.which("softhsm2-util") is None or not MODULE.exists():
        skip_unless_ci("SoftHSM2 is not installed (Debian package softhsm2)")
    base = tmp_path_factory.mktemp("softhsm-tsa")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "KEYLESS_TEST_PIN": PIN}
    subprocess.run(
        [
            *("softhsm2-util", "--init-token", "--free", "--label", "tsa"),
            *("--pin", PIN, "--so-pin", "5678"),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return env


def _tsa_init(out: Path, env: dict[str, str], label: str) -> dict:
    result = subprocess.run(
        [
            *KEYLESS,
            *("ca", "tsa-init", "--out", str(out), "--pkcs11-module", str(MODULE)),
            *("--token-label", "tsa", "--pin-env", "KEYLESS_TEST_PIN", "--key-label", label),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _config(tmp_path: Path, section: dict) -> Path:
    config = tmp_path / "server.yaml"
    document = {"state-dir": str(tmp_path / "state"), "dev-issuer": {"enabled": True}}
    config.write_text(yaml.safe_dump({**document, "tsa": section}))
    return config


@contextmanager
def _serve(config: Path, env: dict[str, str]) -> Iterator[str]:
    with keyless_serve("--config", str(config), env=env) as (url, _):
        yield url


def _refused(config: Path, env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [*KEYLESS, "serve", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # The development issuer's warning comes first; then the refusal.
    return [line for line in result.stderr.splitlines() if not line.startswith("DEVELOPMENT")]


def test_timestamps_signed_in_the_token(token_env, tmp_path: Path) -> None:
    out = tmp_path / "tsa"
    section = _tsa_init(out, token_env, "tsa-signing")["tsa"]
    assert section == {
        "chain": str((out / "tsa-chain.pem").resolve()),
        "pkcs11-module": str(MODULE),
        "pkcs11-token-label": "tsa",
        "pkcs11-key-label": "tsa-signing",
        "pkcs11-pin-env": "KEYLESS_TEST_PIN",
    }
    assert sorted(os.listdir(out)) == ["tsa-chain.pem"], "no key file: the key stays in the token"
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("timestamped in the token\n")
    with _serve(_config(tmp_path, section), token_env) as url:
        served = requests.get(f"{url}/api/v1/timestamp/certchain", timeout=5)
        assert served.content == (out / "tsa-chain.pem").read_bytes()
        minted = requests.post(f"{url}/oidc/mint", json={"email": "alice@example.com"}, timeout=5)
        token = minted.json()["id_token"]
        assert main(["sign", "--server", url, "--identity-token", token, str(artifact)]) == 0
        verify = ["verify", "--server", url, "--bundle", f"{artifact}.sigstore.json"]
        identity = ["--certificate-identity", "alice@example.com"]
        issuer = ["--certificate-oidc-issuer", f"{url}/oidc"]
        assert main([*verify, *identity, *issuer, str(artifact)]) == 0


def test_a_wrong_token_stops_start_up_with_one_line(token_env, tmp_path: Path) -> None:
    out = tmp_path / "tsa"
    section = _tsa_init(out, token_env, "tsa-wrong")["tsa"]
    where = f"key 'tsa-absent' in token 'tsa' of {MODULE}"
    config = _config(tmp_path, {**section, "pkcs11-key-label": "tsa-absent"})
    assert _refused(config, token_env) == [
        f"error: {where} is invalid:",
        "  - no key pair with this label in the token",
    ]
    assert not (tmp_path / "state" / "rekor.sqlite").exists(), "no log made before the TSA"
    wrong_pin = {**token_env, "KEYLESS_TEST_PIN": "0000"}
    assert _refused(_config(tmp_path, section), wrong_pin) == [
        f"error: key 'tsa-wrong' in token 'tsa' of {MODULE} is invalid:",
        "  - the token rejected the PIN",
    ]
    # A chain made for another key: the token's key is checked against the leaf.
    other = _tsa_init(tmp_path / "other", token_env, "tsa-other")["tsa"]
    config = _config(tmp_path, {**section, "chain": other["chain"]})
    assert _refused(config, token_env)[0] == (
        "error: the TSA leaf certificate is not for the TSA signing key"
    )
    # Put right, the same state directory starts.
    with _serve(_config(tmp_path, section), token_env) as url:
        assert requests.get(f"{url}/api/v1/timestamp/certchain", timeout=5).status_code == 200
