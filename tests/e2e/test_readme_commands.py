"""The README's commands, run as written against a live server (only the address differs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
DOC_ORIGIN = "http://127.0.0.1:8080"
DOC_REGISTRY = "127.0.0.1:5000"


def _commands(section_start: str, section_end: str) -> list[str]:
    text = README.read_text()
    section = text[text.index(section_start) : text.index(section_end)]
    blocks = re.findall(r"```sh\n(.*?)\n```", section, re.DOTALL)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]


def _run(commands: list[str], server, workdir: Path, *, registry=None) -> None:
    if not shutil.which("keyless") or not shutil.which("sigstore"):
        pytest.fail(
            "the keyless and sigstore console scripts must be installed (pip install '.[test]')"
        )
    for command in commands:
        command = command.replace("keyless dev-token ", f"keyless dev-token --server {DOC_ORIGIN} ")
        command = command.replace(DOC_ORIGIN, server.url)
        if registry is not None:
            command = command.replace(DOC_REGISTRY, registry.host)
        result = subprocess.run(
            command,
            shell=True,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "1000"},
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"


def test_tour_sign_and_verify(server, tmp_path: Path) -> None:
    (tmp_path / "release.tar.gz").write_bytes(b"release\n")
    commands = _commands("### Sign", "### Sign and verify container images")
    assert [c.split()[:2] for c in commands] == [["keyless", "sign"], ["keyless", "verify"]]
    _run(commands, server, tmp_path)


def test_client_section_sigstore_python_and_trust(server, tmp_path: Path) -> None:
    (tmp_path / "artifact").write_bytes(b"artifact\n")
    commands = _commands("## Using keyless with", "## Endpoints")
    # No cosign binary exists here; its lines are covered by recorded requests in tests/ca.
    runnable = [c for c in commands if not c.startswith("cosign ")]
    assert len(runnable) == 8 and len(commands) == 11
    _run(runnable, server, tmp_path)


def test_container_images(server, registry, pusher, tmp_path: Path) -> None:
    pusher.push_image("acme/app", "1.4", seed="readme")
    commands = _commands("### Sign and verify container images", "### Configure trusted issuers")
    assert [c.split()[:2] for c in commands] == [
        ["keyless", "sign"],
        ["keyless", "verify"],
        ["keyless", "tree"],
    ]
    _run(commands, server, tmp_path, registry=registry)
