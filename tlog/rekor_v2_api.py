"""The Rekor v2 HTTP API (rekor-tiles) as a Flask blueprint over a `RekorV2Service`.

- `POST /api/v2/log/entries`: a `CreateEntryRequest` in, a `TransparencyLogEntry` out (201),
  409 with `x-log-index` for a duplicate; errors in grpc-gateway's `{"code", "message",
  "details"}` shape.
- C2SP tlog-tiles reads under `/api/v2/`: `checkpoint`, `tile/<L>/<N>[.p/<W>]`,
  `tile/entries/<N>[.p/<W>]`. A tile's bytes never change once it exists (a partial tile of
  width W is the same W hashes forever), so tiles are served as immutable for a year and a CDN
  or a plain file mirror can carry the reads; the checkpoint is not cached.

Mount with `init_app(app, service)`.
"""

from __future__ import annotations

import json

from flask import Blueprint, Flask, Response, current_app, request

from keyless.core.encoding import b64encode
from keyless.core.errors import grpc_code
from keyless.tlog import metrics, tiles
from keyless.tlog.errors import (
    BodyTooLargeError,
    DuplicateEntryError,
    LogError,
    NotFoundError,
)
from keyless.tlog.rekor_v2 import API_VERSION, KIND, RekorV2Service, V2Entry
from keyless.tlog.wire import parse_json

EXTENSION = "keyless.rekor_v2"
PREFIX = "/api/v2"
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # rekor-tiles' --max-request-body-size default
IMMUTABLE = "public, max-age=31536000, immutable"

bp = Blueprint("rekor_v2", __name__)


def init_app(app: Flask, service: RekorV2Service) -> None:
    """Register the blueprint and keep `service` for its views."""
    app.register_blueprint(bp)
    app.extensions[EXTENSION] = service


def _service() -> RekorV2Service:
    service = current_app.extensions[EXTENSION]
    if not isinstance(service, RekorV2Service):
        raise RuntimeError("the Rekor v2 blueprint was mounted without init_app")
    return service


def _error(status: int, message: str) -> Response:
    """grpc-gateway's error body: the gRPC code that goes with `status`, and the message."""
    body = json.dumps({"code": grpc_code(status), "message": message, "details": []})
    return Response(body + "\n", status=status, mimetype="application/json")


@bp.errorhandler(LogError)
def _log_error(error: LogError) -> Response:
    """The error's status, in rekor-tiles' words: every invalid argument (HTTP 400) is an
    invalid hashedrekord request."""
    status = error.status
    if status >= 500:
        current_app.logger.error("rekor v2 failure (%s): %s", error.reason, error.message)
    message = error.message
    if status == 400:
        message = f"invalid hashedrekord request: {message}"
    return _error(status, message)


def _body(limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLargeError(f"request body is larger than {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLargeError(f"request body is larger than {limit} bytes")
    return data


def entry_json(entry: V2Entry, *, key_id: bytes) -> dict[str, object]:
    """The `TransparencyLogEntry` (protobuf JSON, int64 as strings) for a logged entry."""
    return {
        "logIndex": str(entry.log_index),
        "logId": {"keyId": b64encode(key_id)},
        "kindVersion": {"kind": KIND, "version": API_VERSION},
        "integratedTime": "0",
        "inclusionPromise": None,
        "inclusionProof": {
            "logIndex": str(entry.log_index),
            "rootHash": b64encode(entry.root_hash),
            "treeSize": str(entry.tree_size),
            "hashes": [b64encode(digest) for digest in entry.hashes],
            "checkpoint": {"envelope": entry.checkpoint},
        },
        "canonicalizedBody": b64encode(entry.body),
    }


@bp.post(f"{PREFIX}/log/entries")
def create_entry() -> Response:
    """Log a hashedrekord; answers once a signed checkpoint covers it."""
    service = _service()
    proposed = parse_json(_body(MAX_REQUEST_BYTES))
    try:
        entry = service.add_entry(proposed)
    except DuplicateEntryError as exc:
        response = _error(409, f"an equivalent entry already exists at index {exc.index}")
        response.headers["x-log-index"] = str(exc.index)
        return response
    metrics.V2_NEW_ENTRIES.inc()
    body = json.dumps(entry_json(entry, key_id=service.key_id), separators=(",", ":"))
    return Response(body + "\n", status=201, mimetype="application/json")


@bp.get(f"{PREFIX}/checkpoint")
def checkpoint() -> Response:
    """The latest signed checkpoint (C2SP tlog-checkpoint)."""
    response = Response(_service().checkpoint(), mimetype="text/plain")
    response.headers["Content-Type"] = "text/plain; charset=utf-8"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get(f"{PREFIX}/tile/<path:path>")
def tile(path: str) -> Response:
    """A hash tile or an entry bundle, served from storage as immutable bytes."""
    try:
        ref = tiles.parse_tile_path(path)
    except ValueError as exc:
        raise NotFoundError(str(exc)) from exc
    data = _service().read_tile(ref)
    response = Response(data, mimetype="application/octet-stream")
    response.headers["Cache-Control"] = IMMUTABLE
    return response
