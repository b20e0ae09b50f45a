"""The compact-JWS decoder refuses every malformed part with `token-malformed`, never another
exception (which the CA would answer with HTTP 500): property tests over whole strings, over
parts drawn from the base64url alphabet at every length, and over canonical encodings of
arbitrary bytes (tests/ca/test_hostile_input.py sends the part that once crashed the CA)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keyless.oidc import TokenError
from keyless.oidc.tokens import TokenLimits, UnverifiedToken, parse_token

FUZZ = settings(
    max_examples=int(os.environ.get("KEYLESS_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LIMITS = TokenLimits()
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_REASONS = {"token-malformed", "token-too-large"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parsed_or_refused(raw: str) -> UnverifiedToken | TokenError:
    """The decoder's answer: a token, or a TokenError with a malformed reason; anything else
    escapes and fails the test."""
    try:
        return parse_token(raw, limits=LIMITS)
    except TokenError as exc:
        assert exc.reason in _REASONS, (exc.reason, exc.detail)
        return exc


@FUZZ
@given(raw=st.text(max_size=200))
@example(raw="A.B.C")
@example(raw="A.e30.e30")
@example(raw="e30.e30.A")
@example(raw="....")
def test_any_string_is_a_token_or_malformed(raw: str) -> None:
    _parsed_or_refused(raw)


_part = st.text(alphabet=_ALPHABET, max_size=40)


@FUZZ
@given(header=_part, payload=_part, signature=_part)
def test_parts_of_every_length_are_a_token_or_malformed(
    header: str, payload: str, signature: str
) -> None:
    answer = _parsed_or_refused(f"{header}.{payload}.{signature}")
    if any(len(part) % 4 == 1 for part in (header, payload, signature)):
        assert isinstance(answer, TokenError)
        assert answer.reason == "token-malformed"


_object = st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4)


@FUZZ
@given(
    header=_object.map(lambda h: {"alg": "ES256", **h}).map(json.dumps).map(str.encode)
    | st.binary(max_size=60),
    claims=_object.map(lambda c: {"iss": "https://issuer.example", **c})
    .map(json.dumps)
    .map(str.encode)
    | st.binary(max_size=60),
    signature=st.binary(max_size=80),
)
def test_canonical_encodings_decode_to_their_bytes(
    header: bytes, claims: bytes, signature: bytes
) -> None:
    answer = _parsed_or_refused(f"{_b64url(header)}.{_b64url(claims)}.{_b64url(signature)}")
    if isinstance(answer, UnverifiedToken):
        assert answer.header == json.loads(header)
        assert answer.claims == json.loads(claims)
        assert answer.signature == signature


@FUZZ
@given(signature=st.binary(min_size=1, max_size=80), low_bits=st.integers(1, 15))
def test_a_non_canonical_spelling_of_the_same_bytes_is_refused(
    signature: bytes, low_bits: int
) -> None:
    """Unused low bits set in the last character decode to the same bytes: one signature, many
    token strings. Only the canonical spelling is accepted."""
    canonical = _b64url(signature)
    unused = {2: 4, 3: 2}.get(len(canonical) % 4)
    if unused is None:
        return  # a whole number of 3-byte groups has no unused bits
    last = _ALPHABET.index(canonical[-1]) | (low_bits % (1 << unused))
    spelled = canonical[:-1] + _ALPHABET[last]
    if spelled == canonical:
        return
    header = _b64url(b'{"alg":"ES256"}')
    claims = _b64url(b'{"iss":"https://issuer.example"}')
    with pytest.raises(TokenError) as refused:
        parse_token(f"{header}.{claims}.{spelled}", limits=LIMITS)
    assert (refused.value.reason, refused.value.detail) == (
        "token-malformed",
        "token signature is not canonical base64url",
    )
