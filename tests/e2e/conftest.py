"""Fixtures for the end-to-end image tests: real registries on loopback (see tests/registry.py).

Debian's Distribution 2.8 has no referrers API, so signatures land in the fallback tag; the
`referrers_registry` puts the test-only referrers proxy (tests/cli/oci/referrers_proxy.py) in
front of one, so the referrers-API path is exercised too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.oci.referrers_proxy import referrers_proxy
from tests.conftest import serve_wsgi
from tests.registry import RunningRegistry, TokenServer, run_registry, run_token_registry


@pytest.fixture(autouse=True)
def no_docker_config(tmp_path, monkeypatch) -> None:
    """No credentials from the user's own ~/.docker/config.json leak into a test."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """A registry that needs htpasswd Basic auth (user `ci`)."""
    with run_registry(
        tmp_path_factory.mktemp("auth-registry"), username="ci", password="push-secret-9"
    ) as running:
        yield running


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """A registry behind a bearer-token realm: anonymous tokens may pull, `ci` may push."""
    server = TokenServer(users={"ci": "token-secret-3"})
    with run_token_registry(tmp_path_factory.mktemp("token-registry"), server) as running:
        yield running


@pytest.fixture(scope="session")
def referrers_registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """A registry with the OCI 1.1 referrers API (the test proxy in front of Distribution)."""
    with (
        run_registry(tmp_path_factory.mktemp("referrers-registry")) as upstream,
        serve_wsgi(referrers_proxy(upstream.url)) as url,
    ):
        yield RunningRegistry(host=url.removeprefix("http://"), url=url)
