"""OIDC discovery and JWKS fetching, cached, bounded and refetched at a limited rate.

This is the only module in `oidc` that touches the network. Everything it returns has been
parsed and checked; token checks themselves stay pure in `oidc.tokens`.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from oidc.config import IssuerConfig, is_loopback_host
from oidc.errors import TokenError, quote
from oidc.tokens import VerificationKey, parse_jwks

log = logging.getLogger(__name__)
_NEVER = datetime.min.replace(tzinfo=UTC)


class KeySource(Protocol):
    """Where an issuer's token-signing keys come from."""

    def keys(
        self, issuer: IssuerConfig, *, kid: str | None, now: datetime
    ) -> Sequence[VerificationKey]:
        """Keys that may have signed a token with this `kid`; raises TokenError if none."""
        ...


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on discovery and JWKS fetches."""

    timeout_seconds: float = 10.0
    max_document_bytes: int = 256 * 1024
    ttl: timedelta = timedelta(minutes=10)
    # An unknown kid triggers a refetch at most this often per issuer, so a flood of tokens
    # with random kids cannot turn the CA into a traffic amplifier against the issuer.
    min_refetch_interval: timedelta = timedelta(seconds=30)
    max_cached_issuers: int = 100


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: tuple[VerificationKey, ...] = ()
    fetched_at: datetime = _NEVER
    loaded: bool = False


class JWKSCache:
    """Fetches each issuer's discovery document and JWKS, and caches the parsed keys."""

    def __init__(
        self, *, limits: FetchLimits | None = None, session: requests.Session | None = None
    ) -> None:
        self._limits = limits or FetchLimits()
        self._session = session or requests.Session()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._bundles: dict[str, str] = {}

    def keys(
        self, issuer: IssuerConfig, *, kid: str | None, now: datetime
    ) -> Sequence[VerificationKey]:
        url = issuer.url or ""
        entry = self._entry(url)
        with entry.lock:
            age = now - entry.fetched_at
            if not entry.loaded or age >= self._limits.ttl:
                if not entry.loaded and age < self._limits.min_refetch_interval:
                    raise TokenError(
                        "jwks-unavailable", "the issuer's keys could not be fetched; retry later"
                    )
                self._refresh(entry, issuer, now)
            found = _select(entry.keys, kid)
            if not found and now - entry.fetched_at >= self._limits.min_refetch_interval:
                self._refresh(entry, issuer, now)
                found = _select(entry.keys, kid)
        if not found:
            raise TokenError("kid-unknown", f"the issuer's JWKS has no key with kid {quote(kid)}")
        return found

    def _entry(self, url: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(url)
            if entry is None:
                entry = _Entry()
                self._entries[url] = entry
                while len(self._entries) > self._limits.max_cached_issuers:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(url)
            return entry

    def _refresh(self, entry: _Entry, issuer: IssuerConfig, now: datetime) -> None:
        entry.fetched_at = now
        url = issuer.url or ""
        try:
            discovery_url = f"{url.rstrip('/')}/.well-known/openid-configuration"
            discovery = self._get_json(discovery_url, issuer)
            if discovery.get("issuer") != url:
                raise ValueError(
                    f"discovery document names issuer {quote(discovery.get('issuer'))},"
                    f" not {quote(url)}"
                )
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ValueError("discovery document has no jwks_uri")
            entry.keys = parse_jwks(self._get_json(jwks_uri, issuer))
            entry.loaded = True
        except (requests.RequestException, ValueError) as exc:
            log.warning("fetching keys of issuer %s failed: %s", url, exc)
            raise TokenError("jwks-unavailable", f"cannot fetch the issuer's keys: {exc}") from exc

    def _get_json(self, url: str, issuer: IssuerConfig) -> Mapping[str, Any]:
        parts = urlsplit(url)
        insecure_ok = issuer.allow_insecure_loopback and is_loopback_host(parts.hostname)
        if parts.scheme != "https" and not (parts.scheme == "http" and insecure_ok):
            raise ValueError(f"refusing to fetch {url}: https is required")
        # Redirects are not followed: a redirect to another host is how SSRF and key
        # substitution attacks on discovery begin, and real issuers do not redirect.
        with self._session.get(
            url,
            timeout=self._limits.timeout_seconds,
            allow_redirects=False,
            stream=True,
            verify=self._verify(issuer),
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"{url} answered HTTP {response.status_code}")
            body = response.raw.read(self._limits.max_document_bytes + 1, decode_content=True)
        if len(body) > self._limits.max_document_bytes:
            raise ValueError(f"{url} is larger than {self._limits.max_document_bytes} bytes")
        document = requests.models.complexjson.loads(body)
        if not isinstance(document, dict):
            raise ValueError(f"{url} is not a JSON object")
        return document

    def _verify(self, issuer: IssuerConfig) -> bool | str:
        """The CA bundle for TLS to this issuer: the system's, plus its `ca-cert` if set."""
        if not issuer.ca_cert:
            return True
        with self._lock:
            path = self._bundles.get(issuer.ca_cert)
            if path is None:
                system = Path(requests.certs.where()).read_text()
                handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the cache)
                    "w", prefix="keyless-issuer-ca-", suffix=".pem", delete=False
                )
                with handle:
                    handle.write(system + "\n" + issuer.ca_cert)
                path = self._bundles[issuer.ca_cert] = handle.name
            return path


def _select(keys: Sequence[VerificationKey], kid: str | None) -> tuple[VerificationKey, ...]:
    if kid is None:
        return tuple(keys)
    return tuple(key for key in keys if key.kid == kid)


class StaticKeys:
    """Fixed keys for issuers served by this process (the development issuer), with a fallback.

    The development issuer lives in the same app, so fetching its JWKS over HTTP would only
    make the server call itself.
    """

    def __init__(self, jwks_by_issuer: Mapping[str, Any], fallback: KeySource) -> None:
        self._keys = {url: parse_jwks(jwks) for url, jwks in jwks_by_issuer.items()}
        self._fallback = fallback

    def keys(
        self, issuer: IssuerConfig, *, kid: str | None, now: datetime
    ) -> Sequence[VerificationKey]:
        known = self._keys.get(issuer.url or "")
        if known is None:
            return self._fallback.keys(issuer, kid=kid, now=now)
        found = _select(known, kid)
        if not found:
            raise TokenError("kid-unknown", f"the issuer's JWKS has no key with kid {quote(kid)}")
        return found
