"""The README's commands, run as written against a live server (only the address differs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.conftest import skip_unless_ci

README = Path(__file__).resolve().parents[2] / "README.md"
DOC_ORIGIN = "http://127.0.0.1:8080"
DOC_REGISTRY = "127.0.0.1:5000"
# The one image the README copies from a public registry; the test copies a local one instead.
DOC_PUBLIC_IMAGE = "docker://docker.io/library/busybox:1.36"


def _commands(heading: str) -> list[str]:
    """The `sh` commands of the README section `heading`, up to the next heading of its level
    or above (sections other helpers add after it stay out)."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    ends = [text.find(f"\n{'#' * n} ", start + 1) for n in range(1, len(level) + 1)]
    section = text[start : min([end for end in ends if end != -1], default=len(text))]
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
    """From an empty directory: the tour makes the file it signs."""
    commands = _commands("### Sign") + _commands("### Verify")
    assert [c.split()[:2] for c in commands] == [
        ["echo", '"release'],
        ["keyless", "sign"],
        ["keyless", "verify"],
    ]
    _run(commands, server, tmp_path)
    assert (tmp_path / "release.tar.gz.sigstore.json").is_file()


def test_client_section_sigstore_python_and_trust(server, tmp_path: Path) -> None:
    (tmp_path / "artifact").write_bytes(b"artifact\n")
    commands = _commands("## Using keyless with sigstore-python, sigstore-js and cosign")
    # No cosign binary exists here; its lines are covered by recorded requests in tests/ca.
    runnable = [c for c in commands if not c.startswith("cosign ")]
    assert len(runnable) == 8 and len(commands) == 11
    _run(runnable, server, tmp_path)


def test_container_images(server, registry, pusher, tmp_path: Path) -> None:
    pusher.push_image("acme/app", "1.4", seed="readme")
    copy, *commands = _commands("### Sign and verify container images")
    assert copy.split()[:2] == ["skopeo", "copy"]
    assert [c.split()[:2] for c in commands] == [
        ["keyless", "sign"],
        ["keyless", "verify"],
        ["keyless", "tree"],
    ]
    _run(commands, server, tmp_path, registry=registry)


def test_an_image_reaches_the_registry_without_docker(server, registry, pusher, tmp_path) -> None:
    """The tour's skopeo line, copying from a local registry instead of Docker Hub."""
    if not shutil.which("skopeo"):
        skip_unless_ci("skopeo is not installed (Debian package skopeo)")
    source = pusher.push_image("acme/busybox", "1.36", seed="readme-skopeo")
    copy = _commands("### Sign and verify container images")[0]
    assert DOC_PUBLIC_IMAGE in copy
    local = f"--src-tls-verify=false docker://{registry.host}/acme/busybox:1.36"
    _run([copy.replace(DOC_PUBLIC_IMAGE, local)], server, tmp_path, registry=registry)
    response = requests.head(
        f"{registry.url}/v2/acme/app/manifests/1.4",
        headers={"Accept": source.media_type},
        timeout=10,
    )
    assert response.headers["Docker-Content-Digest"] == source.digest


def test_sign_with_a_key_you_keep(server, registry, pusher, tmp_path: Path) -> None:
    """The key section's commands: generate, sign, verify, then the rotation drill. Run through
    this checkout's `keyless` (python -m), so no install is needed."""
    import sys

    pusher.push_image("acme/app", "1.4", seed="readme-keys")
    commands = _commands("### Sign with a key you keep")
    assert [c.split("keyless ", 1)[1].split()[0] for c in commands] == [
        "generate-key-pair",
        "sign",
        "verify",
        "generate-key-pair",
        "sign",
        "verify",
        "verify",
    ]
    here = f"{sys.executable} -m keyless.cli.main "
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    for command in commands:
        command = command.replace(DOC_ORIGIN, server.url).replace(DOC_REGISTRY, registry.host)
        command = command.replace("keyless ", here, 1)
        result = subprocess.run(
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "release-2026.key",
        "release-2026.pub",
        "release-2027.key",
        "release-2027.pub",
    ]
