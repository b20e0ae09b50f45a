"""Hostile query and form input at the development issuer's interactive endpoints: an OAuth
error (400), never an uncaught exception."""

from __future__ import annotations

import pytest
import requests

REDIRECT_REFUSED = {
    "error": "invalid_request",
    "error_description": "redirect_uri must be an http loopback URL",
}


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param("http://[::1", id="unclosed-ipv6"),
        pytest.param("http://localhost:99999/cb", id="port-out-of-range"),
        pytest.param("http://localhost:-1/cb", id="negative-port"),
        pytest.param("http://localhost:x/cb", id="port-not-a-number"),
        pytest.param("http://127.0.0.1\r\nSet-Cookie: a=b/cb", id="header-injection"),
        pytest.param("https://localhost/cb", id="https"),
        pytest.param("http://localhost.evil.example/cb", id="not-loopback"),
    ],
)
def test_authorize_refuses_unusable_redirect_uris(server, redirect_uri: str) -> None:
    response = requests.get(
        f"{server.url}/oidc/authorize",
        params={
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "client_id": "sigstore",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert response.json() == REDIRECT_REFUSED
    assert "Location" not in response.headers
