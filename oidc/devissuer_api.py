"""HTTP face of the development issuer: discovery, JWKS, minting and interactive logins.

Mounted only in dev mode (or when a config enables it explicitly), and it answers only direct
loopback clients: a reverse proxy or a DNS-rebinding page on the same host also connects from a
loopback address, so a request that carries forwarding headers or names a host that is not
loopback is refused too, unless the operator opted in (`allow_proxied`).
"""

from __future__ import annotations

import ipaddress
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

from keyless import strictjson
from keyless.oidc.config import is_loopback_host
from keyless.oidc.devissuer import DevIssuer, DevIssuerError, ForbiddenRequestError

bp = Blueprint("devissuer", __name__, url_prefix="/oidc")
log = logging.getLogger(__name__)
_EXTENSION = "keyless.devissuer"
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_MAX_CLAIMS = 64
_MAX_BODY_BYTES = 64 * 1024
_ALLOW_PROXIED = "keyless.devissuer.allow_proxied"
# Headers that proxies and load balancers add; a direct client has no reason to send them.
_FORWARDING_HEADERS = (
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Server",
    "X-Real-IP",
    "X-Client-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Cluster-Client-IP",
    "Via",
)
_PROXIED_REFUSAL = (
    "the development issuer answers direct loopback clients only; this request came through a"
    " proxy or names another host. Set dev-issuer: {allow-proxied-requests: true} in server.yaml"
    " only if everyone the proxy admits may mint tokens"
)


def init_app(app: Flask, issuer: DevIssuer, *, allow_proxied: bool = False) -> None:
    """Mount the development issuer on `app`.

    `allow_proxied` is the operator's explicit opt-in to answer requests that reached the
    server through a proxy on this host: anyone that proxy admits can then mint tokens.
    """
    app.extensions[_EXTENSION] = issuer
    app.extensions[_ALLOW_PROXIED] = allow_proxied
    app.register_blueprint(bp)
    log.warning(
        "DEVELOPMENT OIDC ISSUER ENABLED at %s: it mints tokens for anyone on this machine."
        " Never use it in production.",
        issuer.issuer_url,
    )


def _issuer() -> DevIssuer:
    issuer: DevIssuer = current_app.extensions[_EXTENSION]
    return issuer


@bp.before_request
def _loopback_only() -> None:
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        abort(403, description="the development issuer answers loopback clients only")
    if current_app.extensions[_ALLOW_PROXIED]:
        return
    host = urlsplit(f"//{request.host}").hostname
    # nginx's default upstream request adds no forwarding header and keeps the upstream's
    # Host, but speaks HTTP/1.0, which no client of this issuer does.
    http10 = request.environ.get("SERVER_PROTOCOL") == "HTTP/1.0"
    forwarded = any(name in request.headers for name in _FORWARDING_HEADERS)
    if not is_loopback_host(host) or forwarded or http10:
        raise ForbiddenRequestError(_PROXIED_REFUSAL)


@bp.errorhandler(DevIssuerError)
def _oauth_error(exc: DevIssuerError) -> tuple[Response, int]:
    return jsonify(error=exc.error, error_description=exc.message), exc.status


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    return jsonify(_issuer().discovery(_issuer().issuer_url))


@bp.get("/github/.well-known/openid-configuration")
def github_discovery() -> Response:
    return jsonify(_issuer().discovery(_issuer().github_issuer_url))


@bp.get("/jwks")
def jwks() -> Response:
    return jsonify(_issuer().jwks())


def _body() -> dict[str, Any]:
    """The mint request: a bounded body of strict JSON (`strictjson`), an object."""
    if (request.content_length or 0) > _MAX_BODY_BYTES:
        raise DevIssuerError(f"the body exceeds {_MAX_BODY_BYTES} bytes")
    data = request.stream.read(_MAX_BODY_BYTES + 1)
    if len(data) > _MAX_BODY_BYTES:
        raise DevIssuerError(f"the body exceeds {_MAX_BODY_BYTES} bytes")
    try:
        body = strictjson.loads(data)
    except strictjson.JSONError as exc:
        raise DevIssuerError(str(exc)) from exc
    if not isinstance(body, dict):
        raise DevIssuerError("the body must be a JSON object")
    claims = body.get("claims", {})
    if not isinstance(claims, dict) or len(claims) > _MAX_CLAIMS:
        raise DevIssuerError(f"claims must be an object of at most {_MAX_CLAIMS}")
    return body


