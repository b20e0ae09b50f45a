"""The RFC 6962 CT log over HTTP: `/ct/v1/*`, a thin blueprint over `tlog.ct_log.CTLog`."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from keyless.core.encoding import b64decode
from keyless.tlog import metrics
from keyless.tlog.ct_log import MAX_REQUEST_BYTES, CTLog, parse_chain_request
from keyless.tlog.errors import LogError, RequestError

log = logging.getLogger(__name__)

bp = Blueprint("ct", __name__, url_prefix="/ct/v1")
EXTENSION_KEY = "keyless.ct"
_INTEGER = re.compile(r"(?:0|[1-9][0-9]{0,18})\Z")


def init_app(app: Flask, ct_log: CTLog) -> None:
    """Serve `ct_log` at `/ct/v1/` in `app`."""
    app.register_blueprint(bp)
    app.extensions[EXTENSION_KEY] = ct_log


def current_ct_log() -> CTLog:
    """The CT log of the current app."""
    log: CTLog = current_app.extensions[EXTENSION_KEY]
    return log


@bp.errorhandler(LogError)
def _log_error(exc: LogError) -> tuple[Response, int]:
    if exc.status >= 500:
        log.error("CT log failure (%s): %s", exc.reason, exc.message)
    if request.path.endswith(("/add-chain", "/add-pre-chain")):
        _submitted(exc.reason)
    return jsonify(code=exc.status, message=exc.message), exc.status


@bp.post("/add-chain")
def add_chain() -> Response:
    sct = current_ct_log().add_chain(parse_chain_request(_body()))
    _submitted("logged")
    return jsonify(sct)


@bp.post("/add-pre-chain")
def add_pre_chain() -> Response:
    sct = current_ct_log().add_pre_chain(parse_chain_request(_body()))
    _submitted("logged")
    return jsonify(sct)


@bp.get("/get-sth")
def get_sth() -> Response:
    return jsonify(current_ct_log().get_sth())


@bp.get("/get-sth-consistency")
def get_sth_consistency() -> Response:
    return jsonify(current_ct_log().get_sth_consistency(_integer("first"), _integer("second")))


@bp.get("/get-proof-by-hash")
def get_proof_by_hash() -> Response:
    raw = request.args.get("hash", "")
    try:
        leaf_hash = b64decode(raw, max_bytes=48)
    except ValueError:
        leaf_hash = b""
    return jsonify(current_ct_log().get_proof_by_hash(leaf_hash, _integer("tree_size")))


@bp.get("/get-entries")
def get_entries() -> Response:
    return jsonify(current_ct_log().get_entries(_integer("start"), _integer("end")))


@bp.get("/get-roots")
def get_roots() -> Response:
    return jsonify(current_ct_log().get_roots())


def _submitted(result: str) -> None:
    endpoint = request.path.rsplit("/", 1)[-1]
    metrics.CT_SUBMISSIONS.labels(endpoint=endpoint, result=result).inc()


def _body() -> bytes:
    """The request body, refused unread when it declares or turns out larger than the limit."""
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        raise RequestError(f"request body exceeds {MAX_REQUEST_BYTES} bytes")
    return request.stream.read(MAX_REQUEST_BYTES + 1)


def _integer(name: str) -> int:
    value = request.args.get(name)
    if value is None or not _INTEGER.match(value):
        raise RequestError(f"query parameter {name!r} must be a non-negative integer")
    return int(value)


__all__ = ["bp", "current_ct_log", "init_app"]
