"""The project's promises to a new user: the README's commands, CI, examples, layering."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from keyless.server.config import load_server_config

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", (REPO / "README.md").read_text(), re.DOTALL)


def test_readme_opens_with_install_and_serve_then_tests() -> None:
    first, second = _readme_commands()[:2]
    assert first == "pip install . && keyless serve"
    assert second == "pip install '.[test]' && python -m pytest"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    script = (REPO / ".ci" / "run").read_text()
    pattern = re.search(r'grep -m1 -E "(.*?)" README\.md', script).group(1)
    matches = [
        line for line in (REPO / "README.md").read_text().splitlines() if re.search(pattern, line)
    ]
    assert matches[0] == _readme_commands()[1]
    assert "set -euo pipefail" in script
    assert "apt-get install -y docker-registry apache2-utils postgresql softhsm2" in script


def test_example_server_config_loads() -> None:
    config = load_server_config(REPO / "config" / "server.yaml")
    assert config.production and not config.dev_issuer
    assert config.issuers.match("https://token.actions.githubusercontent.com") is not None


@pytest.mark.parametrize(
    "module",
    ["keyless.oidc", "keyless.oidc.authenticator", "keyless.cli.main", "keyless.server.config"],
)
def test_logic_modules_do_not_import_flask(module: str) -> None:
    code = f"import sys, {module}; sys.exit('flask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


@pytest.mark.parametrize(
    "package", ["ca", "oidc", "tlog", "tsa", "strictjson", "core", "cli", "client", "server"]
)
def test_each_package_says_its_job(package: str) -> None:
    source = (REPO / package / "__init__.py").read_text()
    assert source.startswith('"""'), f"{package}/__init__.py needs a docstring naming its one job"


# What `keyless verify FILE` never imports (beyond what the interpreter's site loaded).
LEAN_VERIFY_ABSENT = (
    "requests",
    "urllib3",
    "flask",
    "yaml",
    "jwt",
    "pydantic",
    "sigstore_models",
    "tuf",
    "fcntl",
    "keyless.client.oci",
    "keyless.client.attest",
    "keyless.client.trust.tuf",
    "keyless.cli.commands.sign",
)


def test_verifying_a_file_loads_no_network_or_server_code(vectors) -> None:
    """`keyless verify FILE` in a deploy gate: start-up stays lean: no requests, no Flask, no
    pydantic (the lean wire reader instead of sigstore-models), no TUF client or its lock, no
    attestation code, no other command."""
    case = (
        vectors / "sigstore-conformance" / "test" / "assets" / "bundle-verify" / "happy-path-v0.3"
    )
    artifact = vectors / "sigstore-conformance" / "test" / "assets" / "a.txt"
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from keyless.cli.main import main\n"
        f"rc = main(['verify', '--bundle', {str(case / 'bundle.sigstore.json')!r},"
        " '--certificate-identity-regexp', '.*', '--certificate-oidc-issuer-regexp', '.*',"
        f" {str(artifact)!r}])\n"
        f"heavy = {LEAN_VERIFY_ABSENT!r}\n"
        "loaded = sorted(m for m in heavy if m in sys.modules and m not in before)\n"
        "sys.exit(f'rc={rc} loaded={loaded}' if rc or loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# What serves a log and never a client that reads one (issue 19): the durable engine, its
# storage and the Prometheus counters it registers.
LOG_ENGINE = (
    "keyless.tlog.log",
    "keyless.tlog.rekor_v2",
    "keyless.tlog.rekor",
    "keyless.tlog.storage",
    "keyless.tlog.sqlite_storage",
    "keyless.tlog.postgres_storage",
    "keyless.tlog.metrics",
    "prometheus_client",
    "sqlite3",
)


def test_reading_logs_loads_no_log_engine(vectors) -> None:
    """`keyless monitor`, `audit` and `verify` read Rekor v1 and v2 logs in a process that
    loads none of the log engine, run as they run: a tile log named from a trusted root, its
    entry judged by the monitor and parsed by the audit, and a Rekor v2 bundle verified."""
    case = vectors / "sigstore-conformance/test/assets/bundle-verify/rekor2-happy-path"
    artifact = vectors / "sigstore-conformance/test/assets/a.txt"
    code = f"""
import base64, json, sys
from keyless.cli.main import main
from keyless.client.transparency import audit, monitor, tiles
from keyless.client.trust import TrustedRoot

root = TrustedRoot.from_json(open({str(case / "trusted_root.json")!r}, "rb").read())
keys = [key for key in root.tlogs.values() if tiles.is_tile_log_key(key)]
assert keys, "the root lists no tile log"
tiles.TileLog(keys[0].base_url, keys)
bundle = json.load(open({str(case / "bundle.sigstore.json")!r}))
body = base64.b64decode(bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])
audit.parse_v2_entry(body).check_signature()
watch = monitor.WatchList.build([], [".*"], [])
findings, _ = monitor.judge_entry(0, "id", None, body, watch, monitor.IssuanceCheck(root))
assert findings, "the monitor did not judge the entry"
rc = main(["verify", "--bundle", {str(case / "bundle.sigstore.json")!r},
           "--certificate-identity-regexp", ".*", "--certificate-oidc-issuer-regexp", ".*",
           "--trusted-root", {str(case / "trusted_root.json")!r}, {str(artifact)!r}])
loaded = sorted(m for m in {LOG_ENGINE!r} if m in sys.modules)
sys.exit(f"rc={{rc}} loaded={{loaded}}" if rc or loaded else 0)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_building_every_command_loads_no_verification_or_crypto() -> None:
    """`keyless --help` lists the commands; their flags need no verifier, no cryptography."""
    code = (
        "import sys\n"
        "from keyless.cli.main import build_parser\n"
        "build_parser()\n"
        "heavy = ('cryptography', 'keyless.client.verify', 'keyless.client.attest.statement')\n"
        "loaded = sorted(m for m in heavy if m in sys.modules)\n"
        "sys.exit(f'loaded={loaded}' if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"]
)
def test_code_is_ruff_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Commands that start a server compose it from `server`; nothing else in `cli` may.
SERVER_COMMANDS = {
    "cli/commands/serve.py",
    "cli/commands/ca.py",
    "cli/commands/gate.py",
    "cli/commands/witness.py",
}


def test_client_library_imports_no_server_code() -> None:
    offenders = []
    for path in sorted((REPO / "cli").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative in SERVER_COMMANDS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{relative}: {n}" for n in names if n.split(".")[:2] == ["keyless", "server"]
            ]
    assert not offenders
