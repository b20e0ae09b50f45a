"""The development issuer answers direct loopback clients only, unless the operator opts in.

A reverse proxy (or a DNS-rebinding web page) on the same host reaches the server from a
loopback address, so the peer address alone proves nothing: a request that carries forwarding
headers, or names a host that is not loopback, came through something else and is refused with
403 unless `dev-issuer: {allow-proxied-requests: true}` says the operator knows.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import DevServer, dev_server

REFUSAL = {
    "error": "access_denied",
    "error_description": (
        "the development issuer answers direct loopback clients only; this request came through"
        " a proxy or names another host. Set dev-issuer: {allow-proxied-requests: true} in"
        " server.yaml only if everyone the proxy admits may mint tokens"
    ),
}

PROXIED = [
    pytest.param({"X-Forwarded-For": "203.0.113.7"}, id="x-forwarded-for"),
    pytest.param({"Forwarded": "for=203.0.113.7;proto=https"}, id="forwarded"),
    pytest.param({"X-Real-IP": "203.0.113.7"}, id="x-real-ip"),
    pytest.param({"Via": "1.1 proxy.example.com"}, id="via"),
    pytest.param({"X-Forwarded-Host": "keyless.example.com"}, id="x-forwarded-host"),
    pytest.param({"Host": "keyless.example.com"}, id="public-host"),
    pytest.param({"Host": "127.0.0.1.nip.io:8080"}, id="rebinding-host"),
]


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory) -> Iterator[DevServer]:
    with dev_server(
        Path(tmp_path_factory.mktemp("proxied-state")), dev_issuer_allow_proxied=True
    ) as running:
        yield running


def _mint(url: str, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{url}/oidc/mint", json={"email": "eve@example.com"}, headers=headers, timeout=10
    )


@pytest.mark.parametrize("headers", PROXIED)
def test_proxied_requests_are_refused(server, headers: dict[str, str]) -> None:
    response = _mint(server.url, headers)
    assert response.status_code == 403, response.text
    assert response.json() == REFUSAL
    discovery = requests.get(
        f"{server.url}/oidc/.well-known/openid-configuration", headers=headers, timeout=10
    )
    assert discovery.status_code == 403
    assert discovery.json() == REFUSAL


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST"])
def test_direct_loopback_clients_are_served(server, host: str) -> None:
    port = server.url.rsplit(":", 1)[1]
    response = _mint(server.url, {"Host": f"{host}:{port}"})
    assert response.status_code == 200, response.text
    assert response.json()["id_token"].count(".") == 2


def test_http_1_0_is_refused_as_nginx_default_proxying(server) -> None:
    """nginx's default proxy_pass keeps Host 127.0.0.1:port and adds no header, but speaks
    HTTP/1.0; direct clients (requests, curl, browsers, the CLI) speak HTTP/1.1."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"GET /oidc/.well-known/openid-configuration HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"403", head
    assert json.loads(body) == REFUSAL


def test_direct_request_without_headers_is_served(server) -> None:
    assert _mint(server.url, {}).status_code == 200


@pytest.mark.parametrize("headers", PROXIED)
def test_opted_in_server_serves_proxied_requests(proxied_server, headers) -> None:
    response = _mint(proxied_server.url, headers)
    assert response.status_code == 200, response.text
    assert "id_token" in response.json()


def test_the_opt_in_is_read_from_server_yaml(tmp_path: Path) -> None:
    from keyless.server.config import load_server_config

    path = tmp_path / "server.yaml"
    path.write_text("dev-issuer: {enabled: true, allow-proxied-requests: true}\n")
    assert load_server_config(path).dev_issuer_allow_proxied is True
    path.write_text("dev-issuer: {enabled: true}\n")
    assert load_server_config(path).dev_issuer_allow_proxied is False
