"""Hostile JSON from an issuer's discovery or JWKS endpoint: the token is refused as
jwks-unavailable, never an uncaught exception (a meta-issuer pattern lets the token's sender
choose the host that answers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keyless.oidc import JWKSCache, TokenError, parse_issuers
from tests.conftest import serve_factory

NESTED = b"[" * 5000 + b"]" * 5000


def _issuer(url: str):
    text = f"issuers:\n  - issuer: {url}\n    type: email\n    allow-insecure-loopback: true\n"
    return parse_issuers(text, source="test").issuers[0]


def _serving(discovery: bytes | None, jwks: bytes):
    def factory(base_url: str):
        def app(environ, start_response):
            path = environ["PATH_INFO"]
            if path == "/.well-known/openid-configuration":
                body = discovery
                if body is None:
                    body = b'{"issuer": "%s", "jwks_uri": "%s/jwks"}' % (
                        base_url.encode(),
                        base_url.encode(),
                    )
            else:
                body = jwks
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]

        return app

    return serve_factory(factory)


@pytest.mark.parametrize(
    ("discovery", "jwks", "detail"),
    [
        pytest.param(NESTED, b"{}", "is nested too deeply", id="nested-discovery"),
        pytest.param(None, NESTED, "is nested too deeply", id="nested-jwks"),
        pytest.param(b'{"issuer": "\xff"}', b"{}", "is not UTF-8", id="latin1"),
        pytest.param(
            None,
            b'{"keys": [], "keys": []}',
            "has a duplicate field 'keys'",
            id="duplicate-keys",
        ),
        pytest.param(None, b'{"keys": NaN}', "contains NaN", id="nan"),
    ],
)
def test_hostile_issuer_json_is_a_clean_refusal(discovery, jwks, detail: str) -> None:
    with _serving(discovery, jwks) as url, pytest.raises(TokenError) as info:
        JWKSCache().keys(_issuer(url), kid=None, now=datetime.now(UTC))
    assert info.value.reason == "jwks-unavailable"
    assert detail in info.value.detail
