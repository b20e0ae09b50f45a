"""sigstore-python, the reference client, as the e2e tests drive it: its CLI in a subprocess
with a keyless server's client trust config, so its verdict is the official one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

SIGSTORE = [sys.executable, "-m", "sigstore"]


def sigstore(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "1000"}  # keep rich from wrapping its messages
    return subprocess.run([*SIGSTORE, *args], capture_output=True, text=True, timeout=120, env=env)


def save_trust_config(server_url: str, path: Path) -> Path:
    """The server's ClientTrustConfig, as sigstore-python's `--trust-config` takes it."""
    path.write_text(
        requests.get(f"{server_url}/api/v1/trust/client_trust_config.json", timeout=5).text
    )
    return path


def verify_identity(
    trust_config: Path, bundle: Path | str, artifact: Path, identity: str, issuer: str
) -> subprocess.CompletedProcess[str]:
    return sigstore(
        "--trust-config",
        str(trust_config),
        "verify",
        "identity",
        "--bundle",
        str(bundle),
        "--cert-identity",
        identity,
        "--cert-oidc-issuer",
        issuer,
        str(artifact),
    )
