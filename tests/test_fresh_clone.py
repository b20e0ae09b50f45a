"""A new user's clone has no sibling checkout: representative test modules pass from a copy of
the tree in an empty temporary directory (what `git clone` would give, uncommitted work included)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Modules that read third-party vectors, bundles and trust roots: they failed from a clean clone
# when the vectors lived in ../shared.
MODULES = [
    "tests/tlog/test_merkle.py",
    "tests/cli/test_conformance.py",
    "tests/ca/test_ct_vectors.py",
]


def _clone_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    return [name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]


def test_suite_runs_from_a_fresh_clone(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone" / "keyless"
    for name in _clone_files():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    assert not (clone.parent / "shared").exists()
    environment = {k: v for k, v in os.environ.items() if k != "KEYLESS_SHARED"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MODULES],
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
