"""Where a signing client gets its identity token, tried in a fixed order.

1. an explicit token (`--identity-token VALUE` or `@FILE`), then `SIGSTORE_ID_TOKEN`;
2. ambient CI credentials through the `id` package (GitHub Actions with audience `sigstore`,
   GitLab, Buildkite, CircleCI, GCP);
3. an interactive login: authorization code + PKCE on a loopback redirect, or the device grant.

The client never verifies the token's signature: the CA does. It only reads `exp` so that an
expired token fails here with a clear message instead of at the CA.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import requests

from keyless.core.encoding import b64url_decode, format_rfc3339
from keyless.core.errors import Error, Reason
from keyless.oidc.errors import quote

ENV_TOKEN = "SIGSTORE_ID_TOKEN"
DEFAULT_CLIENT_ID = "sigstore"
MAX_TOKEN_FILE_BYTES = 64 * 1024
LOGIN_TIMEOUT_SECONDS = 300


class TokenSourceError(Error):
    """No usable identity token could be obtained."""

    reason = Reason.TOKEN_UNAVAILABLE


def explicit_token(value: str | None) -> str | None:
    """The token given on the command line (`@path` reads a file), else `SIGSTORE_ID_TOKEN`."""
    if value is None:
        value = os.environ.get(ENV_TOKEN) or None
        if value is None:
            return None
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_TOKEN_FILE_BYTES + 1)
        except OSError as exc:
            raise TokenSourceError(
                f"cannot read the identity token file {path}: {exc.strerror}"
            ) from exc
        if len(data) > MAX_TOKEN_FILE_BYTES:
            raise TokenSourceError(
                f"identity token file {path} is larger than {MAX_TOKEN_FILE_BYTES} bytes"
            )
        value = data.decode(errors="replace")
    return value.strip()


def ambient_token(audience: str = DEFAULT_CLIENT_ID) -> str | None:
    """A CI system's ambient OIDC credential, or None outside CI."""
    import id as ambient

    try:
        return ambient.detect_credential(audience)
    except ambient.GitHubOidcPermissionCredentialError as exc:
        raise TokenSourceError(
            f"GitHub Actions did not provide an identity token: {exc}",
            hint="grant the job `permissions: id-token: write`",
        ) from exc
    except ambient.AmbientCredentialError as exc:
        raise TokenSourceError(
            f"the CI environment's identity token is unavailable: {exc}"
        ) from exc


def token_expiry(token: str) -> datetime | None:
    """The token's `exp`, read without verification (the CA verifies), or None if unreadable."""
    try:
        claims = json.loads(b64url_decode(token.split(".")[1]))
        return datetime.fromtimestamp(claims["exp"], UTC)
    except (IndexError, ValueError, KeyError, TypeError, OverflowError):
        return None


def check_not_expired(token: str, *, now: datetime) -> None:
    """Raises TokenSourceError if the token has visibly expired already."""
    expires_at = token_expiry(token)
    if expires_at is not None and expires_at <= now:
        raise TokenSourceError(
            f"the identity token expired at {format_rfc3339(expires_at, whole_seconds=True)}",
            hint="get a fresh token; CI tokens live only minutes",
        )


def interactive_token(
    *,
    issuer: str,
    client_id: str = DEFAULT_CLIENT_ID,
    force_oob: bool = False,
    open_browser: Callable[[str], object] = webbrowser.open,
    out: IO[str] = sys.stderr,
    timeout: float = LOGIN_TIMEOUT_SECONDS,
) -> str:
    """Log in at `issuer`: code + PKCE through the browser, or the device grant."""
    from authlib.integrations.requests_client import OAuth2Session

    metadata = _discover(issuer)
    session = OAuth2Session(client_id, scope="openid email", code_challenge_method="S256")
    if force_oob:
        return _device_login(session, metadata, client_id, out=out, timeout=timeout)
    return _browser_login(session, metadata, open_browser=open_browser, out=out, timeout=timeout)


