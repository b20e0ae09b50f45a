"""The development issuer over HTTP: discovery, minting, code + PKCE, device grant, dev-token."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from keyless.cli.main import main


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_discovery_points_at_own_endpoints(server) -> None:
    document = requests.get(f"{server.url}/oidc/.well-known/openid-configuration", timeout=5).json()
    assert document["issuer"] == f"{server.url}/oidc"
    assert document["jwks_uri"] == f"{server.url}/oidc/jwks"
    github = requests.get(
        f"{server.url}/oidc/github/.well-known/openid-configuration", timeout=5
    ).json()
    assert github["issuer"] == f"{server.url}/oidc/github"


def test_mint_over_http_is_accepted_by_the_authenticator(server) -> None:
    response = requests.post(
        f"{server.url}/oidc/mint", json={"email": "bob@example.com"}, timeout=5
    )
    token = response.json()["id_token"]
    principal = server.authenticator.authenticate(token, now=datetime.now(UTC))
    assert principal.san_value == "bob@example.com"


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({}, "email is required (a non-empty string)"),
        ({"email": "a@example.com", "expires_in": "soon"}, "expires_in must be an integer"),
        ({"email": "a@example.com", "claims": []}, "claims must be an object of at most 64"),
    ],
    ids=["no-email", "bad-expiry", "claims-not-object"],
)
def test_mint_refuses_bad_requests(server, body: dict, description: str) -> None:
    response = requests.post(f"{server.url}/oidc/mint", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": description}


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def _authorize(
    server, challenge: str, redirect_uri: str, *, nonce: str | None = None
) -> requests.Response:
    return requests.get(
        f"{server.url}/oidc/authorize",
        params={
            "response_type": "code",
            "client_id": "sigstore",
            "redirect_uri": redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "xyz",
            "scope": "openid email",
            **({"nonce": nonce} if nonce is not None else {}),
        },
        allow_redirects=False,
        timeout=5,
    )


def test_authorization_code_with_pkce(server) -> None:
    verifier, challenge = _pkce()
    redirect_uri = "http://127.0.0.1:5555/auth/callback"
    response = _authorize(server, challenge, redirect_uri)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect_uri
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    form = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "client_id": "sigstore",
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    token = requests.post(f"{server.url}/oidc/token", data=form, timeout=5).json()["id_token"]
    assert _claims(token)["email"] == "dev@keyless.test"
    assert (
        server.authenticator.authenticate(token, now=datetime.now(UTC)).san_value
        == "dev@keyless.test"
    )
    replay = requests.post(f"{server.url}/oidc/token", data=form, timeout=5)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "nonce", [secrets.token_urlsafe(16), "a nonce, verbatim: ñ/+= ", None], ids=str
)
def test_the_id_token_carries_the_nonce_of_the_request(server, nonce: str | None) -> None:
    """OIDC Core 3.1.2.1: the nonce of the authentication request is in the ID token,
    unchanged, and a token for a request without one has none: openid-client (under
    @sigstore/cli) refuses a token whose nonce is not exactly the one it sent."""
    verifier, challenge = _pkce()
    redirect_uri = "http://127.0.0.1:5555/cb"
    location = _authorize(server, challenge, redirect_uri, nonce=nonce).headers["Location"]
    form = {
        "grant_type": "authorization_code",
        "code": parse_qs(urlsplit(location).query)["code"][0],
        "client_id": "sigstore",
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    token = requests.post(f"{server.url}/oidc/token", data=form, timeout=5).json()["id_token"]
    jwks = jwt.PyJWKClient(f"{server.url}/oidc/jwks")
    claims = jwt.decode(
        token,
        jwks.get_signing_key_from_jwt(token).key,
        algorithms=["RS256"],
        audience="sigstore",
        issuer=f"{server.url}/oidc",
    )
    assert claims.get("nonce") == nonce
    assert ("nonce" in claims) == (nonce is not None)


def test_an_oversized_nonce_is_refused(server) -> None:
    response = _authorize(server, _pkce()[1], "http://127.0.0.1:5555/cb", nonce="n" * 513)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "nonce must be at most 512 characters",
    }


def test_wrong_pkce_verifier_is_refused(server) -> None:
    _, challenge = _pkce()
    redirect_uri = "http://localhost:5555/cb"
    code = parse_qs(
        urlsplit(_authorize(server, challenge, redirect_uri).headers["Location"]).query
    )["code"][0]
    response = requests.post(
        f"{server.url}/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "sigstore",
            "redirect_uri": redirect_uri,
            "code_verifier": "wrong",
        },
        timeout=5,
    )
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "PKCE code_verifier does not match",
    }


def test_non_loopback_redirect_is_refused(server) -> None:
    response = _authorize(server, _pkce()[1], "https://attacker.example/cb")
    assert response.status_code == 400
    assert response.json()["error_description"] == "redirect_uri must be an http loopback URL"


def test_device_flow(server) -> None:
    start = requests.post(
        f"{server.url}/oidc/device/code", data={"client_id": "sigstore"}, timeout=5
    ).json()
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": start["device_code"],
        "client_id": "sigstore",
    }
    pending = requests.post(f"{server.url}/oidc/token", data=form, timeout=5)
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    assert requests.get(start["verification_uri_complete"], timeout=5).status_code == 200
    token = requests.post(f"{server.url}/oidc/token", data=form, timeout=5).json()["id_token"]
    assert _claims(token)["email"] == "dev@keyless.test"


def test_dev_token_email(server, capsys) -> None:
    assert main(["dev-token", "--server", server.url, "--email", "carol@example.com"]) == 0
    token = capsys.readouterr().out.strip()
    assert (
        server.authenticator.authenticate(token, now=datetime.now(UTC)).san_value
        == "carol@example.com"
    )


def test_dev_token_github_actions(server, capsys) -> None:
    argv = [
        "dev-token",
        "--server",
        server.url,
        "--github-actions",
        "--repository",
        "acme/app",
        "--workflow",
        "release.yml",
        "--ref",
        "refs/tags/v1.4",
        "--environment",
        "prod",
    ]
    assert main(argv) == 0
    principal = server.authenticator.authenticate(
        capsys.readouterr().out.strip(), now=datetime.now(UTC)
    )
    assert (
        principal.san_value
        == "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.4"
    )
    assert principal.extensions[14] == "refs/tags/v1.4"
    assert principal.extensions[23] == "prod"


def test_dev_token_audience_claims_and_expiry(server, capsys) -> None:
    argv = [
        "dev-token",
        "--server",
        server.url,
        "--email",
        "d@example.com",
        "--audience",
        "other",
        "--claim",
        "email_verified=false",
        "--claim",
        "team=red",
        "--expires-in",
        "-60",
    ]
    assert main(argv) == 0
    claims = _claims(capsys.readouterr().out.strip())
    assert (claims["aud"], claims["email_verified"], claims["team"]) == ("other", False, "red")
    assert claims["exp"] < datetime.now(UTC).timestamp()


def test_dev_token_unreachable_server(capsys) -> None:
    assert main(["dev-token", "--server", "http://127.0.0.1:9", "--email", "a@example.com"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: cannot reach http://127.0.0.1:9: ConnectionError",
        "hint: is `keyless serve` running in dev mode there?",
    ]


def test_dev_token_github_needs_repository(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["dev-token", "--github-actions", "--workflow", "x.yml"])
    assert info.value.code == 2
    assert "--github-actions needs --repository and --workflow" in capsys.readouterr().err
