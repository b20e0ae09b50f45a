"""python-pkcs11 is an extra (`keyless[pkcs11]`): where it is not installed, every way into a
PKCS#11 token (a ceremony's `--pkcs11-module`, `ca: backend: pkcs11`, a TSA key in a token)
ends in one line with the pip command, never a traceback, and a server makes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.ca.signers import generate_ca
from keyless.tsa import dev_tsa_chain
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
MODULE = "/usr/lib/softhsm/libsofthsm2.so"  # never loaded: the binding is missing first
TOKEN = ["--pkcs11-module", MODULE, "--token-label", "keyless", "--pin-env", "KEYLESS_TEST_PIN"]
# The command line as it runs where python-pkcs11 is not installed.
WITHOUT_BINDING = (
    "import sys\n"
    "sys.modules['pkcs11'] = None  # import pkcs11 raises ImportError, as when not installed\n"
    "from keyless.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
REFUSAL = (
    "error: PKCS#11 keys need python-pkcs11, which is not installed: pip install 'keyless[pkcs11]'"
)


def _without_binding(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_BINDING, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KEYLESS_TEST_PIN": "1234"},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


@pytest.mark.parametrize("command", ["init", "tsa-init"])
def test_a_ceremony_in_a_token(tmp_path: Path, command: str) -> None:
    out = tmp_path / "ceremony"
    assert _without_binding("ca", command, "--out", str(out), *TOKEN) == [REFUSAL]
    assert not out.exists() or not any(out.iterdir())


def _chain_file(tmp_path: Path, section: str) -> Path:
    """A chain for the section: a CA's (intermediate, root) or a TSA's (timeStamping leaf)."""
    now = datetime.now(UTC)
    if section == "ca":
        chain = generate_ca(now=now)[1]
    else:
        chain = dev_tsa_chain(ec.generate_private_key(ec.SECP256R1()), now=now)
    path = tmp_path / f"{section}-chain.pem"
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    return path


@pytest.mark.parametrize("section", ["ca", "tsa"])
def test_a_server_key_in_a_token(tmp_path: Path, section: str) -> None:
    token = (
        f"  pkcs11-module: {MODULE}\n  pkcs11-token-label: keyless\n"
        "  pkcs11-key-label: keyless-key\n  pkcs11-pin-env: KEYLESS_TEST_PIN\n"
    )
    chain = _chain_file(tmp_path, section)
    extra = "  backend: pkcs11\n" if section == "ca" else ""
    config = tmp_path / "server.yaml"
    config.write_text(
        f"dev-issuer: {{enabled: true}}\n{section}:\n{extra}  chain: {chain}\n{token}"
    )
    state = tmp_path / "state"
    lines = _without_binding(
        "serve", "--config", str(config), "--state-dir", str(state), "--port", str(free_port())
    )
    assert lines[-1] == REFUSAL
    assert [name for name in os.listdir(state) if not name.startswith(".")] == []
