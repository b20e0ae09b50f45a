"""Static types: `mypy --strict` on the packages that are typed through (pyproject's [tool.mypy]).

mypy resolves `keyless.<package>` through a folder of links named as the installed package is,
since the folders sit at the repository root under their own names.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.test_packaging import FOLDERS

# Grown package by package; a package here stays strict-clean.
TYPED_PACKAGES = ("strictjson", "core", "oidc", "tlog", "tsa", "ca")


def test_typed_packages_pass_mypy_strict(tmp_path) -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extras: pip install '.[test]'")
    shim = tmp_path / "keyless"
    shim.mkdir()
    for folder in FOLDERS:
        (shim / folder).symlink_to(REPO / folder, target_is_directory=True)
    packages = [arg for name in TYPED_PACKAGES for arg in ("-p", f"keyless.{name}")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            *packages,
        ],
        cwd=tmp_path,
        env={"MYPYPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
