"""Fixtures shared by the whole suite: the test vectors, and real servers on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
# `keyless` as a process, from this checkout (the console script may be another install's).
KEYLESS = [sys.executable, "-m", "keyless.cli.main"]


def skip_unless_ci(reason: str) -> None:
    """Skip a test whose peer is missing on a developer's machine; in CI (CI=true), where
    `.ci/run` installs every peer, a missing one is a failure, never a silent skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _private_caches(tmp_path_factory, monkeypatch) -> None:
    """Each test gets its own client caches and data (trusted roots, sigstore's TUF roots)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch) -> None:
    """Every server in the suite is on loopback; proxy variables must not reroute requests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """An anonymous OCI registry (Debian's docker-registry) over plain HTTP on loopback."""
    from tests.registry import run_registry

    with run_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture
def pusher(registry):
    """Pushes generated images to the anonymous registry."""
    from tests.registry import Pusher

    return Pusher(registry)


def _run_as_server_user(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the test server then runs as `nobody`.
    return ["runuser", "-u", "nobody", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        skip_unless_ci("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        skip_unless_ci("running as root without runuser: PostgreSQL refuses to run as root")
    # Not under pytest's tmp_path: its parents are private to root, and the server user must
    # reach this directory.
    base = Path(tempfile.mkdtemp(prefix="keyless-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "nobody")
    data = base / "data"
    subprocess.run(
        _run_as_server_user(["initdb", "-D", str(data), "-A", "trust", "-U", "keyless"]),
        check=True,
        capture_output=True,
    )
    options = f"-k {base} -c listen_addresses='' -c fsync=on -c synchronous_commit=on"
    start = ["pg_ctl", "-D", str(data), "-l", str(base / "log"), "-o", options, "-w", "start"]
    subprocess.run(_run_as_server_user(start), check=True, capture_output=True)
    try:
        yield f"host={base} user=keyless dbname=postgres"
    finally:
        stop = ["pg_ctl", "-D", str(data), "-w", "stop", "-m", "fast"]
        subprocess.run(_run_as_server_user(stop), check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def vectors() -> Path:
    """Third-party test vectors kept in the repository (provenance in tests/data/README.md)."""
    return DATA


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def keyless_serve(
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    stdout: int = subprocess.PIPE,
    start_seconds: float = 30,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`keyless serve ARGS` in its own process on loopback, once /healthz answers 200; stopped
    with SIGTERM (as gunicorn and Kubernetes stop it) at the end."""
    port = port or free_port()
    process = subprocess.Popen(
        [*KEYLESS, "serve", "--port", str(port), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_seconds
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # a loaded machine
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {process.communicate()[1]}")
            time.sleep(0.1)
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def serve_wsgi(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a WSGI app on a free loopback port in a thread; yields its base URL."""
    with serve_factory(lambda _base_url: app, host=host) as base_url:
        yield base_url


@contextmanager
def serve_factory(factory, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Bind a loopback port (free unless given), build the app for that URL with
    `factory(base_url)`, serve it.

    For apps that must know their own origin before they exist (issuer URLs, log origins).
    """
    server = make_server(host, port, _unready, threaded=True)
    base_url = f"http://{host}:{server.server_port}"
    server.app = factory(base_url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _unready(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


@dataclass(frozen=True)
class DevServer:
    """A dev-mode keyless server on loopback, with its development issuer."""

    url: str
    app: Any
    config: Any

    @property
    def issuer(self):
        return self.app.extensions["keyless.devissuer"]

    @property
    def authenticator(self):
        return self.app.extensions["keyless.authenticator"]

    def email_token(self, email: str = "alice@example.com", **options: Any) -> str:
        return self.issuer.mint(
            self.issuer.email_claims(email),
            issuer_url=self.issuer.issuer_url,
            now=datetime.now(UTC),
            **options,
        )

    def github_token(self, **claims: Any) -> str:
        options = {
            "repository": "acme/app",
            "workflow": "release.yml",
            "ref": "refs/heads/main",
            **claims,
        }
        return self.issuer.mint(
            self.issuer.github_claims(**options),
            issuer_url=self.issuer.github_issuer_url,
            now=datetime.now(UTC),
        )


@contextmanager
def dev_server(state_dir: Path, port: int = 0, **overrides: Any) -> Iterator[DevServer]:
    """Run `create_app` in dev mode on a loopback port (free unless given); `overrides` replace
    config fields."""
    from keyless.server.app import create_app
    from keyless.server.config import dev_config

    built: dict[str, Any] = {}

    def factory(base_url: str):
        port = int(base_url.rsplit(":", 1)[1])
        built["config"] = replace(dev_config(port=port, state_dir=state_dir), **overrides)
        built["app"] = create_app(built["config"])
        return built["app"]

    with serve_factory(factory, port=port) as url:
        yield DevServer(url, built["app"], built["config"])


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[DevServer]:
    """The real keyless app in dev mode, shared by the session (its state is its own)."""
    with dev_server(tmp_path_factory.mktemp("keyless-state")) as running:
        yield running


@pytest.fixture(scope="session")
def dev_issuer(server: DevServer):
    """The development issuer of the session's server."""
    return server.issuer
