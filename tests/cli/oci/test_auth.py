"""`WWW-Authenticate` parsing: the forms registries send, and malformed headers."""

from __future__ import annotations

import pytest

from keyless.client.oci.auth import parse_challenge
from keyless.client.oci.errors import RegistryProtocolError


def test_bearer_challenge_with_quoted_scope_holding_commas():
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:acme/app:pull,push"'
    )
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:acme/app:pull,push",
    }


def test_error_parameter_and_spaces_and_escapes():
    challenge = parse_challenge(
        'Bearer realm = "https://a/t" , error="insufficient_scope", note="say \\"hi\\""'
    )
    assert challenge.params["realm"] == "https://a/t"
    assert challenge.params["error"] == "insufficient_scope"
    assert challenge.params["note"] == 'say "hi"'


def test_basic_challenge_with_token_realm():
    challenge = parse_challenge('Basic realm="keyless-test"')
    assert (challenge.scheme, dict(challenge.params)) == ("basic", {"realm": "keyless-test"})


def test_first_value_of_a_repeated_parameter_wins():
    assert parse_challenge('Bearer realm="https://a",realm="https://b"').params["realm"] == (
        "https://a"
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param("", "malformed WWW-Authenticate header", id="empty"),
        pytest.param('"Bearer"', "malformed WWW-Authenticate header", id="quoted-scheme"),
        pytest.param("Bearer " + "x" * 5000, "WWW-Authenticate header is too long", id="too-long"),
    ],
)
def test_malformed_challenges(header, message):
    with pytest.raises(RegistryProtocolError) as caught:
        parse_challenge(header)
    assert caught.value.message == message