def _minting_options(body: dict[str, Any]) -> dict[str, Any]:
    expires_in = body.get("expires_in", 600)
    audience = body.get("audience", "sigstore")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise DevIssuerError("expires_in must be an integer")
    if not isinstance(audience, str) or not audience:
        raise DevIssuerError("audience must be a non-empty string")
    return {"expires_in": expires_in, "audience": audience, "now": datetime.now(UTC)}


def _string(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise DevIssuerError(f"{name} is required (a non-empty string)")
    return value


@bp.post("/mint")
def mint_email() -> Response:
    """Mint an email token: {"email", "subject"?, "audience"?, "expires_in"?, "claims"?}."""
    body = _body()
    issuer = _issuer()
    claims = issuer.email_claims(_string(body, "email"), subject=body.get("subject"))
    claims.update(body.get("claims", {}))
    token = issuer.mint(claims, issuer_url=issuer.issuer_url, **_minting_options(body))
    return jsonify(id_token=token, issuer=issuer.issuer_url)


@bp.post("/github/mint")
def mint_github() -> Response:
    """Mint a GitHub-Actions-shaped token: {"repository", "workflow", "ref", ...}."""
    body = _body()
    issuer = _issuer()
    optional = {
        name: _string(body, name)
        for name in ("sha", "event_name", "environment", "run_id", "run_attempt")
        if name in body
    }
    claims = issuer.github_claims(
        repository=_string(body, "repository"),
        workflow=_string(body, "workflow"),
        ref=_string(body, "ref", "refs/heads/main"),
        **optional,
    )
    claims.update(body.get("claims", {}))
    token = issuer.mint(claims, issuer_url=issuer.github_issuer_url, **_minting_options(body))
    return jsonify(id_token=token, issuer=issuer.github_issuer_url)


@bp.get("/authorize")
def authorize() -> WerkzeugResponse:
    """Authorization code + PKCE: the development user is approved without a prompt."""
    args = request.args
    redirect_uri = args.get("redirect_uri", "")
    target = _loopback_redirect(redirect_uri)
    if args.get("response_type") != "code":
        raise DevIssuerError("only response_type=code", error="unsupported_response_type")
    code = _issuer().start_authorization(
        client_id=args.get("client_id", ""),
        redirect_uri=redirect_uri,
        code_challenge=args.get("code_challenge", ""),
        method=args.get("code_challenge_method", ""),
        nonce=args.get("nonce"),
    )
    query = {"code": code, **({"state": args["state"]} if "state" in args else {})}
    separator = "&" if target.query else "?"
    return redirect(f"{redirect_uri}{separator}{urlencode(query)}", code=302)


def _loopback_redirect(uri: str) -> SplitResult:
    """`uri` split, if it is an http URL on a loopback host with a valid port (or none).

    urlsplit raises on an unclosed `[` and `.port` on a port out of range; either escaped as a
    500 (the port only when the redirect's Location header was built, after the view).
    """
    refused = DevIssuerError("redirect_uri must be an http loopback URL")
    try:
        target = urlsplit(uri)
        target.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError:
        raise refused from None
    if target.scheme != "http" or target.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise refused
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        raise refused
    return target


@bp.post("/device/code")
def device_code() -> Response:
    """Start a device login (RFC 8628)."""
    issuer = _issuer()
    device, user = issuer.start_device(client_id=request.form.get("client_id", ""))
    verification = f"{issuer.issuer_url}/device"
    return jsonify(
        device_code=device,
        user_code=user,
        verification_uri=verification,
        verification_uri_complete=f"{verification}?{urlencode({'user_code': user})}",
        expires_in=300,
        interval=1,
    )


@bp.get("/device")
def device_approve() -> Response:
    """The page a user opens for a device login; the development user approves at once."""
    _issuer().approve_device(request.args.get("user_code", ""))
    return Response("Approved. You can return to your terminal.\n", mimetype="text/plain")


@bp.post("/token")
def token() -> Response:
    form = request.form
    issuer = _issuer()
    now = datetime.now(UTC)
    grant = form.get("grant_type")
    if grant == "authorization_code":
        id_token = issuer.redeem_code(
            code=form.get("code", ""),
            code_verifier=form.get("code_verifier", ""),
            redirect_uri=form.get("redirect_uri", ""),
            client_id=form.get("client_id", ""),
            now=now,
        )
    elif grant == _DEVICE_GRANT:
        id_token = issuer.redeem_device(
            device_code=form.get("device_code", ""), client_id=form.get("client_id", ""), now=now
        )
    else:
        raise DevIssuerError(
            f"grant_type {grant!r} is not supported", error="unsupported_grant_type"
        )
    return jsonify(
        access_token=id_token,
        id_token=id_token,
        token_type="Bearer",
        expires_in=600,
    )
