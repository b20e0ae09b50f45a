"""One `keyless serve` process for the peers, and what they need from it: tokens from its
development issuer and its trust documents as files."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from keyless.cli.main import main
from tests.conftest import keyless_serve


@dataclass(frozen=True)
class Served:
    """A running `keyless serve` in dev mode."""

    url: str

    @property
    def issuer(self) -> str:
        return f"{self.url}/oidc"

    def token(self, email: str) -> str:
        """An email identity token from the server's development issuer."""
        minted = requests.post(f"{self.url}/oidc/mint", json={"email": email}, timeout=10)
        minted.raise_for_status()
        return minted.json()["id_token"]

    def trust_document(self, name: str, path: Path) -> Path:
        """GET /api/v1/trust/NAME.json saved to `path`."""
        response = requests.get(f"{self.url}/api/v1/trust/{name}.json", timeout=10)
        response.raise_for_status()
        path.write_bytes(response.content)
        return path

    def keyless(self, *args: str) -> int:
        """`keyless ARGS --server URL` in this process (its exit code)."""
        return main([*args, "--server", self.url])


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("peers-state")
    with keyless_serve("--state-dir", str(state), stdout=subprocess.DEVNULL) as (url, process):
        # Nobody reads the server's log lines; a full pipe would stall it.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield Served(url)
