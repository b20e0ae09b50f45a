"""Every token refusal, through the Authenticator, with keys fetched from a real issuer over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyless.oidc import Authenticator, FetchLimits, JWKSCache, SANType, TokenError, parse_issuers

MESSAGE = "There was an error processing the identity token"


class CountingSession(requests.Session):
    """A real session that records the URLs it fetched."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        self.fetched.append(url)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def session() -> CountingSession:
    return CountingSession()


@pytest.fixture
def authenticator(server, session) -> Authenticator:
    """Trusts the dev server's issuers plus a meta-issuer, fetching keys over HTTP."""
    meta = parse_issuers(
        "issuers:\n  - issuer-pattern: https://oidc.eks.*.amazonaws.com/id/*\n    type: kubernetes\n",
        source="test",
    )
    issuers = server.issuer.trusted_issuers().merged(meta)
    return Authenticator(issuers, keys=JWKSCache(session=session))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _claims(server, **overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    base = {
        "iss": server.issuer.issuer_url,
        "sub": "alice@example.com",
        "aud": "sigstore",
        "email": "alice@example.com",
        "email_verified": True,
        "iat": now,
        "exp": now + 600,
    }
    return {**base, **overrides}


def _dev_key(server) -> rsa.RSAPrivateKey:
    return server.issuer._key


def _sign(
    server, claims: dict[str, Any], *, key=None, alg: str = "RS256", kid: str | None = None
) -> str:
    headers = {"kid": server.issuer.kid if kid is None else kid}
    return jwt.encode(claims, key or _dev_key(server), algorithm=alg, headers=headers)


def _refused(authenticator: Authenticator, token: str) -> TokenError:
    with pytest.raises(TokenError) as info:
        authenticator.authenticate(token, now=datetime.now(UTC))
    assert info.value.message == MESSAGE
    return info.value


def test_valid_email_token(server, authenticator, session) -> None:
    principal = authenticator.authenticate(server.email_token(), now=datetime.now(UTC))
    assert (principal.san_type, principal.san_value) == (SANType.EMAIL, "alice@example.com")
    assert principal.issuer == server.issuer.issuer_url
    assert session.fetched == [
        f"{server.issuer.issuer_url}/.well-known/openid-configuration",
        f"{server.issuer.issuer_url}/jwks",
    ]


def test_valid_github_actions_token(server, authenticator) -> None:
    principal = authenticator.authenticate(server.github_token(), now=datetime.now(UTC))
    assert (
        principal.san_value
        == "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
    )
    assert principal.extensions[12] == "https://github.com/acme/app"
    assert principal.extensions[8] == server.issuer.github_issuer_url


def test_jwks_is_cached(server, authenticator, session) -> None:
    for _ in range(3):
        authenticator.authenticate(server.email_token(), now=datetime.now(UTC))
    assert len(session.fetched) == 2


def test_alg_none(server, authenticator, session) -> None:
    token = _unsigned({"alg": "none", "kid": server.issuer.kid}, _claims(server)) + "."
    error = _refused(authenticator, token)
    assert (error.reason, error.detail) == (
        "alg-not-allowed",
        'signing algorithm "none" is not allowed',
    )
    assert session.fetched == []


def test_hs256_signed_with_the_public_key_as_secret(server, authenticator) -> None:
    public_pem = (
        _dev_key(server)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = _unsigned({"alg": "HS256", "kid": server.issuer.kid}, _claims(server))
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    error = _refused(authenticator, f"{signing_input}.{_b64(mac)}")
    assert error.detail == 'signing algorithm "HS256" is not allowed'


def test_expired(server, authenticator) -> None:
    expired_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    claims = _claims(server, exp=int(expired_at.timestamp()), iat=int(expired_at.timestamp()) - 600)
    error = _refused(authenticator, _sign(server, claims))
    assert (error.reason, error.detail) == (
        "token-expired",
        f"token expired at {expired_at.strftime('%Y-%m-%dT%H:%M:%SZ')}",
    )


def test_expiry_within_leeway_is_accepted(server, authenticator) -> None:
    now = int(datetime.now(UTC).timestamp())
    token = _sign(server, _claims(server, exp=now - 10, iat=now - 600))
    assert authenticator.authenticate(token, now=datetime.now(UTC)).san_value == "alice@example.com"


def test_not_yet_valid(server, authenticator) -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    error = _refused(authenticator, _sign(server, _claims(server, nbf=int(later.timestamp()))))
    assert error.detail == f"token is not valid before {later.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def test_issued_in_the_future(server, authenticator) -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    error = _refused(authenticator, _sign(server, _claims(server, iat=int(later.timestamp()))))
    assert error.reason == "token-issued-in-future"


def test_wrong_audience(server, authenticator) -> None:
    error = _refused(authenticator, _sign(server, _claims(server, aud="x")))
    assert (error.reason, error.detail) == (
        "aud-mismatch",
        'audience "x" does not include "sigstore"',
    )


def test_audience_list_containing_client_id_is_accepted(server, authenticator) -> None:
    token = _sign(server, _claims(server, aud=["other", "sigstore"]))
    assert authenticator.authenticate(token, now=datetime.now(UTC)).san_value == "alice@example.com"


def test_unknown_issuer(server, authenticator, session) -> None:
    error = _refused(authenticator, _sign(server, _claims(server, iss="https://evil.example.com")))
    assert (error.reason, error.detail) == (
        "issuer-untrusted",
        'issuer "https://evil.example.com" is not trusted',
    )
    assert session.fetched == []


@pytest.mark.parametrize(
    "issuer",
    [
        "https://oidc.eks.evil.com/../id/x",
        "https://oidc.eks.a.amazonaws.com.evil.com/id/x",
        "https://oidc.eks.a.amazonaws.com/id/x/../../y",
        "http://localhost?x=https://oidc.eks.a.amazonaws.com/id/x",
    ],
    ids=["dot-dot", "suffix-host", "extra-segments", "query-smuggling"],
)
def test_meta_issuer_pattern_must_not_match(server, authenticator, session, issuer: str) -> None:
    error = _refused(authenticator, _sign(server, _claims(server, iss=issuer)))
    assert error.reason == "issuer-untrusted"
    assert session.fetched == []  # nothing was fetched from the attacker's URL


def test_unknown_kid_refetches_once_then_is_rate_limited(server, authenticator, session) -> None:
    start = datetime.now(UTC)
    authenticator.authenticate(server.email_token(), now=start)
    assert len(session.fetched) == 2
    later = start + timedelta(seconds=31)  # past the refetch interval, inside the cache TTL
    with pytest.raises(TokenError) as info:
        authenticator.authenticate(_sign(server, _claims(server), kid="rotated-away"), now=later)
    assert (info.value.reason, info.value.detail) == (
        "kid-unknown",
        'the issuer\'s JWKS has no key with kid "rotated-away"',
    )
    assert len(session.fetched) == 4  # one refetch: discovery + JWKS
    with pytest.raises(TokenError):
        authenticator.authenticate(_sign(server, _claims(server), kid="another"), now=later)
    assert len(session.fetched) == 4  # rate-limited: no second refetch within the interval


def test_refetch_allowed_again_after_the_interval(server, session) -> None:
    cache = JWKSCache(
        session=session, limits=FetchLimits(min_refetch_interval=timedelta(seconds=5))
    )
    authenticator = Authenticator(server.issuer.trusted_issuers(), keys=cache)
    token = _sign(server, _claims(server), kid="unknown")
    now = datetime.now(UTC)
    for offset in (0, 1, 6):
        with pytest.raises(TokenError):
            authenticator.authenticate(token, now=now + timedelta(seconds=offset))
    assert len(session.fetched) == 4  # fetched at 0s (fresh, so no refetch), none at 1s, one at 6s


def test_bad_signature(server, authenticator) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    error = _refused(authenticator, _sign(server, _claims(server), key=other))
    assert (error.reason, error.detail) == (
        "signature-invalid",
        "token signature does not verify with the issuer's keys",
    )


def test_asymmetric_alg_confusion(server, authenticator) -> None:
    """An ES256 token naming the issuer's RSA key is refused before any verification."""
    token = _sign(server, _claims(server), key=ec.generate_private_key(ec.SECP256R1()), alg="ES256")
    error = _refused(authenticator, token)
    assert error.reason == "key-mismatch"


def test_two_part_token(server, authenticator) -> None:
    error = _refused(authenticator, _unsigned({"alg": "RS256"}, _claims(server)))
    assert (error.reason, error.detail) == (
        "token-malformed",
        "token must have 3 dot-separated parts, it has 2",
    )


def test_many_dots(server, authenticator) -> None:
    error = _refused(authenticator, "a" + "." * 5000)
    assert error.detail == "token must have 3 dot-separated parts, it has 5001"


def test_one_mib_token(server, authenticator) -> None:
    error = _refused(authenticator, "a" * (1024 * 1024))
    assert (error.reason, error.detail) == (
        "token-too-large",
        "token is 1048576 bytes, over the 32768-byte limit",
    )


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("!!!.e30.sig", "token header is not base64url"),
        (f"{_b64(b'[1]')}.e30.c2ln", "token header is not a JSON object"),
        (f"{_b64(b'{}')}.e30.c2ln", "token header has no alg"),
    ],
    ids=["bad-base64", "header-not-object", "no-alg"],
)
def test_malformed(server, authenticator, token: str, detail: str) -> None:
    assert _refused(authenticator, token).detail == detail


