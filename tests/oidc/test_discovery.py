"""Discovery and JWKS fetching against misbehaving issuers served on loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask, jsonify, redirect

from oidc import FetchLimits, JWKSCache, TokenError, parse_issuers
from tests.conftest import serve_factory


def _issuer(url: str):
    text = f"issuers:\n  - issuer: {url}\n    type: email\n    allow-insecure-loopback: true\n"
    return parse_issuers(text, source="test").issuers[0]


def _bad_issuer(kind: str, jwks: dict):
    def factory(base_url: str) -> Flask:
        app = Flask("bad-issuer")

        @app.get("/.well-known/openid-configuration")
        def discovery():
            if kind == "redirect":
                return redirect("https://attacker.example/.well-known/openid-configuration")
            if kind == "wrong-issuer":
                return jsonify(issuer="https://accounts.google.com", jwks_uri=f"{base_url}/jwks")
            if kind == "huge":
                return jsonify(issuer=base_url, jwks_uri=f"{base_url}/jwks", pad="x" * 300_000)
            if kind == "https-jwks":
                return jsonify(issuer=base_url, jwks_uri="http://example.com/jwks")
            if kind == "no-usable-keys":
                return jsonify(issuer=base_url, jwks_uri=f"{base_url}/weak")
            return jsonify(issuer=base_url, jwks_uri=f"{base_url}/jwks")

        @app.get("/jwks")
        def keys():
            return jsonify(jwks)

        @app.get("/weak")
        def weak():
            return jsonify(keys=[{"kty": "oct", "k": "c2VjcmV0", "kid": "k"}])

        return app

    return serve_factory(factory)


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("redirect", "answered HTTP 302"),
        ("wrong-issuer", 'discovery document names issuer "https://accounts.google.com", not'),
        ("huge", "is larger than 262144 bytes"),
        ("https-jwks", "refusing to fetch http://example.com/jwks: https is required"),
    ],
    ids=["redirect-not-followed", "issuer-mismatch", "oversized-document", "jwks-over-http"],
)
def test_bad_discovery_is_refused(dev_issuer, kind: str, detail: str) -> None:
    with _bad_issuer(kind, dev_issuer.jwks()) as url:
        cache = JWKSCache()
        with pytest.raises(TokenError) as info:
            cache.keys(_issuer(url), kid=dev_issuer.kid, now=datetime.now(UTC))
    assert info.value.reason == "jwks-unavailable"
    assert detail in info.value.detail


def test_symmetric_keys_in_jwks_are_never_used(dev_issuer) -> None:
    with _bad_issuer("no-usable-keys", dev_issuer.jwks()) as url, pytest.raises(TokenError) as info:
        JWKSCache().keys(_issuer(url), kid="k", now=datetime.now(UTC))
    assert info.value.reason == "kid-unknown"


def test_failed_fetch_is_not_retried_at_once(dev_issuer) -> None:
    issuer = _issuer("http://127.0.0.1:9")
    cache = JWKSCache(limits=FetchLimits(timeout_seconds=2))
    now = datetime.now(UTC)
    with pytest.raises(TokenError) as first:
        cache.keys(issuer, kid=None, now=now)
    with pytest.raises(TokenError) as second:
        cache.keys(issuer, kid=None, now=now)
    assert first.value.detail.startswith("cannot fetch the issuer's keys")
    assert second.value.detail == "the issuer's keys could not be fetched; retry later"


def test_good_issuer_keys_are_returned(dev_issuer) -> None:
    with _bad_issuer("good", dev_issuer.jwks()) as url:
        keys = JWKSCache().keys(_issuer(url), kid=dev_issuer.kid, now=datetime.now(UTC))
    assert [key.kid for key in keys] == [dev_issuer.kid]