def _discover(issuer: str) -> dict[str, Any]:
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=10)
        response.raise_for_status()
        metadata = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise TokenSourceError(f"cannot read the OIDC issuer's configuration at {url}") from exc
    if not isinstance(metadata, dict) or "token_endpoint" not in metadata:
        raise TokenSourceError(f"{url} is not an OpenID Provider configuration")
    return metadata


def _browser_login(
    session: Any,
    metadata: dict[str, Any],
    *,
    open_browser: Callable[[str], object],
    out: IO[str],
    timeout: float,
) -> str:
    if "authorization_endpoint" not in metadata:
        raise TokenSourceError(
            "the OIDC issuer has no authorization endpoint; try --oauth-force-oob"
        )
    receiver = _RedirectReceiver()
    session.redirect_uri = receiver.redirect_uri
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=secrets.token_urlsafe(16)
    )
    print(
        f"Waiting for the browser to finish logging in. If it did not open, visit:\n{url}",
        file=out,
        flush=True,
    )
    try:
        opened = bool(open_browser(url))
    except Exception:  # any failure to launch a browser is not fatal: the URL is printed
        opened = False
    if not opened:
        print("Could not open a browser; visit the URL above.", file=out, flush=True)
    query = receiver.wait(timeout)
    if query.get("state") != state:
        raise TokenSourceError("the login redirect carried the wrong state; try again")
    if "code" not in query:
        raise TokenSourceError(f"the login was refused: {quote(query.get('error', 'no code'))}")
    token = session.fetch_token(
        metadata["token_endpoint"],
        code=query["code"],
        code_verifier=verifier,
        grant_type="authorization_code",
    )
    return _id_token(token)


def _device_login(
    session: Any, metadata: dict[str, Any], client_id: str, *, out: IO[str], timeout: float
) -> str:
    endpoint = metadata.get("device_authorization_endpoint")
    if not endpoint:
        raise TokenSourceError("the OIDC issuer does not support the device login")
    start = requests.post(
        endpoint, data={"client_id": client_id, "scope": "openid email"}, timeout=10
    )
    if start.status_code != 200:
        raise TokenSourceError(
            f"the OIDC issuer refused the device login (HTTP {start.status_code})"
        )
    grant = start.json()
    where = grant.get("verification_uri_complete") or grant["verification_uri"]
    print(f"To log in, open {where} and enter the code {grant['user_code']}", file=out, flush=True)
    interval = max(int(grant.get("interval", 5)), 1)
    deadline = time.monotonic() + min(timeout, float(grant.get("expires_in", timeout)))
    while time.monotonic() < deadline:
        time.sleep(interval)
        response = requests.post(
            metadata["token_endpoint"],
            timeout=10,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": grant["device_code"],
                "client_id": client_id,
            },
        )
        body = response.json()
        if response.status_code == 200:
            return _id_token(body)
        error = body.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise TokenSourceError(f"the device login failed: {quote(error)}")
    raise TokenSourceError("the device login timed out")


def _id_token(token: dict[str, Any]) -> str:
    value = token.get("id_token")
    if not isinstance(value, str) or not value:
        raise TokenSourceError("the OIDC issuer returned no ID token")
    return value


class _RedirectReceiver:
    """A one-shot HTTP server on a free loopback port that catches the login redirect."""

    def __init__(self) -> None:
        result: dict[str, str] = {}
        done = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                result.update({key: values[0] for key, values in query.items()})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"Login complete. You can close this window.\n")
                done.set()

            def log_message(self, *args: Any) -> None:
                return

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self._result, self._done = result, done
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_port}/auth/callback"
        # Serve at once: some browsers launchers (webbrowser's GenericBrowser) block until the
        # browser exits, and the browser needs this redirect answered to finish.
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait(self, timeout: float) -> dict[str, str]:
        """The redirect's query parameters; the receiver has been serving since it was built."""
        try:
            if not self._done.wait(timeout):
                raise TokenSourceError("timed out waiting for the browser login")
            return dict(self._result)
        finally:
            self._server.shutdown()
            self._server.server_close()
