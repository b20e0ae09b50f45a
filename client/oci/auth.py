"""Registry authentication: `WWW-Authenticate` challenges and the bearer token exchange.

The token flow is Docker's (distribution's `docs/spec/auth/token.md`): on a 401 with
`Bearer realm=...,service=...,scope=...`, ask the realm for a token for the scope the operation
needs, sending Basic credentials when there are any, or an OAuth2 refresh-token POST when the
credential is an identity token. The token is then sent as `Authorization: Bearer`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from keyless.client.oci.credentials import Credential
from keyless.client.oci.errors import (
    AuthRequiredError,
    InsecureRegistryError,
    RegistryConnectionError,
    RegistryProtocolError,
    TooLargeError,
    UnauthorizedError,
)
from keyless.core.encoding import b64encode

MAX_CHALLENGE_CHARS = 4096
CLIENT_ID = "keyless"

_SCHEME_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9._-]*)(?:\s+|$)", re.ASCII)
_PARAM_RE = re.compile(
    r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^",\s]*)\s*(?:,|$)', re.ASCII
)
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,65536}", re.ASCII)


@dataclass(frozen=True)
class Challenge:
    """One parsed `WWW-Authenticate` challenge: the scheme (lowercase) and its parameters."""

    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge:
    """Parse the first challenge of a `WWW-Authenticate` header.

    Raises:
        RegistryProtocolError: the header is too long or malformed.
    """
    if len(header) > MAX_CHALLENGE_CHARS:
        raise RegistryProtocolError("WWW-Authenticate header is too long")
    match = _SCHEME_RE.match(header)
    if match is None:
        raise RegistryProtocolError("malformed WWW-Authenticate header")
    params: dict[str, str] = {}
    pos = match.end()
    while pos < len(header):
        param = _PARAM_RE.match(header, pos)
        if param is None or param.end() == pos:
            break
        value = param[2]
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(param[1].lower(), value)
        pos = param.end()
    return Challenge(match[1].lower(), params)


def basic_header(credential: Credential) -> str:
    """The `Authorization` value for HTTP Basic with `credential`."""
    raw = f"{credential.username}:{credential.password}".encode()
    return "Basic " + b64encode(raw)


def fetch_token(
    session: requests.Session,
    challenge: Challenge,
    *,
    scope: str,
    credential: Credential | None,
    allow_insecure: bool,
    timeout: float,
    max_bytes: int,
    registry: str,
) -> str:
    """Exchange credentials (or nothing) for a bearer token for `scope` at the challenge's realm.

    Raises:
        RegistryProtocolError: no realm, or a malformed token response.
        InsecureRegistryError: the realm is plain HTTP and insecure registries are not allowed.
        AuthRequiredError: the realm refused an anonymous request.
        UnauthorizedError: the realm refused the credentials.
        RegistryConnectionError: the realm could not be reached.
        TooLargeError: the token response is over `max_bytes`.
    """
    realm = challenge.params.get("realm", "")
    parts = urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise RegistryProtocolError(f"{registry} sent a bearer challenge without a valid realm")
    if parts.scheme == "http" and not allow_insecure:
        raise InsecureRegistryError(
            f"{registry} asks for tokens from a plain-HTTP realm ({parts.netloc})",
            hint="pass --allow-insecure-registry only if this registry is trusted",
        )
    params = {"scope": scope}
    if "service" in challenge.params:
        params["service"] = challenge.params["service"]
    try:
        if credential is not None and credential.identity_token:
            form = {
                **params,
                "grant_type": "refresh_token",
                "refresh_token": credential.identity_token,
                "client_id": CLIENT_ID,
            }
            response = session.post(
                realm,
                data=form,
                proxies=requests.utils.get_environ_proxies(realm),
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
        else:
            headers = {"Authorization": basic_header(credential)} if credential else {}
            response = session.get(
                realm,
                params={**params, "client_id": CLIENT_ID},
                headers=headers,
                proxies=requests.utils.get_environ_proxies(realm),
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
    except requests.RequestException as exc:
        raise RegistryConnectionError(
            f"cannot reach the token service of {registry} at {parts.netloc}"
        ) from exc
    with response:
        body = read_bounded(response, max_bytes, what=f"token response from {parts.netloc}")
    if response.status_code in (401, 403):
        if credential is None:
            raise AuthRequiredError(
                f"authentication required: {registry} needs credentials for {scope}",
                hint=f"log in with `docker login {registry}`, or pass --registry-username "
                "and --registry-password-stdin",
            )
        raise UnauthorizedError(
            f"unauthorized: the token service of {registry} refused the credentials"
            f" for {credential.username or 'the identity token'}"
        )
    if response.status_code != 200:
        raise RegistryProtocolError(
            f"the token service of {registry} answered HTTP {response.status_code}"
        )
    try:
        answer = json.loads(body)
        token = answer.get("token") or answer.get("access_token")
    except (ValueError, AttributeError) as exc:
        raise RegistryProtocolError(f"the token service of {registry} sent malformed JSON") from exc
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise RegistryProtocolError(f"the token service of {registry} sent no usable token")
    return token


def read_bounded(response: requests.Response, max_bytes: int, *, what: str) -> bytes:
    """Read a streamed body, refusing anything over `max_bytes`."""
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLargeError(f"{what} is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            total += len(chunk)
            if total > max_bytes:
                raise TooLargeError(f"{what} is larger than {max_bytes} bytes")
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise RegistryConnectionError(f"connection lost while reading {what}") from exc
    return b"".join(chunks)
