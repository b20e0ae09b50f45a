"""The CA key in a PKCS#11 token (SoftHSM2 tokens made per test) and the key ceremonies:
certificates issued through the token verify with the chain, the key cannot leave the token,
and each way the token can be wrong stops start-up with one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.ca import CAConfig, CAConfigError
from keyless.ca.ceremony import KeyStore, rotate_intermediate
from keyless.ca.pkcs11 import TokenKey, open_session
from keyless.cli.main import main
from tests.conftest import dev_server, skip_unless_ci

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "1234"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def _token(tmp_path_factory) -> Iterator[None]:
    """One SoftHSM2 token labelled `keyless` (user PIN 1234) for the session: the PKCS#11
    library reads its configuration once per process, so tests share the token and keep
    apart by key labels."""
    if shutil.which("softhsm2-util") is None or not MODULE.exists():
        skip_unless_ci("SoftHSM2 is not installed (Debian package softhsm2)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                "keyless",
                "--pin",
                PIN,
                "--so-pin",
                "5678",
            ],
            check=True,
            capture_output=True,
        )
        yield


@pytest.fixture
def softhsm(_token, monkeypatch, request) -> str:
    """The token, with the PIN in KEYLESS_TEST_PIN; returns this test's key label prefix."""
    monkeypatch.setenv("KEYLESS_TEST_PIN", PIN)
    return request.node.name.replace("[", "-").replace("]", "")


def _init_in_token(out: Path, capsys, prefix: str) -> dict:
    code = main(
        [
            "ca",
            "init",
            "--out",
            str(out),
            "--pkcs11-module",
            str(MODULE),
            "--token-label",
            "keyless",
            "--pin-env",
            "KEYLESS_TEST_PIN",
            "--name",
            "acme",
            "--root-label",
            f"{prefix}-root",
            "--key-label",
            f"{prefix}-intermediate",
        ]
    )
    assert code == 0
    return yaml.safe_load(capsys.readouterr().out)


def _signer_config(section: dict, base: Path) -> CAConfig:
    return CAConfig.from_mapping(section, base_dir=base)


def test_ceremony_in_the_token_then_issue_and_verify(softhsm, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ceremony"
    document = _init_in_token(out, capsys, softhsm)
    section = document["ca"]
    assert section == {
        "backend": "pkcs11",
        "chain": str((out / "ca-chain.pem").resolve()),
        "pkcs11-module": str(MODULE),
        "pkcs11-token-label": "keyless",
        "pkcs11-key-label": f"{softhsm}-intermediate",
        "pkcs11-pin-env": "KEYLESS_TEST_PIN",
    }
    assert not list(out.glob("*key*")), "no key file: both keys stay in the token"
    intermediate, root = x509.load_pem_x509_certificates((out / "ca-chain.pem").read_bytes())
    assert root.subject.rfc4514_string() == "CN=acme-root,O=acme"
    intermediate.verify_directly_issued_by(root)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp384r1"

    config = _signer_config(section, tmp_path)
    with dev_server(tmp_path / "state", ca=config) as server:
        artifact = tmp_path / "release.txt"
        artifact.write_text("signed through the HSM\n")
        token = server.email_token("alice@example.com")
        assert main(["sign", "--server", server.url, "--identity-token", token, str(artifact)]) == 0
        bundle = tmp_path / "release.txt.sigstore.json"
        assert (
            main(
                [
                    "verify",
                    "--server",
                    server.url,
                    "--bundle",
                    str(bundle),
                    str(artifact),
                    "--certificate-identity",
                    "alice@example.com",
                    "--certificate-oidc-issuer",
                    f"{server.url}/oidc",
                ]
            )
            == 0
        )
    import json

    leaf_pem = json.loads(bundle.read_text())["verificationMaterial"]["certificate"]["rawBytes"]
    import base64

    leaf = x509.load_der_x509_certificate(base64.b64decode(leaf_pem))
    leaf.verify_directly_issued_by(intermediate)


def test_the_key_never_leaves_the_token(softhsm, tmp_path: Path, capsys) -> None:
    from pkcs11 import Attribute, ObjectClass
    from pkcs11.exceptions import AttributeSensitive

    _init_in_token(tmp_path / "ceremony", capsys, softhsm)
    where = TokenKey(MODULE, "-", token_label="keyless", pin_env="KEYLESS_TEST_PIN")
    with open_session(where) as session:
        for label in (f"{softhsm}-root", f"{softhsm}-intermediate"):
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.SENSITIVE] is True
            with pytest.raises(AttributeSensitive):
                key[Attribute.VALUE]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"pkcs11-key-label": "missing"}, "no key pair with this label in the token"),
        ({"pkcs11-token-label": "removed"}, "no such token in the module"),
        ({"pkcs11-module": "/nonexistent/libpkcs11.so"}, "cannot load the PKCS#11 module"),
        ({"pkcs11-key-label": "ROOT"}, "the key does not match the CA certificate"),
    ],
)
def test_start_up_refusals(softhsm, tmp_path: Path, capsys, change: dict, problem: str) -> None:
    section = _init_in_token(tmp_path / "ceremony", capsys, softhsm)["ca"]
    if change.get("pkcs11-key-label") == "ROOT":
        change = {"pkcs11-key-label": f"{softhsm}-root"}
    section = {**section, **change}
    with pytest.raises(CAConfigError) as refused:
        _signer_config(section, tmp_path).load_signer(state_dir=tmp_path, now=datetime.now(UTC))
    assert problem in refused.value.message
    assert len(refused.value.problems) == 1


