"""Client token sources, end to end against the development issuer."""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
from flask import Flask, jsonify, request

from keyless.oidc import acquire
from keyless.oidc.acquire import TokenSourceError
from tests.conftest import serve_wsgi


def test_explicit_value_wins_over_environment(monkeypatch) -> None:
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", "from-env")
    assert acquire.explicit_token(" given \n") == "given"


def test_environment_variable(monkeypatch) -> None:
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", "from-env")
    assert acquire.explicit_token(None) == "from-env"


def test_token_file(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("abc.def.ghi\n")
    assert acquire.explicit_token(f"@{path}") == "abc.def.ghi"


def test_missing_token_file(tmp_path) -> None:
    with pytest.raises(TokenSourceError) as info:
        acquire.explicit_token(f"@{tmp_path / 'nope'}")
    assert (
        info.value.message
        == f"cannot read the identity token file {tmp_path / 'nope'}: No such file or directory"
    )


def test_huge_token_file(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"a" * (70 * 1024))
    with pytest.raises(TokenSourceError) as info:
        acquire.explicit_token(f"@{path}")
    assert info.value.message.endswith("is larger than 65536 bytes")


def test_expired_token_is_caught_before_use(server) -> None:
    token = server.email_token(expires_in=-120)
    expiry = acquire.token_expiry(token)
    with pytest.raises(TokenSourceError) as info:
        acquire.check_not_expired(token, now=datetime.now(UTC))
    assert (
        info.value.message
        == f"the identity token expired at {expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )
    acquire.check_not_expired(server.email_token(), now=datetime.now(UTC))


def _github_runner(token: str) -> Flask:
    """A stand-in for GitHub's ACTIONS_ID_TOKEN_REQUEST_URL endpoint, which we cannot run."""
    app = Flask("actions")
    seen: dict[str, str] = {}

    @app.get("/token")
    def issue():
        seen["audience"] = request.args.get("audience", "")
        seen["authorization"] = request.headers.get("Authorization", "")
        return jsonify(value=token)

    app.config["seen"] = seen
    return app


def test_ambient_github_actions(server, monkeypatch) -> None:
    token = server.github_token()
    app = _github_runner(token)
    with serve_wsgi(app) as url:
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"{url}/token?api-version=2.0")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-secret")
        assert acquire.ambient_token("sigstore") == token
    assert app.config["seen"] == {"audience": "sigstore", "authorization": "bearer runner-secret"}


def test_github_actions_without_id_token_permission(monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_URL", raising=False)
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", raising=False)
    with pytest.raises(TokenSourceError) as info:
        acquire.ambient_token()
    assert info.value.message.startswith("GitHub Actions did not provide an identity token")
    assert info.value.hint == "grant the job `permissions: id-token: write`"


def test_no_ambient_credentials_outside_ci(monkeypatch) -> None:
    for name in (
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "BUILDKITE",
        "CIRCLECI",
        "GOOGLE_SERVICE_ACCOUNT_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    assert acquire.ambient_token() is None


def test_browser_login_with_pkce(server) -> None:
    """The 'browser' follows the authorize redirect to the loopback receiver, as a real one would."""
    out = io.StringIO()
    token = acquire.interactive_token(
        issuer=f"{server.url}/oidc",
        open_browser=lambda url: threading.Thread(
            target=requests.get, args=(url,), kwargs={"timeout": 10}
        ).start(),
        out=out,
        timeout=20,
    )
    assert (
        server.authenticator.authenticate(token, now=datetime.now(UTC)).san_value
        == "dev@keyless.test"
    )
    assert f"{server.url}/oidc/authorize?" in out.getvalue()


def test_device_login(server) -> None:
    out = io.StringIO()

    def approve_when_prompted() -> None:
        deadline = time.monotonic() + 10
        while "open " not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = out.getvalue().split("open ", 1)[1].split(" and enter", 1)[0]
        requests.get(url, timeout=10)

    threading.Thread(target=approve_when_prompted, daemon=True).start()
    token = acquire.interactive_token(
        issuer=f"{server.url}/oidc", force_oob=True, out=out, timeout=20
    )
    assert (
        server.authenticator.authenticate(token, now=datetime.now(UTC)).san_value
        == "dev@keyless.test"
    )


def test_login_at_an_unreachable_issuer() -> None:
    with pytest.raises(TokenSourceError) as info:
        acquire.interactive_token(issuer="http://127.0.0.1:9/oidc", out=io.StringIO())
    assert info.value.message == (
        "cannot read the OIDC issuer's configuration at http://127.0.0.1:9/oidc/.well-known/openid-configuration"
    )


def test_token_expiry_of_garbage_is_unknown() -> None:
    assert acquire.token_expiry("not-a-jwt") is None
    assert acquire.token_expiry("a.e30.c") is None


def test_token_expiry_reads_base64url_strictly() -> None:
    # {"exp":10}: unpadded base64url, as JWS writes it; padded, it is not a JWT's payload.
    assert acquire.token_expiry("a.eyJleHAiOjEwfQ.c") == datetime.fromtimestamp(10, UTC)
    assert acquire.token_expiry("a.eyJleHAiOjEwfQ==.c") is None
