"""Configuration of `keyless serve`: embedded dev defaults, or a validated production file.

Loading a production file never enables the development issuer unless the file says so, and
says it once: the YAML is read strictly (`keyless.core.strictyaml`), so a second `dev-issuer:`
block is refused, not taken. Every problem in the file is reported at once, one line each,
before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.ca import CAConfig, CAConfigError
from keyless.ca.config import token_key
from keyless.ca.pkcs11 import TokenKey
from keyless.core import strictyaml
from keyless.core.encoding import parse_rfc3339
from keyless.core.errors import ProblemsError, Reason
from keyless.core.keys import CURVE_HASHES
from keyless.oidc import ConfigError, TrustedIssuers, issuers_from_document, load_issuers
from keyless.oidc.config import is_loopback_host
from keyless.server.state import StateDirError, default_state_dir, read_private_key
from keyless.tsa.certs import MAX_CHAIN_BYTES, TSAChainError, load_pem_chain, tsa_chain_problems

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DEV_USER = "dev@keyless.test"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # Fulcio's limit
MAX_CONFIG_BYTES = 1024 * 1024
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
    "retired-trust",
    "tsa",
}
_RETIRED_KINDS = ("ca-chain", "tlog-key", "ctlog-key", "tsa-chain")
_LOG_KEYS = {"database", "key", "v2-key", "witnesses", "witness-threshold", "witness-wait-seconds"}
_TSA_KEYS = ("key", "chain")
_TSA_PKCS11_KEYS = (
    "pkcs11-module",
    "pkcs11-token-label",
    "pkcs11-slot",
    "pkcs11-key-label",
    "pkcs11-pin-env",
    "pkcs11-pin-file",
)
_TSA_CURVES = ("secp256r1", "secp384r1")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_LOG_CURVES = tuple(CURVE_HASHES)  # what a trusted root can list: PublicKeyDetails' curves


class ServerConfigError(ProblemsError):
    """The server configuration is invalid; one line per problem."""

    reason = Reason.SERVER_CONFIG_INVALID

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source} is invalid", problems)


@dataclass(frozen=True)
class RetiredTrust:
    """A CA chain, log key or TSA chain this deployment no longer uses, still trusted for what
    it signed inside [start, end], so bundles made before a rotation keep verifying."""

    kind: str  # "ca-chain", "tlog-key", "ctlog-key" or "tsa-chain"
    url: str
    start: datetime
    end: datetime
    # ca-chain: issuing CA first, root last; tsa-chain: the timeStamping leaf first, root last
    certificates: tuple[x509.Certificate, ...] = ()
    public_key: Any = None  # tlog-key / ctlog-key


@dataclass(frozen=True)
class WitnessSetting:
    """A witness the logs submit their checkpoints to: its URL, and its cosignature/v1
    verifier key (None in dev mode, `keyless serve --witness URL`: taken on first use and kept
    in the state directory)."""

    url: str
    key: str | None = None


@dataclass(frozen=True)
class TSAFiles:
    """The timestamp authority's chain and key from an operator's files, or its key in a
    PKCS#11 token; checked against the TSA rules (tsa.certs) at load (a token's key when the
    server opens it)."""

    chain_path: Path
    chain: tuple[x509.Certificate, ...]
    key_path: Path | None = None
    key: ec.EllipticCurvePrivateKey | None = None
    token: TokenKey | None = None


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
    dev_issuer_allow_proxied: bool = False  # dev-issuer: allow-proxied-requests (an opt-in)
    dev_user_email: str = DEFAULT_DEV_USER
    workers: int = 1
    threads: int = 16
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ca: CAConfig = field(default_factory=CAConfig)
    # The signature log's SQLite file (default <state-dir>/rekor.sqlite), or a postgresql:// URI
    # whose database holds every log (tables rekor_*, rekor_v2_*, ct_*), shared by several server
    # instances; the Rekor v2 and CT logs keep their own SQLite files otherwise.
    log_database: Path | str | None = None
    log_key: Path | None = None  # default: generated in the state directory
    # The Rekor v2 log's checkpoint key (Ed25519 or ECDSA P-256); default: generated there too.
    log_v2_key: Path | None = None
    tsa: TSAFiles | None = None  # default: a key and chain generated in the state directory
    oidc_url: str | None = None  # the issuer clients log in at, advertised in the SigningConfig
    retired: tuple[RetiredTrust, ...] = ()
    source: str = "embedded defaults"
    # `keyless serve --new-log`: start a new signature log where the old one was moved aside.
    new_log: bool = False
    # `keyless serve --adopt-existing-log`: a log database with no checkpoint file is this
    # log's (tlog.log.Anchor); never from a file, so it cannot stay on by accident.
    adopt_existing_log: bool = False
    # `log: witnesses:` (or `keyless serve --witness URL`): who cosigns the logs' checkpoints,
    # how many must, and how long an append waits for them (tlog.witnessing).
    witnesses: tuple[WitnessSetting, ...] = ()
    witness_threshold: int = 1
    witness_wait_seconds: float = 2.0


def dev_config(
    *,
    host: str | None = None,
    port: int | None = None,
    state_dir: Path | None = None,
    new_log: bool = False,
    witnesses: tuple[str, ...] = (),
) -> ServerConfig:
    """Dev mode: loopback, generated keys in the state directory, the development issuer on;
    `witnesses` (URLs) cosign the logs, their keys taken on first use."""
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
        new_log=new_log,
        witnesses=tuple(WitnessSetting(url.rstrip("/")) for url in witnesses),
    )


def load_server_config(
    path: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    state_dir: Path | None = None,
    new_log: bool = False,
) -> ServerConfig:
    """Production mode from `path`; command-line overrides win over the file.

    Raises:
        ServerConfigError: listing every problem found.
    """
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ServerConfigError(source, [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        # Strict: a second `dev-issuer:` block must not turn the development issuer on.
        document = strictyaml.load(data, source=source, max_bytes=MAX_CONFIG_BYTES)
    except strictyaml.StrictYAMLError as exc:
        raise ServerConfigError(source, [str(exc)]) from exc
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
    retired = _retired(document.get("retired-trust") or [], path.parent, problems)
    if document.get("issuers") is None and not dev_issuer:
        problems.append("issuers: no trusted issuers; set `issuers:` to a file or a list")
    server = _mapping(document, "server", problems)
    ca = _ca_config(_mapping(document, "ca", problems), path.parent, problems)
    log = _mapping(document, "log", problems)
    problems += [f"log: unknown key {key!r}" for key in log if key not in _LOG_KEYS]
    log_v2_key = _v2_key(log.get("v2-key"), path.parent, problems)
    witnesses = _witnesses(log.get("witnesses") or [], path.parent, problems)
    threshold = _integer(log, "witness-threshold", 1, problems)
    if witnesses and threshold > len(witnesses):
        problems.append(
            f"log: witness-threshold {threshold} is more than the {len(witnesses)} witnesses"
        )
    wait = log.get("witness-wait-seconds", 2.0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 60:
        problems.append("log: witness-wait-seconds must be a number of seconds in [0, 60]")
        wait = 2.0
    tsa = _tsa(_mapping(document, "tsa", problems), path.parent, problems)
    config = ServerConfig(
        production=True,
        host=host,
        port=port,
        public_url=public_url,
        state_dir=Path(state_dir or document.get("state-dir") or default_state_dir()),
        issuers=issuers or TrustedIssuers(),
        dev_issuer=dev_issuer,
        dev_issuer_allow_proxied=dev.get("allow-proxied-requests") is True,
        dev_user_email=str(dev.get("user", DEFAULT_DEV_USER)),
        workers=_integer(server, "workers", 1, problems),
        threads=_integer(server, "threads", 16, problems),
        max_body_bytes=_integer(document, "max-body-bytes", DEFAULT_MAX_BODY_BYTES, problems),
        ca=ca,
        log_database=_log_database(log.get("database"), path.parent, problems),
        log_key=path.parent / log["key"] if "key" in log else None,
        log_v2_key=log_v2_key,
        witnesses=witnesses,
        witness_threshold=threshold,
        witness_wait_seconds=float(wait),
        tsa=tsa,
        oidc_url=oidc_url,
        retired=retired,
        new_log=new_log,
        source=source,
    )
    if problems:
        raise ServerConfigError(source, problems)
    return config


def _log_database(value: Any, base: Path, problems: list[str]) -> Path | str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.append("log: database must be a SQLite file path or a postgresql:// URI")
        return None
    if value.startswith(POSTGRES_SCHEMES):
        try:
            import psycopg  # noqa: F401 (checked here so start-up names the missing package)
        except ImportError:
            problems.append(
                "log: a postgresql:// database needs psycopg: pip install 'keyless[postgres]'"
            )
        return value
    return base / value


def _retired(entries: Any, base: Path, problems: list[str]) -> tuple[RetiredTrust, ...]:
    if not isinstance(entries, list):
        problems.append("retired-trust: must be a list")
        return ()
    retired = []
    for n, entry in enumerate(entries, 1):
        where = f"retired-trust[{n}]"
        kinds = [kind for kind in _RETIRED_KINDS if isinstance(entry, dict) and kind in entry]
        if len(kinds) != 1:
            problems.append(f"{where}: set exactly one of {', '.join(_RETIRED_KINDS)}")
            continue
        unknown = set(entry) - {kinds[0], "url", "start", "end"}
        problems.extend(f"{where}: unknown key {key!r}" for key in sorted(unknown))
        start, end = (_timestamp(entry, key, where, problems) for key in ("start", "end"))
        url = entry.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            problems.append(f"{where}: url must be the http(s) URL the retired service had")
            continue
        if start is None or end is None:
            continue
        if end <= start:
            problems.append(f"{where}: end must be after start")
            continue
        try:
            data = (base / str(entry[kinds[0]])).read_bytes()
            if kinds[0] == "ca-chain":
                chain = tuple(x509.load_pem_x509_certificates(data))
                retired.append(RetiredTrust(kinds[0], url, start, end, certificates=chain))
            elif kinds[0] == "tsa-chain":
                chain = tuple(load_pem_chain(data))
                bad = tsa_chain_problems(chain)
                problems.extend(f"{where}: {problem}" for problem in bad)
                if not bad:
                    retired.append(RetiredTrust(kinds[0], url, start, end, certificates=chain))
            else:
                key = serialization.load_pem_public_key(data)
                bad = _retired_key_problems(kinds[0], key, url)
                problems.extend(f"{where}: {problem}" for problem in bad)
                if not bad:
                    retired.append(RetiredTrust(kinds[0], url, start, end, public_key=key))
        except (OSError, ValueError) as exc:
            problems.append(f"{where}: cannot load {entry[kinds[0]]}: {exc}")
        except TSAChainError as exc:
            problems.append(f"{where}: {exc.message}")
    return tuple(retired)


def _retired_key_problems(kind: str, key: Any, url: str) -> list[str]:
    """A retired log key must be one the trusted root can list, and a Rekor v2 (Ed25519)
    key's URL must give back the log's origin: its log ID, the C2SP key ID, is computed under
    that origin, so any other URL lists it under an ID no bundle of the old log carries."""
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _LOG_CURVES:
        return []
    if kind == "tlog-key" and isinstance(key, ed25519.Ed25519PublicKey):
        parts = urlsplit(url)
        if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
            return [
                f"url {url!r} must be the public-url the old deployment had (https://host[:port]"
                "): a Rekor v2 log's ID is its Ed25519 key's C2SP key ID under that origin"
            ]
        return []
    allowed = "ECDSA (P-256, P-384, P-521)" + (" or Ed25519" if kind == "tlog-key" else "")
    return [f"a {kind} must be an {allowed} public key, not {type(key).__name__}"]


def _witnesses(entries: Any, base: Path, problems: list[str]) -> tuple[WitnessSetting, ...]:
    """`log: witnesses:`: each a `url` and a `key`, the witness's cosignature/v1 verifier key
    (a vkey string, or a file holding one)."""
    from keyless.tlog.cosignature import COSIGNATURE_V1, parse_vkey
    from keyless.tlog.errors import CheckpointError

    if not isinstance(entries, list):
        problems.append("log: witnesses must be a list of {url, key}")
        return ()
    found = []
    for n, entry in enumerate(entries, 1):
        where = f"log: witnesses[{n}]"
        if not isinstance(entry, dict) or set(entry) != {"url", "key"}:
            problems.append(f"{where}: give exactly url and key")
            continue
        url, key = entry["url"], entry["key"]
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            problems.append(f"{where}: url must be the witness's http(s) URL")
            continue
        text = str(key)
        if "+" not in text:
            try:
                text = (base / text).read_text().strip()
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{where}: cannot read the key file {key}: {exc}")
                continue
        try:
            parsed = parse_vkey(text)
        except CheckpointError as exc:
            problems.append(f"{where}: key: {exc.message}")
            continue
        if parsed.kind != COSIGNATURE_V1:
            problems.append(f"{where}: key is not a witness's cosignature/v1 (type 0x04) key")
            continue
        found.append(WitnessSetting(url.rstrip("/"), text))
    return tuple(found)


def _v2_key(value: Any, base: Path, problems: list[str]) -> Path | None:
    """`log: v2-key`: the Rekor v2 log's checkpoint key, Ed25519 or ECDSA P-256 (what
    tlog.rekor_v2 signs checkpoints with)."""
    if value is None:
        return None
    path = base / str(value)
    try:
        key = read_private_key(path)
    except StateDirError as exc:
        problems.append(f"log: v2-key: {exc.message}")
        return None
    if not (
        isinstance(key, ed25519.Ed25519PrivateKey)
        or (isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1")
    ):
        problems.append(
            f"log: v2-key: {path} is not an Ed25519 or ECDSA P-256 key "
            "(the key types Rekor v2 checkpoints are signed with)"
        )
        return None
    return path


def _tsa(section: Mapping[str, Any], base: Path, problems: list[str]) -> TSAFiles | None:
    """`tsa:`: the timestamp authority's chain, and its key from a file (`key`) or a PKCS#11
    token (`pkcs11-*`, as in `ca:`). Every TSA rule is checked now, one line per problem (a
    bad chain would only show at the first verification); a token's key when it is opened."""
    if not section:
        return None
    known = (*_TSA_KEYS, *_TSA_PKCS11_KEYS)
    problems.extend(f"tsa: unknown key {key!r}" for key in section if key not in known)
    in_token = any(key in section for key in _TSA_PKCS11_KEYS)
    before = len(problems)
    if in_token and "key" in section:
        problems.append("tsa: set key (a file) or the pkcs11-* keys (a token), not both")
    if not isinstance(section.get("chain"), str):
        problems.append("tsa: chain must be a file path")
    if not in_token and not isinstance(section.get("key"), str):
        problems.append("tsa: key must be a file path (or set the pkcs11-* keys)")
    if len(problems) > before:
        return None
    token, key, key_path = None, None, None
    if in_token:
        token_problems: list[str] = []

        def path(name: str) -> Path | None:
            value = section.get(name)
            return base / value if isinstance(value, str) and value else None

        token = token_key(section, path, token_problems)
        problems.extend(f"tsa: {problem}" for problem in token_problems)
    else:
        key_path = base / section["key"]
        try:
            loaded = read_private_key(key_path)
        except StateDirError as exc:
            problems.append(f"tsa: key: {exc.message}")
        else:
            if isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name in _TSA_CURVES:
                key = loaded
            else:
                problems.append(f"tsa: key: {key_path} is not an ECDSA P-256 or P-384 key")
    chain_path = base / section["chain"]
    try:
        if chain_path.stat().st_size > MAX_CHAIN_BYTES:
            raise TSAChainError(f"TSA chain file is larger than {MAX_CHAIN_BYTES} bytes")
        chain = tuple(load_pem_chain(chain_path.read_bytes()))
    except OSError as exc:
        problems.append(f"tsa: chain: cannot read {chain_path}: {exc.strerror}")
        return None
    except TSAChainError as exc:
        problems.append(f"tsa: chain: {exc.message}")
        return None
    public = key.public_key() if key is not None else None
    problems.extend(
        f"tsa: {problem}"
        for problem in tsa_chain_problems(chain, key=public, now=datetime.now(UTC))
    )
    if len(problems) > before or (key is None and token is None):
        return None
    return TSAFiles(chain_path=chain_path, chain=chain, key_path=key_path, key=key, token=token)


def _timestamp(entry: dict, key: str, where: str, problems: list[str]) -> datetime | None:
    value = entry.get(key)
    if isinstance(value, str):  # strictyaml leaves unquoted timestamps strings too
        try:
            moment = parse_rfc3339(value)
        except ValueError:
            moment = None
    else:
        moment = None
    if moment is None or moment.tzinfo is None:
        problems.append(f"{where}: {key} must be a UTC time like 2026-01-31T00:00:00Z")
        return None
    return moment.astimezone(UTC)


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
            return issuers_from_document({"issuers": value}, source="")  # problems prefixed below
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
