"""Which CA, log, TSA and OIDC issuer a client uses, from a Sigstore SigningConfig.

The log is chosen as sigstore-python 4.x chooses it: among the current `rekorTlogUrls` of a
major API version this client speaks (1 or 2), the highest version, unless the caller asks for
one. A v2 log gives no signed time, so choosing one needs a current TSA in `tsaUrls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from sigstore_models.trustroot.v1 import ClientTrustConfig, Service, SigningConfig

from keyless.client.errors import ClientError
from keyless.client.files import read_bounded
from keyless.client.trust import ServerTrust
from keyless.client.trust.tuf import SIGNING_CONFIG_TARGET

MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Services:
    """The endpoints one signing operation talks to."""

    ca_url: str
    log_url: str
    oidc_url: str | None
    log_version: int = 1
    tsa_url: str | None = None  # the full URL, set with a v2 log


def from_server_trust(trust: ServerTrust, server: str, *, rekor_version: int | None) -> Services:
    """The services a keyless server advertises in its SigningConfig, as its TUF repository
    served and verified it (`client.trust.tuf.fetch_server_trust`); the plain trust endpoint is not
    read, so a front end that alters it changes nothing."""
    return from_signing_config_bytes(
        trust.signing_config,
        source=f"the signing config of {server.rstrip('/')} (TUF target {SIGNING_CONFIG_TARGET})",
        rekor_version=rekor_version,
    )


def from_signing_config(path: Path, *, rekor_version: int | None = None) -> Services:
    return from_signing_config_bytes(
        read_bounded(path, limit=MAX_CONFIG_BYTES), source=str(path), rekor_version=rekor_version
    )


def from_signing_config_bytes(
    data: bytes, *, source: str, rekor_version: int | None = None
) -> Services:
    return _select(_parse(SigningConfig, data, source), rekor_version)


def from_trust_config(path: Path, *, rekor_version: int | None = None) -> Services:
    return _select(
        _parse(
            ClientTrustConfig, read_bounded(path, limit=MAX_CONFIG_BYTES), str(path)
        ).signing_config,
        rekor_version,
    )


def log_urls(data: bytes, *, source: str, version: int) -> list[str]:
    """The base URLs of every log of major API `version` a signing config lists, current or
    not: a monitor or auditor still reads a log that no longer takes entries."""
    config = _parse(SigningConfig, data, source)
    urls = (s.url.rstrip("/") for s in config.rekor_tlog_urls if s.major_api_version == version)
    return list(dict.fromkeys(urls))


def _parse(model, data: bytes, source: str):  # type: ignore[no-untyped-def]
    # Always from JSON: sigstore-models is strict in Python mode and refuses wire spellings.
    try:
        return model.from_json(data)
    except ValidationError as exc:
        raise ClientError(
            f"{source} is not a valid {model.__name__}: {exc.errors()[0]['msg']}"
        ) from exc


def _select(config: SigningConfig, rekor_version: int | None) -> Services:
    now = datetime.now(UTC)
    ca = _first(config.ca_urls, now, "caUrls")
    log_version = rekor_version or _highest_log_version(config.rekor_tlog_urls, now)
    log = _first(config.rekor_tlog_urls, now, "rekorTlogUrls", version=log_version)
    # A TSA's full URL is kept as given: it is the endpoint itself, not an origin.
    tsa = None
    if log_version == 2:
        if not any(s.major_api_version == 1 and _current(s, now) for s in config.tsa_urls):
            raise ClientError(
                "the signing config offers a Rekor v2 log but no current timestamp authority "
                "in tsaUrls (a v2 entry has no signed time without one)",
                hint="use --rekor-version 1",
            )
        tsa = _first(config.tsa_urls, now, "tsaUrls")
    oidc = [s for s in config.oidc_urls if _current(s, now)]
    return Services(
        ca_url=ca.rstrip("/"),
        log_url=log.rstrip("/"),
        oidc_url=oidc[0].url.rstrip("/") if oidc else None,
        log_version=log_version,
        tsa_url=tsa,
    )


def _highest_log_version(services: list[Service], now: datetime) -> int:
    versions = [s.major_api_version for s in services if _current(s, now)]
    return max((v for v in versions if v in (1, 2)), default=1)


def _first(services: list[Service], now: datetime, field: str, *, version: int = 1) -> str:
    # Fulcio's v2 JSON API and the TSA are majorApiVersion 1; logs are Rekor v1 or v2.
    usable = [s for s in services if s.major_api_version == version and _current(s, now)]
    if not usable:
        raise ClientError(f"the signing config lists no current v{version} service in {field}")
    return usable[0].url


def _current(service: Service, now: datetime) -> bool:
    valid = service.valid_for
    return valid.start <= now and (valid.end is None or now <= valid.end)  # closed range