def _server_config(tmp_path: Path, section: dict, port: int) -> Path:
    config = tmp_path / "server.yaml"
    github = {"issuer": "https://token.actions.githubusercontent.com", "type": "github-workflow"}
    config.write_text(
        yaml.safe_dump(
            {
                "listen": {"host": "127.0.0.1", "port": port},
                "public-url": f"http://127.0.0.1:{port}",
                "state-dir": str(tmp_path / "state"),
                "issuers": [github],
                "dev-issuer": {"enabled": True},
                "ca": section,
            }
        )
    )
    (tmp_path / "state").mkdir(mode=0o700)
    return config


def test_wrong_pin_stops_keyless_serve_with_one_line(softhsm, tmp_path: Path, capsys) -> None:
    section = _init_in_token(tmp_path / "ceremony", capsys, softhsm)["ca"]
    config = _server_config(tmp_path, section, _free_port())
    result = subprocess.run(
        [sys.executable, "-m", "keyless.cli.main", "serve", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "KEYLESS_TEST_PIN": "9999"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "the token rejected the PIN" in result.stderr
    assert f"key '{softhsm}-intermediate' in token 'keyless'" in result.stderr


def test_gunicorn_workers_sign_in_the_token(softhsm, tmp_path: Path, capsys) -> None:
    """`keyless serve` builds the app once before forking its workers; PKCS#11 state does not
    survive fork, so each worker must open the module afresh and still issue."""
    section = _init_in_token(tmp_path / "ceremony", capsys, softhsm)["ca"]
    port = _free_port()
    config = _server_config(tmp_path, section, port)
    server = subprocess.Popen(
        [sys.executable, "-m", "keyless.cli.main", "serve", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert _wait_healthy(url, server)
        artifact = tmp_path / "a.txt"
        artifact.write_text("issued by a worker\n")
        capsys.readouterr()
        assert main(["dev-token", "--server", url, "--email", "alice@example.com"]) == 0
        token = capsys.readouterr().out.strip()
        assert main(["sign", "--server", url, "--identity-token", token, str(artifact)]) == 0
        assert "signed " in capsys.readouterr().err
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen[str]) -> bool:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


def test_file_ceremony_and_rotation(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KEYLESS_CA_PASSWORD", "correct horse battery staple")
    out = tmp_path / "ceremony"
    assert main(["ca", "init", "--out", str(out), "--password-env", "KEYLESS_CA_PASSWORD"]) == 0
    section = yaml.safe_load(capsys.readouterr().out)["ca"]
    assert section["backend"] == "file"
    for name in ("root-key.enc.pem", "ca-key.enc.pem"):
        assert (out / name).stat().st_mode & 0o777 == 0o600
        assert (out / name).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    now = datetime.now(UTC)
    first = _signer_config(section, tmp_path).load_signer(state_dir=tmp_path, now=now)

    # A second init in the same folder would orphan the first CA: refused.
    assert main(["ca", "init", "--out", str(out), "--password-env", "KEYLESS_CA_PASSWORD"]) == 1
    assert "already exists: a CA was made here" in capsys.readouterr().err

    code = main(
        [
            "ca",
            "rotate",
            "--out",
            str(out),
            "--password-env",
            "KEYLESS_CA_PASSWORD",
            "--public-url",
            "https://keyless.example.com",
        ]
    )
    assert code == 0
    rotated = yaml.safe_load(capsys.readouterr().out)
    second = _signer_config(rotated["ca"], tmp_path).load_signer(state_dir=tmp_path, now=now)
    assert second.chain[-1] == first.chain[-1], "same root"
    assert second.chain[0].public_key() != first.chain[0].public_key()
    (retired,) = rotated["retired-trust"]
    assert x509.load_pem_x509_certificates(Path(retired["ca-chain"]).read_bytes()) == list(
        first.chain
    )
    assert retired["url"] == "https://keyless.example.com"
    assert datetime.fromisoformat(retired["end"]) > now

    monkeypatch.setenv("KEYLESS_CA_PASSWORD", "wrong")
    code = main(
        [
            "ca",
            "rotate",
            "--out",
            str(out),
            "--password-env",
            "KEYLESS_CA_PASSWORD",
            "--public-url",
            "https://keyless.example.com",
        ]
    )
    assert code == 1
    assert "cannot decrypt the root key: wrong password?" in capsys.readouterr().err


def _rotate(out: Path, capsys) -> dict:
    rotate = ["ca", "rotate", "--out", str(out), "--password-env", "KEYLESS_CA_PASSWORD"]
    assert main([*rotate, "--public-url", "https://keyless.example.com"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_rotation_never_writes_the_live_chain(tmp_path: Path, monkeypatch, capsys) -> None:
    """A server still configured with the chain and key it runs on restarts on them after a
    rotation (before its config is edited); the new files are beside them, and the config to
    paste names them, with the live chain under retired-trust. A second rotation retires the
    first one's chain."""
    monkeypatch.setenv("KEYLESS_CA_PASSWORD", "correct horse battery staple")
    out = tmp_path / "ceremony"
    assert main(["ca", "init", "--out", str(out), "--password-env", "KEYLESS_CA_PASSWORD"]) == 0
    live = yaml.safe_load(capsys.readouterr().out)["ca"]
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    now = datetime.now(UTC)
    first = _signer_config(live, tmp_path).load_signer(state_dir=tmp_path, now=now)

    rotated = _rotate(out, capsys)
    assert {name: (out / name).read_bytes() for name in before} == before
    restarted = _signer_config(live, tmp_path).load_signer(state_dir=tmp_path, now=now)
    assert restarted.chain == first.chain
    new_chain, new_key = Path(rotated["ca"]["chain"]), Path(rotated["ca"]["key"])
    assert new_chain.parent == out.resolve() and new_chain.name.startswith("ca-chain-")
    assert new_key.parent == out.resolve() and new_key.name.startswith("ca-key-")
    assert new_key.stat().st_mode & 0o777 == 0o600
    (retired,) = rotated["retired-trust"]
    assert retired["ca-chain"] == live["chain"]
    second = _signer_config(rotated["ca"], tmp_path).load_signer(state_dir=tmp_path, now=now)
    assert second.chain[-1] == first.chain[-1] and second.chain[0] != first.chain[0]

    # The next rotation (a second later at least: files are named to the second) retires the
    # chain this one made, and leaves it as it is too.
    made = new_chain.read_bytes()
    store = KeyStore(password=b"correct horse battery staple")
    again = rotate_intermediate(out, store, name="keyless", now=now + timedelta(seconds=1))
    assert again.retired_chain_path.resolve() == new_chain
    assert again.chain_path.resolve() not in (new_chain, Path(live["chain"]))
    assert new_chain.read_bytes() == made


def test_rotate_tuf_root(tmp_path: Path, capsys) -> None:
    state = tmp_path / "state"
    with dev_server(state):
        pass
    assert main(["ca", "rotate-tuf-root", "--state-dir", str(state)]) == 0
    assert "published TUF root version 2" in capsys.readouterr().err
    assert (state / "tuf-root-key.v2.pem").stat().st_mode & 0o777 == 0o600
    assert (state / "tuf" / "2.root.json").exists()
