"""Package rules for tlog: logic modules load no Flask, the client's imports stay light, and tlog
imports nothing else from keyless."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_client_imports_load_neither_flask_nor_storage() -> None:
    loaded = _loaded_after(
        "import keyless.tlog; from keyless.tlog import verify_inclusion, verify_checkpoint, verify_consistency"
    )
    assert "flask" not in loaded
    assert "sqlite3" not in loaded
    assert "keyless.tlog.log" not in loaded


def test_logic_modules_load_no_flask() -> None:
    modules = ["merkle", "checkpoint", "log", "storage", "sqlite_storage", "postgres_storage"]
    modules += ["rekor", "wire", "rekor_kinds", "pki"]
    loaded = _loaded_after("; ".join(f"import keyless.tlog.{name}" for name in modules))
    assert "flask" not in loaded
    assert "werkzeug" not in loaded


def test_tlog_imports_nothing_else_from_keyless() -> None:
    for path in (REPO / "tlog").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[:2] not in (
                    ["keyless", p] for p in ("ca", "oidc", "cli", "server")
                ), f"{path.name}: {name}"