def test_email_not_verified(server, authenticator) -> None:
    error = _refused(authenticator, _sign(server, _claims(server, email_verified=False)))
    assert (error.reason, error.detail) == (
        "email-unverified",
        "email is not verified (email_verified is false)",
    )


def test_issuer_unreachable(authenticator, session) -> None:
    issuers = parse_issuers(
        "issuers:\n  - issuer: http://127.0.0.1:9/oidc\n    type: email\n    allow-insecure-loopback: true\n",
        source="test",
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(datetime.now(UTC).timestamp())
    token = jwt.encode(
        {"iss": "http://127.0.0.1:9/oidc", "aud": "sigstore", "exp": now + 60},
        key,
        algorithm="RS256",
    )
    auth = Authenticator(
        issuers, keys=JWKSCache(session=session, limits=FetchLimits(timeout_seconds=2))
    )
    with pytest.raises(TokenError) as info:
        auth.authenticate(token, now=datetime.now(UTC))
    assert info.value.reason == "jwks-unavailable"
    assert info.value.detail.startswith("cannot fetch the issuer's keys: ")


def _signed_raw(server, header: bytes, payload: bytes) -> str:
    """A token signed by the dev issuer's key over exactly these header and payload bytes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signing_input = f"{_b64(header)}.{_b64(payload)}"
    signature = _dev_key(server).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _dict_json(value: dict[str, Any]) -> str:
    return json.dumps(value)[1:-1]


@pytest.mark.parametrize(
    ("part", "duplicate", "detail"),
    [
        ("header", '"alg": "none", "alg": "RS256"', "token header has a duplicate field 'alg'"),
        (
            "payload",
            '"email": "alice@example.com", "email": "root@example.com"',
            "token payload has a duplicate field 'email'",
        ),
        ("payload", '"iss": "https://evil.example", "iss": "{iss}"', None),
    ],
    ids=["header-alg", "payload-email", "payload-iss"],
)
def test_duplicate_keys_are_refused_even_when_signed(
    server, authenticator, session, part: str, duplicate: str, detail: str | None
) -> None:
    """Readers disagree on which duplicate wins; a signed token with one is refused unfetched."""
    claims = _claims(server)
    header = {"kid": server.issuer.kid, "typ": "JWT"}
    duplicate = duplicate.replace("{iss}", server.issuer.issuer_url)
    if part == "header":
        header_json = "{" + duplicate + ", " + _dict_json(header) + "}"
        payload_json = json.dumps(claims)
    else:
        header_json = json.dumps({"alg": "RS256", **header})
        for name in ("email", "iss"):
            if f'"{name}"' in duplicate:
                claims.pop(name)
        payload_json = "{" + duplicate + ", " + _dict_json(claims) + "}"
    token = _signed_raw(server, header_json.encode(), payload_json.encode())
    error = _refused(authenticator, token)
    assert (error.reason, error.detail) == (
        "token-malformed",
        detail or "token payload has a duplicate field 'iss'",
    )
    assert session.fetched == []


@pytest.mark.parametrize(
    ("crit", "detail"),
    [
        (["exp"], 'token header crit names parameters this server does not understand: ["exp"]'),
        (["b64"], 'token header crit names parameters this server does not understand: ["b64"]'),
        ([], "token header crit must be a non-empty list of strings"),
        ("b64", "token header crit must be a non-empty list of strings"),
    ],
    ids=["unknown", "b64", "empty", "not-a-list"],
)
def test_crit_header_is_refused(server, authenticator, session, crit, detail: str) -> None:
    """RFC 7515 §4.1.11: a critical extension the recipient does not understand is fatal."""
    header = {"alg": "RS256", "kid": server.issuer.kid, "crit": crit}
    if isinstance(crit, list):
        header.update({name: False for name in crit})
    token = _signed_raw(server, json.dumps(header).encode(), json.dumps(_claims(server)).encode())
    error = _refused(authenticator, token)
    assert (error.reason, error.detail) == ("token-malformed", detail)
    assert session.fetched == []


def test_signed_raw_token_without_tricks_is_accepted(server, authenticator) -> None:
    """The helper above makes tokens the authenticator accepts, so the refusals are real."""
    header = {"alg": "RS256", "kid": server.issuer.kid, "typ": "JWT"}
    token = _signed_raw(server, json.dumps(header).encode(), json.dumps(_claims(server)).encode())
    principal = authenticator.authenticate(token, now=datetime.now(UTC))
    assert principal.san_value == "alice@example.com"


@pytest.mark.parametrize(
    ("header", "payload", "detail"),
    [
        (b'{"alg":"RS256"}', b"[" * 3000 + b"]" * 3000, "token payload is nested too deeply"),
        (
            b'{"alg":"RS256"}',
            b'{"a":' * 40 + b"1" + b"}" * 40,
            "token payload is nested deeper than 32 levels",
        ),
        (b'{"alg":"RS256"}', b'{"iss":"\xe9"}', "token payload is not UTF-8"),
        (b'{"alg":"RS256"}', b'{"exp": NaN, "iss": "x"}', "token payload contains NaN"),
        (b'{"alg":"RS256"}', b'"just a string"', "token payload is not a JSON object"),
        (b'{"alg":"RS256"}', b'{"iss": 7}', "token has no iss claim"),
        (b'{"alg":"RS256"}', b'{"iss": ""}', "token has no iss claim"),
        (b'{"alg":"RS256","kid":7}', b'{"iss":"x"}', "token header kid is not a string"),
        (b'{"alg":["RS256"]}', b'{"iss":"x"}', "token header has no alg"),
        (b"\xff\xfe", b'{"iss":"x"}', "token header is not UTF-8"),
    ],
    ids=[
        "nested",
        "deep",
        "latin1",
        "nan",
        "string",
        "iss-int",
        "iss-empty",
        "kid-int",
        "alg-list",
        "utf16",
    ],
)
def test_hostile_token_json(
    authenticator, session, header: bytes, payload: bytes, detail: str
) -> None:
    token = f"{_b64(header)}.{_b64(payload)}.{_b64(b'sig')}"
    error = _refused(authenticator, token)
    assert (error.reason, error.detail) == ("token-malformed", detail)
    assert session.fetched == []


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("é.e30.c2ln", "token header is not base64url"),
        ("e30.e30\x00.c2ln", "token payload is not base64url"),
        ("e30.e30.c2ln=", "token signature is not base64url"),
    ],
    ids=["non-ascii", "nul", "padding"],
)
def test_hostile_token_encoding(authenticator, token: str, detail: str) -> None:
    assert _refused(authenticator, token).detail == detail
