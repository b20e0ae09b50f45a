"""The HTTP layer of the registry client: origins, authentication, redirects, retries, bounds.

Rules it keeps:
- HTTPS always, unless the caller allows insecure registries; then plain HTTP is used only
  when the registry does not speak TLS. Redirects are followed by hand, never to plain HTTP
  unless allowed, and credentials are never sent to another host.
- Every body read has a bound.
- A connection reset is retried once; timeouts and TLS failures are not retried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from keyless.client.oci.auth import basic_header, fetch_token, parse_challenge, read_bounded
from keyless.client.oci.credentials import CredentialSource
from keyless.client.oci.errors import (
    AuthRequiredError,
    InsecureRegistryError,
    NotFoundError,
    RegistryConnectionError,
    RegistryError,
    RegistryProtocolError,
    UnauthorizedError,
)
from keyless.client.oci.reference import Reference

USER_AGENT = "keyless-oci/0.1"
MAX_ERROR_BYTES = 64 * 1024
_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class RegistryLimits:
    """Every bound the client enforces, in one place."""

    max_manifest_bytes: int = 4 * 1024 * 1024
    max_blob_bytes: int = 32 * 1024 * 1024
    max_token_bytes: int = 1024 * 1024
    max_pages: int = 64
    max_tags: int = 100_000
    max_signatures: int = 256
    timeout_seconds: float = 30.0


class RegistryTransport:
    """Sends registry API requests; caches each registry's origin and each scope's token."""

    def __init__(
        self,
        *,
        credentials: CredentialSource | None,
        allow_insecure: bool,
        ca_bundle: str | None,
        limits: RegistryLimits,
    ) -> None:
        self.credentials = credentials
        self.allow_insecure = allow_insecure
        self.limits = limits
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        # The environment is not consulted wholesale: a ~/.netrc entry would replace our
        # Authorization header, and REQUESTS_CA_BUNDLE would widen what TLS trusts. Proxies
        # (HTTPS_PROXY, NO_PROXY) are still honoured, per request, through `proxies_for`.
        self._session.trust_env = False
        if ca_bundle is not None:
            self._session.verify = ca_bundle
        self._origins: dict[str, str] = {}
        # (registry, scope) -> (Authorization value, whether credentials were behind it).
        self._auth: dict[tuple[str, str], tuple[str, bool]] = {}

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def request(
        self,
        method: str,
        ref: Reference,
        path: str,
        *,
        scope: str,
        max_bytes: int,
        what: str,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[requests.Response, bytes]:
        """Send one API request with auth, redirects and bounds; return response and body."""
        scope_key = f"repository:{ref.repository}:{scope}"
        origin = self._origin(ref)
        url = path if "://" in path else f"{origin}/v2/{ref.repository}/{path}"
        same_origin = urlsplit(url).netloc == urlsplit(origin).netloc
        for attempt in range(2):
            request_headers = dict(headers or {})
            auth = self._auth.get((ref.registry, scope_key))
            if auth is not None and same_origin:
                request_headers["Authorization"] = auth[0]
            response, body = self._send(method, url, request_headers, data, max_bytes, what)
            if response.status_code != 401 or attempt == 1:
                break
            self._authenticate(ref, response, scope_key)
        status = response.status_code
        if status in expect:
            return response, body
        code, detail = _registry_error(body)
        if status == 401:
            auth = self._auth.get((ref.registry, scope_key))
            if auth is None or not auth[1]:
                raise _auth_required(ref, scope)
            raise UnauthorizedError(
                f"unauthorized: {ref.registry} refused access to {ref.repository} ({scope})"
                + (f": {detail}" if detail else "")
            )
        if status == 403:
            raise UnauthorizedError(
                f"denied: {ref.registry} does not allow {scope} on {ref.repository}"
                + (f": {detail}" if detail else "")
            )
        if status == 404:
            raise NotFoundError(f"{what} not found" + (f" ({code})" if code else ""))
        raise RegistryProtocolError(
            f"{ref.registry} answered HTTP {status} to {method} for {what}"
            + (f": {code} {detail}".rstrip() if code else "")
        )

    def _authenticate(self, ref: Reference, response: requests.Response, scope_key: str) -> None:
        """Answer a 401 challenge by storing a Basic or Bearer header for the scope."""
        header = response.headers.get("WWW-Authenticate")
        if not header:
            raise RegistryProtocolError(f"{ref.registry} answered 401 without a challenge")
        challenge = parse_challenge(header)
        credential = self.credentials.lookup(ref.registry) if self.credentials else None
        if challenge.scheme == "basic":
            if credential is None or credential.identity_token:
                raise _auth_required(ref, scope_key.rsplit(":", 1)[1])
            self._auth[(ref.registry, scope_key)] = (basic_header(credential), True)
        elif challenge.scheme == "bearer":
            token = fetch_token(
                self._session,
                challenge,
                scope=scope_key,
                credential=credential,
                allow_insecure=self.allow_insecure,
                timeout=self.limits.timeout_seconds,
                max_bytes=self.limits.max_token_bytes,
                registry=ref.registry,
            )
            self._auth[(ref.registry, scope_key)] = (f"Bearer {token}", credential is not None)
        else:
            raise RegistryProtocolError(
                f"{ref.registry} asks for unsupported authentication {challenge.scheme!r}"
            )

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: bytes | None,
        max_bytes: int,
        what: str,
    ) -> tuple[requests.Response, bytes]:
        """Send, follow redirects by hand, retry once on a reset, and read a bounded body."""
        origin = urlsplit(url).netloc
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._send_once(method, url, headers, data, what)
            with response:
                if response.status_code not in (301, 302, 303, 307, 308):
                    body = (
                        b""
                        if method == "HEAD"
                        else read_bounded(
                            response,
                            max_bytes if response.status_code < 300 else MAX_ERROR_BYTES,
                            what=what,
                        )
                    )
                    return response, body
                location = response.headers.get("Location")
            if not location:
                raise RegistryProtocolError(f"redirect without a Location for {what}")
            url = urljoin(url, location)
            target = urlsplit(url)
            if target.scheme != "https" and not (target.scheme == "http" and self.allow_insecure):
                raise InsecureRegistryError(f"refusing a redirect to {target.scheme}:// for {what}")
            if target.netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if response.status_code == 303:
                method, data = "GET", None
        raise RegistryProtocolError(f"too many redirects for {what}")

    def _send_once(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None, what: str
    ) -> requests.Response:
        """One request, retried once if the connection was reset or dropped."""
        host = urlsplit(url).netloc
        reset: requests.ConnectionError | None = None
        for _ in range(2):
            try:
                return self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    proxies=proxies_for(url),
                    timeout=self.limits.timeout_seconds,
                    stream=True,
                    allow_redirects=False,
                )
            except (requests.exceptions.SSLError, requests.Timeout) as exc:
                raise RegistryConnectionError(
                    f"cannot reach {host} for {what}: {_cause(exc)}"
                ) from exc
            except requests.ConnectionError as exc:
                reset = exc
            except requests.RequestException as exc:
                raise RegistryProtocolError(
                    f"bad request or answer for {what}: {str(exc)[:200]}"
                ) from exc
        raise RegistryConnectionError(
            f"cannot reach {host} for {what}: connection failed"
        ) from reset

    def _origin(self, ref: Reference) -> str:
        """`https://host` for the registry, or `http://host` when allowed and TLS is absent."""
        host = ref.api_host
        if host in self._origins:
            return self._origins[host]
        origin = f"https://{host}"
        if self.allow_insecure:
            try:
                self._session.get(
                    f"{origin}/v2/",
                    proxies=proxies_for(origin),
                    timeout=self.limits.timeout_seconds,
                ).close()
            except requests.exceptions.SSLError as exc:
                # A server that speaks TLS with a certificate we do not trust stays an error:
                # allowing insecure registries permits plain HTTP, not unverified TLS.
                if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
                    origin = f"http://{host}"
            except requests.Timeout:
                pass
            except requests.ConnectionError:
                origin = f"http://{host}"
        self._origins[host] = origin
        return origin


def proxies_for(url: str) -> dict[str, str]:
    """The proxies the environment names for `url` (`HTTPS_PROXY`, minus `NO_PROXY`)."""
    return requests.utils.get_environ_proxies(url)


def _registry_error(body: bytes) -> tuple[str, str]:
    """The first `{"errors":[{"code","message"}]}` entry of an error body, if any."""
    try:
        first = json.loads(body)["errors"][0]
        return str(first.get("code", ""))[:64], str(first.get("message", ""))[:200]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "", ""


def _auth_required(ref: Reference, scope: str) -> RegistryError:
    """The error for a registry that wants credentials nobody gave."""
    action = "push to" if "push" in scope else "pull from"
    return AuthRequiredError(
        f"authentication required: {ref.registry} needs credentials to {action} {ref.repository}",
        hint=f"log in with `docker login {ref.registry}`, or pass --registry-username and "
        "--registry-password-stdin",
    )


def _cause(exc: Exception) -> str:
    """A short description of a timeout or TLS failure."""
    return "timed out" if isinstance(exc, requests.Timeout) else "TLS failed"
