"""OIDC discovery and JWKS fetching, cached, bounded and refetched at a limited rate.

This is the only module in `oidc` that touches the network. Everything it returns has been
parsed and checked; token checks themselves stay pure in `oidc.tokens`.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import certifi
import requests

from keyless import strictjson
from keyless.core.encoding import format_rfc3339
from keyless.core.errors import Reason
from keyless.oidc.config import IssuerConfig, is_loopback_host
from keyless.oidc.errors import TokenError, quote
from keyless.oidc.tokens import VerificationKey, parse_jwks

log = logging.getLogger(__name__)
_NEVER = datetime.min.replace(tzinfo=UTC)


class KeySource(Protocol):
    """Where an issuer's token-signing keys come from."""

    def keys(
        self, issuer: IssuerConfig, *, kid: str | None, now: datetime, meta: bool = False
    ) -> Sequence[VerificationKey]:
        """Keys that may have signed a token with this `kid`; raises TokenError if none.

        `meta` says the issuer URL was admitted by a meta-issuer pattern, so whoever sends
        the token chose it: fetching it is bounded harder (see `FetchLimits`).
        """
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
    # Discovery + JWKS of one issuer must finish within this wall-clock budget (a slow or
    # dripping server cannot hold a worker for timeout_seconds per read). DNS resolution is
    # outside it: getaddrinfo cannot be interrupted.
    budget_seconds: float = 5.0
    # A meta-issuer pattern lets the token's sender name the URL the CA fetches, before any
    # signature is checked. First fetches of such URLs are bounded: a failed URL is not
    # fetched again for `meta_negative_ttl`, at most `max_meta_fetches_per_minute` start per
    # minute and `max_concurrent_meta_fetches` run at once; beyond that, tokens are refused.
    meta_negative_ttl: timedelta = timedelta(minutes=5)
    max_meta_fetches_per_minute: int = 20
    max_concurrent_meta_fetches: int = 2
    max_failed_meta_issuers: int = 10_000


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
        self._failed_meta: OrderedDict[str, datetime] = OrderedDict()
        self._meta_starts: deque[datetime] = deque()
        self._meta_slots = threading.BoundedSemaphore(self._limits.max_concurrent_meta_fetches)

    def keys(
        self, issuer: IssuerConfig, *, kid: str | None, now: datetime, meta: bool = False
    ) -> Sequence[VerificationKey]:
        url = issuer.url or ""
        if meta and not self._loaded(url):
            return self._first_meta_fetch(issuer, kid=kid, now=now)
        entry = self._entry(url)
        with entry.lock:
            age = now - entry.fetched_at
            if not entry.loaded or age >= self._limits.ttl:
                if not entry.loaded and age < self._limits.min_refetch_interval:
                    raise TokenError(
                        reason=Reason.JWKS_UNAVAILABLE,
                        detail="the issuer's keys could not be fetched; retry later",
                    )
                self._refresh(entry, issuer, now)
            found = _select(entry.keys, kid)
            if not found and now - entry.fetched_at >= self._limits.min_refetch_interval:
                self._refresh(entry, issuer, now)
                found = _select(entry.keys, kid)
        if not found:
            raise TokenError(
                reason=Reason.KID_UNKNOWN,
                detail=f"the issuer's JWKS has no key with kid {quote(kid)}",
            )
        return found

    def _loaded(self, url: str) -> bool:
        with self._lock:
            entry = self._entries.get(url)
            return entry is not None and entry.loaded

    def _first_meta_fetch(
        self, issuer: IssuerConfig, *, kid: str | None, now: datetime
    ) -> Sequence[VerificationKey]:
        """The first fetch of a URL a meta-issuer pattern admitted, within the meta bounds.

        Refusals come before any cache entry is made, so a flood of invented issuers neither
        fetches nor evicts the keys of real ones.
        """
        url = issuer.url or ""
        limits = self._limits
        with self._lock:
            self._refuse_recent_failure(url, now)
            while self._meta_starts and now - self._meta_starts[0] >= timedelta(minutes=1):
                self._meta_starts.popleft()
            if len(self._meta_starts) >= limits.max_meta_fetches_per_minute:
                raise TokenError(
                    reason=Reason.ISSUER_FETCH_LIMITED,
                    detail=f"keys of {limits.max_meta_fetches_per_minute} new issuers matching a"
                    " meta-issuer pattern were fetched in the last minute; retry later",
                )
            if not self._meta_slots.acquire(blocking=False):
                raise TokenError(
                    reason=Reason.ISSUER_FETCH_LIMITED,
                    detail=f"{limits.max_concurrent_meta_fetches} keys fetches for new issuers"
                    " matching a meta-issuer pattern are in progress; retry later",
                )
            self._meta_starts.append(now)
        try:
            entry = self._entry(url)
            with entry.lock:
                if not entry.loaded:
                    with self._lock:  # it may have failed while this request waited
                        self._refuse_recent_failure(url, now)
                    try:
                        self._refresh(entry, issuer, now)
                    except TokenError:
                        self._remember_failure(url, now)
                        raise
                found = _select(entry.keys, kid)
        finally:
            self._meta_slots.release()
        if not found:
            raise TokenError(
                reason=Reason.KID_UNKNOWN,
                detail=f"the issuer's JWKS has no key with kid {quote(kid)}",
            )
        return found

    def _refuse_recent_failure(self, url: str, now: datetime) -> None:
        """Raises TokenError if fetching `url` failed within the negative-cache TTL."""
        failed_at = self._failed_meta.get(url)
        if failed_at is not None and now - failed_at < self._limits.meta_negative_ttl:
            retry_at = failed_at + self._limits.meta_negative_ttl
            raise TokenError(
                reason=Reason.JWKS_UNAVAILABLE,
                detail=f"fetching this issuer's keys failed at"
                f" {format_rfc3339(failed_at, whole_seconds=True)}; not retried"
                f" before {format_rfc3339(retry_at, whole_seconds=True)}",
            )

    def _remember_failure(self, url: str, now: datetime) -> None:
        with self._lock:
            self._failed_meta[url] = now
            self._failed_meta.move_to_end(url)
            while len(self._failed_meta) > self._limits.max_failed_meta_issuers:
                self._failed_meta.popitem(last=False)
            entry = self._entries.get(url)
            if entry is not None and not entry.loaded:
                del self._entries[url]

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
        deadline = time.monotonic() + self._limits.budget_seconds
        try:
            discovery_url = f"{url.rstrip('/')}/.well-known/openid-configuration"
            discovery = self._get_json(discovery_url, issuer, deadline)
            if discovery.get("issuer") != url:
                raise ValueError(
                    f"discovery document names issuer {quote(discovery.get('issuer'))},"
                    f" not {quote(url)}"
                )
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ValueError("discovery document has no jwks_uri")
            entry.keys = parse_jwks(self._get_json(jwks_uri, issuer, deadline))
            entry.loaded = True
        except (requests.RequestException, ValueError) as exc:
            log.warning("fetching keys of issuer %s failed: %s", url, exc)
            raise TokenError(
                reason=Reason.JWKS_UNAVAILABLE, detail=f"cannot fetch the issuer's keys: {exc}"
            ) from exc

    def _get_json(self, url: str, issuer: IssuerConfig, deadline: float) -> Mapping[str, Any]:
        parts = urlsplit(url)
        insecure_ok = issuer.allow_insecure_loopback and is_loopback_host(parts.hostname)
        if parts.scheme != "https" and not (parts.scheme == "http" and insecure_ok):
            raise ValueError(f"refusing to fetch {url}: https is required")
        limit = self._limits.max_document_bytes
        # Redirects are not followed: a redirect to another host is how SSRF and key
        # substitution attacks on discovery begin, and real issuers do not redirect.
        with self._session.get(
            url,
            timeout=min(self._limits.timeout_seconds, self._remaining(deadline, url)),
            allow_redirects=False,
            stream=True,
            verify=self._verify(issuer),
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"{url} answered HTTP {response.status_code}")
            # read1 returns after one socket read, so the budget is checked between reads
            # however slowly the server sends.
            chunks: list[bytes] = []
            size = 0
            while size <= limit:
                chunk = response.raw.read1(limit + 1 - size, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                self._remaining(deadline, url)
            body = b"".join(chunks)
        if len(body) > limit:
            raise ValueError(f"{url} is larger than {limit} bytes")
        # strictjson: a meta-issuer lets the token's sender choose who answers here, and ~10 KB
        # of nesting would otherwise raise RecursionError through every caller.
        document = strictjson.loads(body, what=url)
        if not isinstance(document, dict):
            raise ValueError(f"{url} is not a JSON object")
        return document

    def _remaining(self, deadline: float, url: str) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ValueError(
                f"fetching {url} exceeded the {self._limits.budget_seconds:g}-second budget"
            )
        return remaining

    def _verify(self, issuer: IssuerConfig) -> bool | str:
        """The CA bundle for TLS to this issuer: the system's, plus its `ca-cert` if set."""
        if not issuer.ca_cert:
            return True
        with self._lock:
            path = self._bundles.get(issuer.ca_cert)
            if path is None:
                system = Path(certifi.where()).read_text()  # what requests trusts
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
        self, issuer: IssuerConfig, *, kid: str | None, now: datetime, meta: bool = False
    ) -> Sequence[VerificationKey]:
        known = self._keys.get(issuer.url or "")
        if known is None:
            return self._fallback.keys(issuer, kid=kid, now=now, meta=meta)
        found = _select(known, kid)
        if not found:
            raise TokenError(
                reason=Reason.KID_UNKNOWN,
                detail=f"the issuer's JWKS has no key with kid {quote(kid)}",
            )
        return found
