"""Which CA, log and OIDC issuer a client uses: a keyless origin, or a Sigstore SigningConfig."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from sigstore_models.trustroot.v1 import ClientTrustConfig, Service, SigningConfig

from cli.errors import ClientError
from cli.files import read_bounded
from cli.http import new_session, request

SIGNING_CONFIG_PATH = "/api/v1/trust/signing_config.json"
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Services:
    """The endpoints one signing operation talks to."""

    ca_url: str
    log_url: str
    oidc_url: str | None


def from_server(server: str) -> Services:
    """A keyless origin serves the CA and the log itself; its issuer comes from its config."""
    server = server.rstrip("/")
    return Services(ca_url=server, log_url=server, oidc_url=None)


def server_signing_config(server: str) -> Services:
    """The services a keyless server advertises in its SigningConfig."""
    url = server.rstrip("/") + SIGNING_CONFIG_PATH
    response, body = request(new_session(), "GET", url, what="the keyless server")
    if response.status_code != 200:
        raise ClientError(f"{url} answered HTTP {response.status_code}")
    return _select(_parse(SigningConfig, body, url))


def from_signing_config(path: Path) -> Services:
    return from_signing_config_bytes(read_bounded(path, limit=MAX_CONFIG_BYTES), source=str(path))


def from_signing_config_bytes(data: bytes, *, source: str) -> Services:
    return _select(_parse(SigningConfig, data, source))


def from_trust_config(path: Path) -> Services:
    return _select(
        _parse(
            ClientTrustConfig, read_bounded(path, limit=MAX_CONFIG_BYTES), str(path)
        ).signing_config
    )


def _parse(model, data: bytes, source: str):  # type: ignore[no-untyped-def]
    # Always from JSON: sigstore-models is strict in Python mode and refuses wire spellings.
    try:
        return model.from_json(data)
    except ValidationError as exc:
        raise ClientError(
            f"{source} is not a valid {model.__name__}: {exc.errors()[0]['msg']}"
        ) from exc


def _select(config: SigningConfig) -> Services:
    now = datetime.now(UTC)
    ca = _first(config.ca_urls, now, "caUrls")
    log = _first(config.rekor_tlog_urls, now, "rekorTlogUrls")
    oidc = [s for s in config.oidc_urls if _current(s, now)]
    return Services(ca_url=ca, log_url=log, oidc_url=oidc[0].url.rstrip("/") if oidc else None)


def _first(services: list[Service], now: datetime, field: str) -> str:
    # Only v1 APIs are spoken here: Fulcio v2 JSON is majorApiVersion 1, Rekor v1 likewise.
    usable = [s for s in services if s.major_api_version == 1 and _current(s, now)]
    if not usable:
        raise ClientError(f"the signing config lists no current v1 service in {field}")
    return usable[0].url.rstrip("/")


def _current(service: Service, now: datetime) -> bool:
    valid = service.valid_for
    return valid.start <= now and (valid.end is None or now <= valid.end)  # closed range
