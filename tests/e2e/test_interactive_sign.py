"""`keyless sign` with no token: interactive logins at the server's development issuer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import KEYLESS

AMBIENT = ("SIGSTORE_ID_TOKEN", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI")


def _clean_env() -> dict[str, str]:
    """The environment without ambient credentials, read per test so that the per-test
    XDG directories (tests/conftest.py) reach the subprocess, not the user's own."""
    return {k: v for k, v in os.environ.items() if k not in AMBIENT}


def _artifact(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.bin"
    path.write_bytes(b"interactive\n")
    return path


def test_device_flow(server, tmp_path: Path) -> None:
    artifact = _artifact(tmp_path)
    process = subprocess.Popen(
        [*KEYLESS, "sign", "--server", server.url, "--oauth-force-oob", str(artifact)],
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    )
    # The server's trust (TUF root on first use, then its signing config) comes before the
    # login: a distrusted server or altered config is refused before the user logs in.
    assert process.stderr.readline().startswith(f"trusting {server.url} on first use;")
    prompt = process.stderr.readline()
    match = re.fullmatch(
        r"To log in, open (\S+) and enter the code ([0-9A-F]{4}-[0-9A-F]{4})\n", prompt
    )
    assert match, prompt
    assert requests.get(match.group(1), timeout=10).status_code == 200  # the user approves
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 0, rest
    assert f"signed {artifact} as dev@keyless.test (issuer {server.url}/oidc)" in rest


def test_browser_flow_with_pkce(server, tmp_path: Path) -> None:
    artifact = _artifact(tmp_path)
    fetch = f'{sys.executable} -c "import requests, sys; requests.get(sys.argv[1], timeout=10)" %s'
    result = subprocess.run(
        [*KEYLESS, "sign", "--server", server.url, str(artifact)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_clean_env(), "BROWSER": fetch},
    )
    assert result.returncode == 0, result.stderr
    assert f"{server.url}/oidc/authorize?" in result.stderr
    assert f"signed {artifact} as dev@keyless.test" in result.stderr


def test_a_broken_browser_is_not_fatal(server, tmp_path: Path) -> None:
    """The URL is printed; a browser that cannot start only adds a line, never a traceback."""
    process = subprocess.Popen(
        [*KEYLESS, "sign", "--server", server.url, str(_artifact(tmp_path))],
        stderr=subprocess.PIPE,
        text=True,
        env={**_clean_env(), "BROWSER": 'broken "quote'},
    )
    trusting = process.stderr.readline()  # first use of the server's TUF root
    lines = [process.stderr.readline() for _ in range(3)]
    process.kill()
    process.communicate(timeout=10)
    assert trusting.startswith(f"trusting {server.url} on first use;")
    assert lines[0] == "Waiting for the browser to finish logging in. If it did not open, visit:\n"
    assert lines[1].startswith(f"{server.url}/oidc/authorize?")
    assert lines[2] == "Could not open a browser; visit the URL above.\n"
