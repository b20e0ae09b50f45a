"""Third-party Python clients, each in a venv of its own, built once and kept between runs.

A peer's venv lives under ~/.cache/keyless-tests/venvs/ (KEYLESS_TEST_CACHE overrides the
folder), named for the peer and keyed by its pinned requirements and this interpreter, so a
second run, or a second worker, reuses it. A venv that could not be built (no network on a
developer's machine) skips the peer's tests with pip's own reason; under CI=true it fails them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import skip_unless_ci

_COMPLETE = "keyless-peer.json"  # written last: a venv without it is rebuilt
_PIP_SECONDS = 900


def cache_dir() -> Path:
    """Where peer venvs are kept: not XDG_CACHE_HOME, which each test points at its own."""
    configured = os.environ.get("KEYLESS_TEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "keyless-tests"


@dataclass(frozen=True)
class PeerVenv:
    """A built venv: its interpreter runs the peer's modules and driver scripts."""

    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """`python ARGS` in this venv; COLUMNS keeps rich-based CLIs from wrapping messages."""
        environment = {**os.environ, "COLUMNS": "1000", **(env or {})}
        return subprocess.run(
            [self.python, *args], capture_output=True, text=True, timeout=timeout, env=environment
        )

    def installed(self) -> dict[str, str]:
        """Distribution name -> version, as recorded when the venv was built."""
        return json.loads((self.path / _COMPLETE).read_text())["installed"]


def peer_venv(name: str, requirements: Sequence[str]) -> PeerVenv:
    """The venv of peer `name` with `requirements` (pinned) installed, built on first use."""
    key = json.dumps(
        {"python": [sys.version, os.path.realpath(sys.executable)], "requires": list(requirements)}
    )
    path = cache_dir() / "venvs" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(path.name + ".lock")):
        if (path / _COMPLETE).is_file() and (path / "bin" / "python").exists():
            return PeerVenv(path)
        shutil.rmtree(path, ignore_errors=True)
        failure = _build(path, requirements)
        if failure is not None:
            shutil.rmtree(path, ignore_errors=True)
            skip_unless_ci(f"{name}: could not install {' '.join(requirements)}: {failure}")
    return PeerVenv(path)


def _build(path: Path, requirements: Sequence[str]) -> str | None:
    """Make the venv and install; None on success, else the reason in pip's words."""
    python = str(path / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    steps = {
        "making the venv": [sys.executable, "-m", "venv", str(path)],
        "pip install": [*pip, "install", "--quiet", "--retries", "2", *requirements],
    }
    for step, command in steps.items():
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_SECONDS)
        except subprocess.TimeoutExpired:
            return f"{step} took more than {_PIP_SECONDS} s (no network?)"
        if done.returncode != 0:
            return _last_error(done.stderr)
    listed = subprocess.run(
        [*pip, "list", "--format", "json"], capture_output=True, text=True, check=True
    )
    installed = {entry["name"]: entry["version"] for entry in json.loads(listed.stdout)}
    record = {"requires": list(requirements), "installed": installed}
    (path / _COMPLETE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return None


def _last_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """One builder per venv at a time, across processes (pytest-xdist, parallel runs)."""
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
