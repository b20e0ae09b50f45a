"""The composition root: one Flask app serving every keyless service on one origin.

`create_app(config)` builds the app from a validated `ServerConfig`; nothing happens at import.
`app()` is the factory gunicorn calls: `gunicorn 'keyless.server.app:app()'`, configured by the
environment (`KEYLESS_CONFIG`, or dev mode with `KEYLESS_DEV=1` and `KEYLESS_STATE_DIR`,
`KEYLESS_HOST`, `KEYLESS_PORT`; `KEYLESS_NEW_LOG=1` is `keyless serve --new-log`, and
`KEYLESS_ADOPT_EXISTING_LOG=1` is `--adopt-existing-log`). Dev mode mounts
the development issuer, and the factory cannot see where gunicorn binds, so it is never a silent
fallback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from keyless.oidc import Authenticator, JWKSCache, StaticKeys
from keyless.server.config import (
    POSTGRES_SCHEMES,
    ServerConfig,
    ServerConfigError,
    dev_config,
    load_server_config,
)
from keyless.server.paths import clean_paths
from keyless.server.published_trust import (
    check_ca_kept,
    last_trusted_root,
    lists_rekor_v2_log,
    lists_timestamp_authority,
)
from keyless.server.state import StateDir, StateDirError, read_private_key, write_private_file

DEV_ISSUER_KEY_FILE = "oidc-dev-issuer-key.pem"
REKOR_KEY_FILE = "rekor-key.pem"
REKOR_DATABASE = "rekor.sqlite"
REKOR_CHECKPOINT_FILE = "rekor-checkpoint"
CT_KEY_FILE = "ct-key.pem"
CT_DATABASE = "ct.sqlite"
CT_CHECKPOINT_FILE = "ct-checkpoint"
REKOR_V2_KEY_FILE = "rekor-v2-key.pem"
REKOR_V2_DATABASE = "rekor-v2.sqlite"
REKOR_V2_CHECKPOINT_FILE = "rekor-v2-checkpoint"
TSA_KEY_FILE = "tsa-key.pem"
TSA_CHAIN_FILE = "tsa-chain.pem"
# What --new-log's refusal calls each log, and how its old key goes under retired-trust (a
# Rekor v2 key's log ID is derived from its url, so that must be this server's public-url).
_LOG_NAMES = {
    REKOR_KEY_FILE: ("signature log", "tlog-key"),
    REKOR_V2_KEY_FILE: ("Rekor v2 log", "tlog-key with url: this server's public-url"),
    CT_KEY_FILE: ("CT log", "ctlog-key"),
}


def create_app(config: ServerConfig) -> Flask:
    """The keyless server for `config`: health, metrics, and every service on one origin.

    A first run builds the server once in a scratch state directory, moves what it made into
    place (`StateDir.generating`), and then builds it from there, as every later start does.
    """
    state = StateDir(config.state_dir)
    with state.starting():
        if state.generate_missing:
            with state.generating() as scratch:
                _close(_build(replace(config, state_dir=scratch.path), scratch))
        return _build(config, state)


def _close(app: Flask) -> None:
    """Close the logs' database connections of an app that will not serve."""
    for name in ("keyless.rekor", "keyless.rekor_v2", "keyless.ct"):
        service = app.extensions.get(name)
        if service is not None:
            service.log.close()
            witnessing = getattr(service, "witnessing", None)
            if witnessing is not None:
                witnessing.close()


