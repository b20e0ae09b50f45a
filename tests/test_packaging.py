"""One import package per distribution: `pip install` puts `keyless/` in site-packages and nothing
else, and every module is imported under that one name."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

# The design card's folders, each mapped to `keyless.<folder>` by pyproject.toml.
FOLDERS = ("ca", "cli", "client", "core", "oidc", "server", "strictjson", "tlog", "tsa")


def _source_packages() -> set[str]:
    """Every `keyless.*` package the folders hold (a folder with an `__init__.py`)."""
    found = set()
    for folder in FOLDERS:
        for init in (REPO / folder).rglob("__init__.py"):
            found.add("keyless." + ".".join(init.parent.relative_to(REPO).parts))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # Built from a copy of what the wheel is made of, so a `build/` left in the checkout by an
    # earlier build cannot add stale modules to it.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in FOLDERS:
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the test extras carry setuptools, so this needs no network.
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-w", out, source],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("keyless-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_has_one_top_level_package(wheel) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert tops == {"keyless", next(t for t in tops if t.endswith(".dist-info"))}
    # `keyless` stays an implicit namespace package: a `keyless/__init__.py` would have to live
    # in a `keyless/` folder at the root, which shadows the installed package there.
    assert "keyless/__init__.py" not in wheel.namelist()


def test_wheel_holds_every_package_and_its_data(wheel) -> None:
    names = set(wheel.namelist())
    shipped = {
        "keyless." + ".".join(Path(name).parent.parts[1:])
        for name in names
        if name.endswith("/__init__.py")
    }
    assert shipped == _source_packages()
    data = {name for name in names if "/data/" in name}
    for folder in FOLDERS:
        for path in (REPO / folder).rglob("data/*"):
            assert f"keyless/{path.relative_to(REPO).as_posix()}" in data


def _imported_names(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_no_module_imports_a_bare_package_name() -> None:
    """`import ca` or `from cli.x import y` would find another distribution's `ca` or `cli`."""
    offenders = []
    for path in sorted(REPO.rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.parts[0] in {".git", "build"} or relative.parts[:2] in {
            ("tests", "data"),
            ("tests", "js"),
        }:
            continue
        offenders += [
            f"{relative}:{line}: {name}"
            for line, name in _imported_names(path)
            if name.split(".")[0] in FOLDERS
        ]
    assert not offenders


# What each package may import from the others: the house's one arrow direction (DESIGN.md's
# dependency rules). The servers' packages stand on `core` and `strictjson`; `ca` also on `oidc`;
# the client library on `oidc` (token acquisition) and `tlog`'s proof checks, never a server;
# `server` composes them all; `cli` stands on top, and nothing imports it.
MAY_IMPORT: dict[str, set[str]] = {
    "strictjson": set(),
    "core": {"strictjson"},
    "oidc": {"core", "strictjson"},
    "tlog": {"core", "strictjson"},
    "tsa": {"core", "strictjson"},
    "ca": {"core", "strictjson", "oidc"},
    "client": {"core", "strictjson", "oidc", "tlog"},
    "server": {"core", "strictjson", "oidc", "tlog", "tsa", "ca", "client"},
    "cli": {"core", "strictjson", "oidc", "tlog", "tsa", "ca", "client", "server"},
}


def _keyless_packages_imported(path: Path) -> set[str]:
    """The `keyless.<package>` names a module imports, `from keyless import x` included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "keyless":
                names = [f"keyless.{alias.name}" for alias in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("keyless.")}
    return found


def test_dependencies_run_one_way() -> None:
    assert set(MAY_IMPORT) == set(FOLDERS)
    offenders = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((REPO / package).rglob("*.py")):
            wrong = _keyless_packages_imported(path) - allowed - {package}
            offenders += [f"{path.relative_to(REPO)}: keyless.{name}" for name in sorted(wrong)]
    assert not offenders


def _lines(folder: str) -> int:
    return sum(len(path.read_text().splitlines()) for path in (REPO / folder).rglob("*.py"))


def test_the_command_line_is_a_thin_layer() -> None:
    """`cli/` holds the command line only; the library it drives lives in `client/`."""
    total = sum(_lines(folder) for folder in FOLDERS)
    assert _lines("cli") <= 0.20 * total
