"""Discovery and JWKS fetching against misbehaving issuers served on loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask, jsonify, redirect

from keyless.oidc import FetchLimits, JWKSCache, TokenError, parse_issuers
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


# Meta-issuer bounds: a pattern lets the token's sender choose the URL the CA fetches.


class _FloodTarget:
    """A loopback host a meta-issuer pattern admits: counts discovery requests, answers 404,
    and can hold one path until released or drip its answer byte by byte."""

    def __init__(self) -> None:
        import threading

        self.requests: list[str] = []
        self.arrived = threading.Event()
        self.release = threading.Event()

    def app(self, _base_url: str) -> Flask:
        import time

        from flask import Response

        app = Flask("flood-target")

        @app.get("/id/<name>/.well-known/openid-configuration")
        def discovery(name: str):
            self.requests.append(name)
            if name == "held":
                self.arrived.set()
                self.release.wait(30)
            if name == "drip":

                def slowly():
                    for _ in range(50):
                        time.sleep(0.1)
                        yield b" "

                return Response(slowly(), mimetype="application/json")
            return "", 404

        return app


@pytest.fixture
def flood_target():
    target = _FloodTarget()
    with serve_factory(target.app) as url:
        target.url = url
        yield target
    target.release.set()


def _meta_authenticator(target, limits: FetchLimits, server=None):
    from keyless.oidc import Authenticator, IssuerConfig, IssuerType, TrustedIssuers

    meta = IssuerConfig(
        type=IssuerType.KUBERNETES, pattern=f"{target.url}/id/*", allow_insecure_loopback=True
    )
    issuers = TrustedIssuers(meta_issuers=(meta,))
    if server is not None:
        issuers = server.issuer.trusted_issuers().merged(issuers)
    return Authenticator(issuers, keys=JWKSCache(limits=limits))


def _hostile_token(target, name: str) -> str:
    import base64
    import json

    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"iss": f"{target.url}/id/{name}", "aud": "sigstore", "sub": "x", "exp": 2**40}
    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(claims)}.c2ln"


def _refusal(authenticator, token: str, now: datetime) -> TokenError:
    with pytest.raises(TokenError) as info:
        authenticator.authenticate(token, now=now)
    return info.value


def test_a_failed_meta_issuer_is_not_fetched_again_for_five_minutes(flood_target) -> None:
    from datetime import timedelta

    auth = _meta_authenticator(flood_target, FetchLimits(timeout_seconds=2))
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    token = _hostile_token(flood_target, "a")
    assert "answered HTTP 404" in _refusal(auth, token, now).detail
    for later in (timedelta(seconds=1), timedelta(minutes=4, seconds=59)):
        error = _refusal(auth, token, now + later)
        assert (error.reason, error.detail) == (
            "jwks-unavailable",
            "fetching this issuer's keys failed at 2026-01-01T12:00:00Z; not retried before"
            " 2026-01-01T12:05:00Z",
        )
    assert flood_target.requests == ["a"]
    assert "answered HTTP 404" in _refusal(auth, token, now + timedelta(minutes=5)).detail
    assert flood_target.requests == ["a", "a"]


def test_new_meta_issuers_per_minute_are_capped(flood_target) -> None:
    from datetime import timedelta

    auth = _meta_authenticator(flood_target, FetchLimits(max_meta_fetches_per_minute=3))
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    reasons = [_refusal(auth, _hostile_token(flood_target, f"n{i}"), now).reason for i in range(5)]
    assert reasons == ["jwks-unavailable"] * 3 + ["issuer-fetch-limited"] * 2
    assert flood_target.requests == ["n0", "n1", "n2"]
    error = _refusal(auth, _hostile_token(flood_target, "n5"), now + timedelta(seconds=59))
    assert error.detail == (
        "keys of 3 new issuers matching a meta-issuer pattern were fetched in the last minute;"
        " retry later"
    )
    _refusal(auth, _hostile_token(flood_target, "n6"), now + timedelta(seconds=60))
    assert flood_target.requests == ["n0", "n1", "n2", "n6"]


def test_exact_issuers_are_not_held_back_by_the_meta_bounds(server, flood_target) -> None:
    auth = _meta_authenticator(flood_target, FetchLimits(max_meta_fetches_per_minute=0), server)
    now = datetime.now(UTC)
    assert _refusal(auth, _hostile_token(flood_target, "x"), now).reason == "issuer-fetch-limited"
    assert flood_target.requests == []
    principal = auth.authenticate(server.email_token(), now=now)
    assert principal.san_value == "alice@example.com"


def test_concurrent_meta_fetches_are_capped(flood_target) -> None:
    import threading

    auth = _meta_authenticator(flood_target, FetchLimits(max_concurrent_meta_fetches=1))
    now = datetime.now(UTC)
    held: list[TokenError] = []
    thread = threading.Thread(
        target=lambda: held.append(_refusal(auth, _hostile_token(flood_target, "held"), now))
    )
    thread.start()
    assert flood_target.arrived.wait(10)
    error = _refusal(auth, _hostile_token(flood_target, "other"), now)
    assert (error.reason, error.detail) == (
        "issuer-fetch-limited",
        "1 keys fetches for new issuers matching a meta-issuer pattern are in progress;"
        " retry later",
    )
    flood_target.release.set()
    thread.join(30)
    assert held[0].reason == "jwks-unavailable"
    assert flood_target.requests == ["held"]
    # The slot is free again.
    _refusal(auth, _hostile_token(flood_target, "after"), now)
    assert flood_target.requests == ["held", "after"]


def test_a_dripping_issuer_is_cut_off_by_the_budget(flood_target) -> None:
    auth = _meta_authenticator(flood_target, FetchLimits(budget_seconds=0.5))
    error = _refusal(auth, _hostile_token(flood_target, "drip"), datetime.now(UTC))
    assert error.reason == "jwks-unavailable"
    assert error.detail == (
        f"cannot fetch the issuer's keys: fetching {flood_target.url}/id/drip/.well-known/"
        "openid-configuration exceeded the 0.5-second budget"
    )