def _build(config: ServerConfig, state: StateDir) -> Flask:
    now = datetime.now(UTC)
    # `keyless` is a namespace package with no folder of its own, so Flask is told its root and
    # its instance folder (the state directory) instead of looking for them; it serves no
    # static files.
    app = Flask(
        "keyless",
        root_path=str(Path(__file__).parent),
        instance_path=str(state.path.resolve()),
        static_folder=None,
    )
    # Every route answers with or without a trailing slash (server.paths).
    app.wsgi_app = clean_paths(app.wsgi_app)  # type: ignore[method-assign]
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.extensions["keyless.config"] = config
    # What clients were last given: nothing in it may be silently replaced by a new key.
    published = last_trusted_root(state)
    # The TSA first: an operator's token that refuses stops start-up before any log is made.
    timestamps = _mount_tsa(app, config, state, published, now=now)
    authenticator, oidc_url = _mount_identity(app, config, state)
    from keyless.server.witness_keys import witness_policy

    witnesses = witness_policy(config, state)
    rekor = _mount_rekor(app, config, state, witnesses)
    rekor_v2 = _mount_rekor_v2(app, config, state, published, witnesses)
    authority, ct_keys = _mount_ca(app, config, state, authenticator, published, now=now)
    _mount_trust(
        app,
        config,
        authority=authority,
        rekor=rekor,
        rekor_v2=rekor_v2,
        tsa=timestamps,
        ct_keys=ct_keys,
        oidc_url=oidc_url,
    )
    tuf = _mount_tuf(app, state, now=now)
    _add_health_and_metrics(
        app, config, state, rekor=rekor, rekor_v2=rekor_v2, tsa=timestamps, tuf=tuf
    )
    app.register_error_handler(HTTPException, _http_error)
    return app


def _mount_identity(
    app: Flask, config: ServerConfig, state: StateDir
) -> tuple[Authenticator, str | None]:
    """The authenticator over the trusted issuers, plus the development issuer in dev mode."""
    issuers, static_keys, oidc_url = config.issuers, {}, config.oidc_url
    if config.dev_issuer:
        from keyless.oidc import devissuer_api
        from keyless.oidc.devissuer import DevIssuer

        key = state.private_key(
            DEV_ISSUER_KEY_FILE,
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )
        dev = DevIssuer(base_url=config.public_url, key=key, user_email=config.dev_user_email)
        devissuer_api.init_app(app, dev, allow_proxied=config.dev_issuer_allow_proxied)
        issuers = issuers.merged(dev.trusted_issuers())
        static_keys = {dev.issuer_url: dev.jwks(), dev.github_issuer_url: dev.jwks()}
        oidc_url = oidc_url or dev.issuer_url
    authenticator = Authenticator(issuers, keys=StaticKeys(static_keys, fallback=JWKSCache()))
    app.extensions["keyless.authenticator"] = authenticator
    return authenticator, oidc_url


def _mount_rekor(app: Flask, config: ServerConfig, state: StateDir, witnesses: Any) -> Any:
    """The signature transparency log (Rekor v1 API) on SQLite or PostgreSQL, its latest
    checkpoint kept in the state directory and cosigned by its `witnesses` so that it never
    signs two histories."""
    from keyless.tlog import rekor_api
    from keyless.tlog.checkpoint_file import CheckpointFile
    from keyless.tlog.rekor import RekorService
    from keyless.tlog.sqlite_storage import SQLiteStorage

    database = config.log_database or state.file(REKOR_DATABASE)
    postgres = isinstance(database, str) and database.startswith(POSTGRES_SCHEMES)
    key_path = config.log_key or state.file(REKOR_KEY_FILE)
    checkpoint = CheckpointFile(state.file(REKOR_CHECKPOINT_FILE))
    if config.log_key:
        key = read_private_key(config.log_key)
        # An operator's key starts a tree on a first run, or with --new-log (a new key, then).
        fresh = state.generate_missing or config.new_log
    else:
        key, fresh = _log_key(
            config,
            state,
            REKOR_KEY_FILE,
            lambda: ec.generate_private_key(ec.SECP256R1()),
            checkpoint,
            None if postgres else Path(database),
        )
    if postgres:
        from keyless.tlog.postgres_storage import PostgresStorage

        storage = PostgresStorage(database, prefix="rekor_")
        label = "PostgreSQL (tables rekor_*)"
    else:
        storage = SQLiteStorage(database)
        label = str(database)
    host = urlsplit(config.public_url).netloc
    anchor = _anchor(config, checkpoint, database=label, key=key_path)
    service = RekorService.open(
        storage=storage,
        private_key=key,
        host=host,
        anchor=anchor,
        new_log=fresh,
        witnesses=witnesses,
    )
    rekor_api.init_app(app, service)
    return service


