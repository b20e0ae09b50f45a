"""The composition of `keyless witness serve`: a witness over its state directory, the logs it
witnesses given explicitly (origin and verifier key) or learned on first use from the trusted
root of the keyless server at each `--log URL`, and its small Flask app.

A log learned from a server is kept in the witness's state: later starts do not ask again, and
a server that then names another key for the same origin is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from keyless.client.errors import ClientError, NetworkError
from keyless.client.http import json_body, new_session, request
from keyless.client.transparency.tiles import is_tile_log_key
from keyless.client.trust import TrustedRoot
from keyless.tlog import checkpoint_origin
from keyless.tlog.cosignature import VerifierKey, log_verifier_key
from keyless.tlog.errors import CheckpointError, LogStartError
from keyless.tlog.witness import Witness

_logger = logging.getLogger(__name__)


def create_witness_app(witness: Witness) -> Flask:
    """The witness's WSGI app (Flask, no other service)."""
    from keyless.tlog import witness_api

    app = Flask("keyless.witness", root_path=str(Path(__file__).parent), static_folder=None)
    witness_api.init_app(app, witness)
    return app


def open_witness(
    state_dir: Path,
    *,
    name: str | None,
    default_name: str | None = None,
    logs: Sequence[tuple[str, VerifierKey]] = (),
    servers: Sequence[str] = (),
    timeout: float = 10.0,
) -> Witness:
    """The witness in `state_dir`, witnessing `logs` and every signature log of `servers`.

    Raises:
        LogStartError: the state is refused, or a log's key disagrees with the one kept.
        NetworkError: a server to learn from cannot be reached.
    """
    witness = Witness.open(state_dir, name=name, default_name=default_name)
    try:
        for origin, key in logs:
            if witness.learn(origin, key):
                _logger.info("witnessing %s (key %s)", origin, key.render())
        for server in servers:
            for origin, key in server_logs(server, timeout=timeout):
                if witness.learn(origin, key):
                    _logger.warning(
                        "witnessing %s, its key %s taken on first use from %s",
                        origin,
                        key.render(),
                        server,
                    )
    except BaseException:
        witness.close()
        raise
    return witness


def server_logs(server: str, *, timeout: float = 10.0) -> list[tuple[str, VerifierKey]]:
    """The (origin, verifier key) of each signature log a keyless server's trusted root lists
    at its URL: a Rekor v2 log's origin is its URL without the scheme; a Rekor v1 log's is
    "<host> - <tree ID>", read from its checkpoint (verified with the listed key).

    Raises:
        NetworkError: the server cannot be reached or answers nonsense.
    """
    server = server.rstrip("/")
    session = new_session()
    _, body = request(
        session,
        "GET",
        f"{server}/api/v1/trust/trusted_root.json",
        what=f"the keyless server at {server}",
        timeout=timeout,
    )
    try:
        root = TrustedRoot.from_json(body)
    except ClientError as exc:
        raise NetworkError(f"{server} served no trusted root: {exc}") from exc
    found = []
    for key in root.tlogs.values():
        if key.base_url.rstrip("/") != server:
            continue
        if is_tile_log_key(key):
            origin = checkpoint_origin(server)
            found.append((origin, log_verifier_key(key.public_key, name=origin)))
            continue
        host = urlsplit(server).netloc
        vkey = log_verifier_key(key.public_key, name=host)
        origin = _v1_origin(session, server, vkey, timeout=timeout)
        if origin is not None:
            found.append((origin, vkey))
    if not found:
        raise LogStartError(f"the trusted root of {server} lists no signature log at {server}")
    return found


def _v1_origin(session: Any, server: str, vkey: VerifierKey, *, timeout: float) -> str | None:
    """A Rekor v1 log's origin, from its latest checkpoint signed by `vkey` (None: the key is
    not this log's current one, as a retired key is not)."""
    from keyless.tlog import parse_checkpoint_text, parse_note

    _, body = request(
        session, "GET", f"{server}/api/v1/log", what=f"the log at {server}", timeout=timeout
    )
    document = json_body(body, what=f"the log at {server}")
    note_text = document.get("signedTreeHead") if isinstance(document, dict) else None
    if not isinstance(note_text, str):
        raise NetworkError(f"the log at {server} sent no signed tree head")
    try:
        note = parse_note(note_text)
        vkey.verify_log_signature(note)
    except CheckpointError:
        return None
    return parse_checkpoint_text(note.text).origin
