"""Configuration of `keyless serve`: embedded dev defaults, or a validated production file.

Loading a production file never enables the development issuer unless the file says so, and
every problem in the file is reported at once, one line each, before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ca import CAConfig, CAConfigError
from cli.state import default_state_dir
from oidc import ConfigError, TrustedIssuers, load_issuers, parse_issuers
from oidc.config import is_loopback_host

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DEV_USER = "dev@keyless.test"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # Fulcio's limit
_KNOWN_KEYS = {
    "listen",
    "public-url",
    "state-dir",
    "issuers",
    "dev-issuer",
    "server",
    "max-body-bytes",
    "oidc-url",
    "ca",
    "log",
}
_LOG_KEYS = {"database", "key"}


class ServerConfigError(Exception):
    """The server configuration is invalid; one line per problem."""

    user_facing = True
    hint = None

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        self.message = f"{source} is invalid:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(self.message)


@dataclass(frozen=True)
class ServerConfig:
    """Everything `create_app` needs, already validated."""

    production: bool
    host: str
    port: int
    public_url: str
    state_dir: Path
    issuers: TrustedIssuers = field(default_factory=TrustedIssuers)
    dev_issuer: bool = False
    dev_user_email: str = DEFAULT_DEV_USER
    workers: int = 1
    threads: int = 16
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ca: CAConfig = field(default_factory=CAConfig)
    log_database: Path | None = None  # default: <state-dir>/rekor.sqlite
    log_key: Path | None = None  # default: generated in the state directory
    oidc_url: str | None = None  # the issuer clients log in at, advertised in the SigningConfig
    source: str = "embedded defaults"


def dev_config(
    *, host: str | None = None, port: int | None = None, state_dir: Path | None = None
) -> ServerConfig:
    """Dev mode: loopback, generated keys in the state directory, the development issuer on."""
    host = host or DEFAULT_HOST
    port = DEFAULT_PORT if port is None else port
    problems = _check_listen(host, port, dev_issuer=True)
    if problems:
        raise ServerConfigError("dev mode", problems)
    return ServerConfig(
        production=False,
        host=host,
        port=port,
        public_url=f"http://{_url_host(host)}:{port}",
        state_dir=state_dir or default_state_dir(),
        dev_issuer=True,
    )


def load_server_config(
    path: Path, *, host: str | None = None, port: int | None = None, state_dir: Path | None = None
) -> ServerConfig:
    """Production mode from `path`; command-line overrides win over the file.

    Raises:
        ServerConfigError: listing every problem found.
    """
    source = str(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ServerConfigError(source, [f"cannot read the file: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ServerConfigError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(document, dict):
        raise ServerConfigError(source, ["the top level must be a mapping"])
    problems = [f"unknown key {key!r}" for key in document if key not in _KNOWN_KEYS]
    listen = _mapping(document, "listen", problems)
    host = host or str(listen.get("host", DEFAULT_HOST))
    port = port if port is not None else _integer(listen, "port", DEFAULT_PORT, problems)
    dev = _mapping(document, "dev-issuer", problems)
    dev_issuer = dev.get("enabled") is True
    problems += _check_listen(host, port, dev_issuer=dev_issuer)
    public_url = str(document.get("public-url") or f"http://{_url_host(host)}:{port}").rstrip("/")
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        problems.append(f"public-url {public_url!r} must be an origin like https://host[:port]")
    oidc_url = document.get("oidc-url")
    if oidc_url is not None and not (
        isinstance(oidc_url, str) and urlsplit(oidc_url).scheme in ("http", "https")
    ):
        problems.append(f"oidc-url {oidc_url!r} must be the URL of the issuer clients log in at")
    issuers = _issuers(document.get("issuers"), path.parent, problems)
    if issuers is None and not dev_issuer:
        problems.append("issuers: no trusted issuers; set `issuers:` to a file or a list")
    server = _mapping(document, "server", problems)
    ca = _ca_config(_mapping(document, "ca", problems), path.parent, problems)
    log = _mapping(document, "log", problems)
    problems += [f"log: unknown key {key!r}" for key in log if key not in _LOG_KEYS]
    config = ServerConfig(
        production=True,
        host=host,
        port=port,
        public_url=public_url,
        state_dir=Path(state_dir or document.get("state-dir") or default_state_dir()),
        issuers=issuers or TrustedIssuers(),
        dev_issuer=dev_issuer,
        dev_user_email=str(dev.get("user", DEFAULT_DEV_USER)),
        workers=_integer(server, "workers", 1, problems),
        threads=_integer(server, "threads", 16, problems),
        max_body_bytes=_integer(document, "max-body-bytes", DEFAULT_MAX_BODY_BYTES, problems),
        ca=ca,
        log_database=path.parent / log["database"] if "database" in log else None,
        log_key=path.parent / log["key"] if "key" in log else None,
        oidc_url=oidc_url,
        source=source,
    )
    if problems:
        raise ServerConfigError(source, problems)
    return config


def _ca_config(section: Mapping[str, Any], base: Path, problems: list[str]) -> CAConfig:
    try:
        return CAConfig.from_mapping(section, base_dir=base)
    except CAConfigError as exc:
        problems.extend(f"ca: {problem}" for problem in exc.problems)
        return CAConfig()


def _issuers(value: Any, base: Path, problems: list[str]) -> TrustedIssuers | None:
    try:
        if value is None:
            return None
        if isinstance(value, str):
            return load_issuers(base / value)
        if isinstance(value, list):
            return parse_issuers(yaml.safe_dump({"issuers": value}), source="issuers")
        problems.append("issuers: must be a file path or a list of issuers")
    except ConfigError as exc:
        problems.extend(f"issuers: {problem}" for problem in exc.problems)
    return None


def _check_listen(host: str, port: int, *, dev_issuer: bool) -> list[str]:
    problems = []
    if not 1 <= port <= 65535:
        problems.append(f"port {port} is not between 1 and 65535")
    if dev_issuer and not is_loopback_host(host):
        problems.append(f"the development issuer binds to loopback only, but the host is {host!r}")
    return problems


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _mapping(document: Mapping[str, Any], key: str, problems: list[str]) -> Mapping[str, Any]:
    value = document.get(key) or {}
    if not isinstance(value, dict):
        problems.append(f"{key}: must be a mapping")
        return {}
    return value


def _integer(section: Mapping[str, Any], key: str, default: int, problems: list[str]) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{key}: must be a positive integer, got {value!r}")
        return default
    return value
