"""Fixtures for the OCI client tests: real registries on loopback (see tests/registry.py).

The anonymous `registry` and `pusher` are shared by the whole suite (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keyless.client.oci import RegistryClient, StaticCredentials
from tests.registry import RunningRegistry, TokenServer, run_registry, run_token_registry


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """A registry that needs htpasswd Basic auth (user `alice`)."""
    with run_registry(
        tmp_path_factory.mktemp("auth-registry"), username="alice", password="wonderland-42"
    ) as running:
        yield running


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """An anonymous registry over HTTPS with a test CA."""
    with run_registry(tmp_path_factory.mktemp("tls-registry"), tls=True) as running:
        yield running


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory) -> Iterator[RunningRegistry]:
    """A registry with bearer-token auth; anonymous tokens may pull, `bob` may push.

    `bob` can also log in with the identity (refresh) token `bobs-refresh-token`.
    """
    server = TokenServer(users={"bob": "builder-7"}, refresh_tokens={"bobs-refresh-token": "bob"})
    with run_token_registry(tmp_path_factory.mktemp("token-registry"), server) as running:
        yield running


@pytest.fixture
def client() -> Iterator[RegistryClient]:
    """An anonymous client allowed to use plain HTTP (the loopback registry has no TLS)."""
    with RegistryClient(allow_insecure=True) as value:
        yield value


def alice(registry: RunningRegistry) -> StaticCredentials:
    """The credentials the auth registry accepts."""
    return StaticCredentials(registry.username or "", registry.password or "")