def _mount_rekor_v2(
    app: Flask,
    config: ServerConfig,
    state: StateDir,
    published: dict[str, Any] | None,
    witnesses: Any,
) -> Any:
    """The Rekor v2 log (tiles, C2SP checkpoints signed with Ed25519): a tree of its own
    beside the v1 log, in its own SQLite file or under its own PostgreSQL table prefix, with its
    own checkpoint file in the state directory."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from keyless.tlog import checkpoint_origin, rekor_v2_api
    from keyless.tlog.checkpoint_file import CheckpointFile
    from keyless.tlog.rekor_v2 import RekorV2Service
    from keyless.tlog.sqlite_storage import SQLiteStorage

    database = config.log_database
    checkpoint = CheckpointFile(state.file(REKOR_V2_CHECKPOINT_FILE))
    postgres = isinstance(database, str) and database.startswith(POSTGRES_SCHEMES)
    sqlite_file = None if postgres else state.file(REKOR_V2_DATABASE)
    key_path = config.log_v2_key or state.file(REKOR_V2_KEY_FILE)
    if config.log_v2_key:
        # Checked at load (server.config): Ed25519 or ECDSA P-256. An operator's key starts a
        # tree on a first run, or with --new-log (a new key, then), as for `log: key`.
        key = read_private_key(config.log_v2_key)
        fresh = state.generate_missing or config.new_log
    elif (
        # The v2 log came after the v1 log: a state directory from before it gets one, once.
        # Any of its key, checkpoint file or database left means it exists (a lost key
        # refuses), and so does a published trusted root listing it (all three were lost).
        not config.new_log
        and not key_path.exists()
        and checkpoint.read() is None
        and (sqlite_file is None or not sqlite_file.exists())
        and not lists_rekor_v2_log(published)
    ):
        key, fresh = ed25519.Ed25519PrivateKey.generate(), True
        write_private_file(key_path, _pkcs8(key))
    else:
        key, fresh = _log_key(
            config,
            state,
            REKOR_V2_KEY_FILE,
            ed25519.Ed25519PrivateKey.generate,
            checkpoint,
            sqlite_file,
        )
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise StateDirError(f"key file {key_path} is not an Ed25519 key")
    if postgres:
        from keyless.tlog.postgres_storage import PostgresStorage

        storage = PostgresStorage(database, prefix="rekor_v2_")
        label = "PostgreSQL (tables rekor_v2_*)"
    else:
        storage = SQLiteStorage(sqlite_file)
        label = str(sqlite_file)
    origin = checkpoint_origin(config.public_url)
    anchor = _anchor(config, checkpoint, database=label, key=key_path)
    service = RekorV2Service.open(
        storage=storage,
        private_key=key,
        origin=origin,
        anchor=anchor,
        new_log=fresh,
        witnesses=witnesses,
    )
    rekor_v2_api.init_app(app, service)
    return service


def _anchor(config: ServerConfig, checkpoint: Any, *, database: str, key: Path) -> Any:
    """Where a log keeps its last checkpoint, and whether the operator adopts a log that has
    none (`--adopt-existing-log`)."""
    from keyless.tlog.log import Anchor

    return Anchor(
        checkpoint=checkpoint,
        database=database,
        key=str(key),
        adopt_existing=config.adopt_existing_log,
    )


def _log_key(
    config: ServerConfig,
    state: StateDir,
    name: str,
    generate: Callable[[], Any],
    checkpoint: Any,
    database: Path | None,
) -> tuple[Any, bool]:
    """A log's key from the state directory, and whether it may start a tree: only a key made
    now (a first run, or --new-log once the old log's files are moved aside) ever does."""
    path = state.file(name)
    if config.new_log and not path.exists():
        _check_new_log([checkpoint.path], database, log=name)
        key = generate()
        write_private_file(path, _pkcs8(key))
        return key, True
    fresh = state.generate_missing and not path.exists()
    return state.private_key(name, generate), fresh


def _mount_tsa(
    app: Flask,
    config: ServerConfig,
    state: StateDir,
    published: dict[str, Any] | None,
    *,
    now: datetime,
) -> Any:
    """The RFC 3161 timestamp authority: from the operator's files (`tsa:`, checked at load),
    or its key and chain generated in the state directory together, once (for a state
    directory from before the TSA too); one lost, or both once published, is refused."""
    from keyless.server.state import StateDirError
    from keyless.tsa import TimestampAuthority, dev_tsa_chain, load_pem_chain, pem_chain
    from keyless.tsa import api as tsa_api

    if config.tsa is not None:
        if config.tsa.token is not None:
            from keyless.ca.pkcs11 import TokenSigner

            # Opened per process (a gunicorn worker re-initialises the module after fork); the
            # authority checks one signature against the leaf before serving.
            key: Any = TokenSigner(config.tsa.token)
        else:
            key = config.tsa.key
        authority = TimestampAuthority(key=key, chain=config.tsa.chain)
        tsa_api.init_app(app, authority)
        return authority
    key_path, chain_file = state.file(TSA_KEY_FILE), state.file(TSA_CHAIN_FILE)
    tsa_url = f"{config.public_url}/api/v1/timestamp"
    if not key_path.exists() and not chain_file.exists():
        if lists_timestamp_authority(published, tsa_url):
            raise StateDirError(
                f"the TSA key {key_path} and chain {chain_file} are missing, but the trusted "
                f"root this server last published lists its TSA ({tsa_url}): a new one "
                "would stop every timestamp it issued from verifying",
                hint="restore them from a backup of the state directory",
            )
        new_key = ec.generate_private_key(ec.SECP256R1())
        write_private_file(chain_file, pem_chain(dev_tsa_chain(new_key, now=now)))
        write_private_file(key_path, _pkcs8(new_key))
    key = state.private_key(TSA_KEY_FILE, lambda: ec.generate_private_key(ec.SECP256R1()))
    if not chain_file.exists():
        raise StateDirError(
            f"TSA chain {chain_file} is missing: a new chain would not verify the timestamps "
            "already issued",
            hint="restore it from a backup of the state directory",
        )
    authority = TimestampAuthority(key=key, chain=load_pem_chain(chain_file.read_bytes()))
    tsa_api.init_app(app, authority)
    return authority


def _mount_ca(
    app: Flask,
    config: ServerConfig,
    state: StateDir,
    authenticator: Authenticator,
    published: dict[str, Any] | None,
    *,
    now: datetime,
) -> tuple[Any, list[Any]]:
    """The CA and, unless it uses a remote CT log, the in-process CT log it submits to. The
    CA is anchored as the logs are: the one in the trusted root last published must still be
    the CA, or be under retired-trust (`keyless ca rotate` prints the entry).

    Returns the CA and the CT log keys clients must trust (with the URL and start of each).
    """
    from keyless.ca import CertificateAuthority, CTSubmitter, HTTPCTSubmitter, InProcessCTSubmitter
    from keyless.ca import api as ca_api
    from keyless.ca.config import IN_PROCESS
    from keyless.server.trust_material import LogKey
    from keyless.tlog import ct_api
    from keyless.tlog.errors import LogError

    _check_generated_ca(config, state)
    signer = config.ca.load_signer(state_dir=state.path, now=now)
    retired = [r.certificates for r in config.retired if r.kind == "ca-chain"]
    check_ca_kept(published, [signer.chain, *retired], source=str(_ca_chain_file(config, state)))
    ca_start = min(cert.not_valid_before_utc for cert in signer.chain)
    ct_key = config.ca.load_ct_log_key()
    ct: CTSubmitter
    if config.ca.ct_log == IN_PROCESS:
        ct_log = _open_ct_log(config, state, roots=[signer.chain[-1]])
        ct_api.init_app(app, ct_log)
        ct_keys = [LogKey(f"{config.public_url}/ct", ct_log.public_key, ca_start)]
        ct = InProcessCTSubmitter(ct_log, refusals=(LogError,))
    else:
        ct = HTTPCTSubmitter(config.ca.ct_log)
        # A remote log's SCTs are only checkable by clients when its key is configured.
        ct_keys = [LogKey(config.ca.ct_log, ct_key, ca_start)] if ct_key is not None else []
    authority = CertificateAuthority(
        authenticator=authenticator,
        signer=signer,
        ct=ct,
        validity=config.ca.cert_validity,
        detached=config.ca.detached,
        ct_log_key=ct_key,
    )
    ca_api.init_app(app, authority, max_request_bytes=config.ca.max_request_bytes)
    return authority, ct_keys


def _ca_chain_file(config: ServerConfig, state: StateDir) -> Path:
    """The file the CA's chain is read from at each start."""
    from keyless.ca.signers import GENERATED_CHAIN_FILE

    if config.ca.chain_path is not None:
        return config.ca.chain_path
    return (config.ca.directory or state.file("ca")) / GENERATED_CHAIN_FILE


def _open_ct_log(config: ServerConfig, state: StateDir, *, roots: list[Any]) -> Any:
    """The in-process CT log: its own SQLite file, or the `ct_` tables of the PostgreSQL
    database `log: database` names (one tree shared by every instance behind the origin), its
    latest signed tree head kept in the state directory so that it never signs two histories."""
    from keyless.tlog.checkpoint_file import CheckpointFile
    from keyless.tlog.ct_log import open_ct_log

    database = config.log_database
    postgres = isinstance(database, str) and database.startswith(POSTGRES_SCHEMES)
    sqlite_file = None if postgres else state.file(CT_DATABASE)
    checkpoint = CheckpointFile(state.file(CT_CHECKPOINT_FILE))
    key, fresh = _log_key(
        config,
        state,
        CT_KEY_FILE,
        lambda: ec.generate_private_key(ec.SECP256R1()),
        checkpoint,
        sqlite_file,
    )
    if postgres:
        from keyless.tlog.postgres_storage import PostgresStorage

        storage = PostgresStorage(database, prefix="ct_")
        label = "PostgreSQL (tables ct_*)"
    else:
        from keyless.tlog.sqlite_storage import SQLiteStorage

        storage = SQLiteStorage(sqlite_file)
        label = str(sqlite_file)
    anchor = _anchor(config, checkpoint, database=label, key=state.file(CT_KEY_FILE))
    return open_ct_log(storage=storage, private_key=key, roots=roots, anchor=anchor, new_log=fresh)


def _check_generated_ca(config: ServerConfig, state: StateDir) -> None:
    """The development CA in the state directory is created on a first run only; its key, like
    every key there, must be the owner's alone."""
    from keyless.ca.signers import GENERATED_CHAIN_FILE, GENERATED_KEY_FILE

    if config.ca.backend != "generated" or config.ca.directory is not None:
        return
    key, chain = state.file("ca") / GENERATED_KEY_FILE, state.file("ca") / GENERATED_CHAIN_FILE
    if not state.generate_missing:
        for path in (key, chain):
            if not path.exists():
                raise StateDirError(
                    f"CA file {path} is missing, and {state.path} is not a first run: a new CA "
                    "would silently replace the root clients trust",
                    hint="restore it from a backup of the state directory",
                )
    if key.exists():
        read_private_key(key)


def _mount_trust(
    app: Flask,
    config: ServerConfig,
    *,
    authority: Any,
    rekor: Any,
    rekor_v2: Any,
    tsa: Any,
    ct_keys: list[Any],
    oidc_url: str | None,
) -> None:
    """TrustedRoot, SigningConfig and ClientTrustConfig for this deployment."""
    from keyless.server import trust_api
    from keyless.server import trust_material as tm

    url = config.public_url
    chain = authority.ca_chain
    ca_start = min(cert.not_valid_before_utc for cert in chain)
    retired = {
        kind: [r for r in config.retired if r.kind == kind]
        for kind in ("ca-chain", "tlog-key", "ctlog-key", "tsa-chain")
    }
    root = tm.trusted_root(
        cas=[tm.CAChain(r.url, r.certificates, r.start, r.end) for r in retired["ca-chain"]]
        + [tm.CAChain(uri=url, certificates=chain, start=ca_start)],
        tlogs=[tm.LogKey(r.url, r.public_key, r.start, r.end) for r in retired["tlog-key"]]
        + [
            tm.LogKey(url, rekor.public_key, ca_start),
            tm.LogKey(url, rekor_v2.public_key, ca_start),
        ],
        ctlogs=[tm.LogKey(r.url, r.public_key, r.start, r.end) for r in retired["ctlog-key"]]
        + ct_keys,
        tsas=[tm.CAChain(r.url, r.certificates, r.start, r.end) for r in retired["tsa-chain"]]
        + [tm.CAChain(f"{url}/api/v1/timestamp", tsa.chain, tsa.leaf.not_valid_before_utc)],
    )
    signing = tm.signing_config(
        ca_url=url,
        log_url=url,
        v2_log_url=url,
        tsa_url=f"{url}/api/v1/timestamp",
        oidc_url=oidc_url,
        start=ca_start,
    )
    signing_v01 = tm.signing_config_v01(
        ca_url=url, log_url=url, tsa_url=f"{url}/api/v1/timestamp", oidc_url=oidc_url
    )
    trust_api.init_app(
        app,
        {
            "trusted_root": root,
            "signing_config": signing,
            "client_trust_config": tm.client_trust_config(root, signing),
            # For clients that read only the v0.1 signing config (sigstore-python 3.x).
            "signing_config.v0.1": signing_v01,
            "client_trust_config.v0.1": tm.client_trust_config(root, signing_v01),
        },
    )


def _mount_tuf(app: Flask, state: StateDir, *, now: datetime) -> Any:
    """The TUF repository under /tuf/ whose targets are the trust documents served above."""
    from keyless.server import tuf_api
    from keyless.server.tuf_repository import open_repository

    repository = open_repository(state)
    # The exact bytes the trust endpoints serve, so both routes hand out the same documents.
    rendered = app.extensions["keyless.trust"]
    repository.publish(
        {
            "trusted_root.json": rendered["trusted_root"],
            "signing_config.v0.2.json": rendered["signing_config"],
        },
        now=now,
    )
    tuf_api.init_app(app, repository)
    return repository


def _check_new_log(files: list[Path], database: Path | None, *, log: str) -> None:
    """`--new-log` makes a new key and tree only once the old log's files are moved aside
    (kept: the old log's entries still verify with its key): that is the operator's half."""
    from keyless.tlog.errors import LogStartError

    if database is not None:
        files = [*files, database, Path(f"{database}-wal")]
    leftovers = [str(path) for path in files if path.exists()]
    name, retired_kind = _LOG_NAMES[log]
    if leftovers:
        raise LogStartError(
            f"--new-log starts a new {name} with a new key, but the old "
            f"log's files are still in place: {', '.join(leftovers)}",
            hint="move them to an archive with the old key (keep them: the old log's entries "
            f"still verify), and list the old key under retired-trust as a {retired_kind}",
        )


def _pkcs8(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    """Routing and protocol errors outside any blueprint, as JSON instead of HTML."""
    status = exc.code or 500
    return jsonify(code=status, message=exc.description), status


def _add_health_and_metrics(
    app: Flask,
    config: ServerConfig,
    state: StateDir,
    *,
    rekor: Any,
    rekor_v2: Any,
    tsa: Any,
    tuf: Any,
) -> None:
    """`/metrics` (server.metrics) and `/healthz` over every log this app uses and every file
    its next restart or re-signing reads."""
    from keyless.server import health, metrics

    metrics.init_app(app)
    logs = [("signature log", rekor.log), ("Rekor v2 log", rekor_v2.log)]
    ct = app.extensions.get("keyless.ct")
    if ct is not None:
        logs.append(("CT log", ct.log))
    probes = [health.writable(state.path)]
    probes += [health.log_committing(name, log) for name, log in logs]
    probes += [health.checkpoint_verifies(name, log) for name, log in logs]
    probes += _restart_probes(app, config, state, rekor=rekor, rekor_v2=rekor_v2, tsa=tsa, tuf=tuf)
    health.init_app(app, health.Health(probes))


def _restart_probes(
    app: Flask,
    config: ServerConfig,
    state: StateDir,
    *,
    rekor: Any,
    rekor_v2: Any,
    tsa: Any,
    tuf: Any,
) -> list[Any]:
    """Probes of the files a restart reads: each key file must still hold the key this server
    publishes, each chain file the chain, and the log databases and CA key files be there."""
    from keyless.ca.signers import GENERATED_KEY_FILE
    from keyless.server import health

    def stored(label: str, path: Path) -> Any:
        # Read at this start (a moment ago), so the key on disk is the one in use.
        return health.KeyFile(label, path, read_private_key(path).public_key())

    authority = app.extensions["keyless.ca"]
    keys = [
        health.KeyFile(
            "signature log", config.log_key or state.file(REKOR_KEY_FILE), rekor.public_key
        ),
        health.KeyFile(
            "Rekor v2 log", config.log_v2_key or state.file(REKOR_V2_KEY_FILE), rekor_v2.public_key
        ),
    ]
    keys += [stored(f"TUF {role}", path) for role, path in sorted(tuf.key_files.items())]
    if config.dev_issuer:
        keys.append(stored("development issuer", state.file(DEV_ISSUER_KEY_FILE)))
    if config.tsa is None or config.tsa.key_path is not None:  # not for a key in a token
        keys.append(
            health.KeyFile(
                "timestamp authority",
                config.tsa.key_path if config.tsa else state.file(TSA_KEY_FILE),
                tsa.chain[0].public_key(),
            )
        )
    ct = app.extensions.get("keyless.ct")
    if ct is not None:
        keys.append(health.KeyFile("CT log", state.file(CT_KEY_FILE), ct.public_key))
    if config.ca.backend == "generated":
        issuing = authority.ca_chain[0].public_key()
        directory = config.ca.directory or state.file("ca")
        keys.append(health.KeyFile("CA", directory / GENERATED_KEY_FILE, issuing))
    probes = [health.key_matches(key) for key in keys]
    probes.append(health.chain_matches("CA", _ca_chain_file(config, state), authority.ca_chain))
    tsa_chain = config.tsa.chain_path if config.tsa else state.file(TSA_CHAIN_FILE)
    probes.append(health.chain_matches("timestamp authority", tsa_chain, tsa.chain))
    files = [("CA key file", config.ca.key_path), ("CA password file", config.ca.password_file)]
    if not (
        isinstance(config.log_database, str) and config.log_database.startswith(POSTGRES_SCHEMES)
    ):
        files.append(("signature log database", config.log_database or state.file(REKOR_DATABASE)))
        files.append(("Rekor v2 log database", state.file(REKOR_V2_DATABASE)))
        if ct is not None:
            files.append(("CT log database", state.file(CT_DATABASE)))
    probes += [health.readable(label, path) for label, path in files if path is not None]
    return probes


def config_from_environment() -> ServerConfig:
    """The configuration gunicorn's `app()` uses: a file from KEYLESS_CONFIG, else dev mode."""
    state_dir = os.environ.get("KEYLESS_STATE_DIR")
    port = os.environ.get("KEYLESS_PORT")
    overrides = {
        "host": os.environ.get("KEYLESS_HOST"),
        "port": int(port) if port else None,
        "state_dir": Path(state_dir) if state_dir else None,
        "new_log": os.environ.get("KEYLESS_NEW_LOG") == "1",
    }
    adopt = os.environ.get("KEYLESS_ADOPT_EXISTING_LOG") == "1"
    path = os.environ.get("KEYLESS_CONFIG")
    if path:
        return replace(load_server_config(Path(path), **overrides), adopt_existing_log=adopt)
    if os.environ.get("KEYLESS_DEV") != "1":
        # gunicorn binds wherever it is told, and the factory cannot see where: dev mode (the
        # development issuer mints tokens for anyone) must be asked for, for a loopback bind.
        raise ServerConfigError(
            "the environment",
            [
                "KEYLESS_CONFIG is not set: set it to a server.yaml, or set KEYLESS_DEV=1 for "
                "dev mode (development issuer on; only ever with gunicorn bound to loopback)"
            ],
        )
    return replace(dev_config(**overrides), adopt_existing_log=adopt)


def app() -> Flask:
    """The WSGI app factory for gunicorn: `gunicorn 'keyless.server.app:app()'`."""
    return create_app(config_from_environment())
