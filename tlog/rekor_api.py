"""The Rekor v1 HTTP API as a Flask blueprint over a `RekorService`.

Mount with `init_app(app, service)`. Views are thin: bounded body -> `tlog.wire` parse ->
service call -> `tlog.wire` render. Errors use Rekor's `{"code", "message"}` body.
"""

from __future__ import annotations

import json

from flask import Blueprint, Flask, Response, current_app, request

from keyless.tlog import metrics
from keyless.tlog.errors import (
    BodyTooLargeError,
    DuplicateEntryError,
    EntryError,
    LogError,
    NotFoundError,
)
from keyless.tlog.rekor import RekorService
from keyless.tlog.wire import (
    MAX_ENTRY_REQUEST_BYTES,
    MAX_RETRIEVE_REQUEST_BYTES,
    MAX_SEARCH_REQUEST_BYTES,
    entry_json,
    error_json,
    parse_int_param,
    parse_json,
    parse_retrieve,
    parse_search,
)

EXTENSION = "keyless.rekor"
ENTRIES_PATH = "/api/v1/log/entries"

bp = Blueprint("rekor", __name__)


def init_app(app: Flask, service: RekorService) -> None:
    """Register the blueprint and keep `service` for its views."""
    app.register_blueprint(bp)
    app.extensions[EXTENSION] = service


def rekor_service() -> RekorService:
    """The service `init_app` stored on the current app."""
    service = current_app.extensions[EXTENSION]
    if not isinstance(service, RekorService):
        raise RuntimeError("the Rekor blueprint was mounted without init_app")
    return service


def _body(limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLargeError(f"request body is larger than {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLargeError(f"request body is larger than {limit} bytes")
    return data


def _json(value: object, status: int = 200) -> Response:
    body = json.dumps(value, separators=(",", ":"))
    return Response(body + "\n", status=status, mimetype="application/json")


@bp.errorhandler(LogError)
def _log_error(error: LogError) -> Response:
    """Rekor's `{"code","message"}` with the error's status, in Rekor's words: a missing entry
    is an empty 404, and a refused entry says it could not be processed."""
    status = error.status
    if status >= 500:
        current_app.logger.error("tlog failure (%s): %s", error.reason, error.message)
    if status == 404:
        return Response(status=404)
    message = error.message
    if isinstance(error, EntryError):
        message = f"error processing entry: {message}"
    return _json(error_json(status, message), status)


@bp.post(ENTRIES_PATH)
def create_entry() -> Response:
    """Validate and log a proposed entry; 201 with the entry, 409 for a duplicate."""
    service = rekor_service()
    proposed = parse_json(_body(MAX_ENTRY_REQUEST_BYTES))
    try:
        entry = service.add_entry(proposed)
    except DuplicateEntryError as exc:
        entry_id = service.duplicate_entry_id(exc)
        message = f"an equivalent entry already exists in the transparency log with UUID {entry_id}"
        response = _json(error_json(409, message), 409)
        response.headers["Location"] = f"{ENTRIES_PATH}/{entry_id}"
        return response
    metrics.NEW_ENTRIES.inc()
    response = _json(entry_json(entry), 201)
    response.headers["ETag"] = entry.entry_id
    response.headers["Location"] = f"{ENTRIES_PATH}/{entry.entry_id}"
    return response


@bp.get(ENTRIES_PATH)
def get_entry_by_index() -> Response:
    """The entry at `?logIndex=`, with a fresh proof against the latest checkpoint."""
    index = parse_int_param(request.args.get("logIndex"), "logIndex")
    return _json(entry_json(rekor_service().entry_at(index)))


@bp.get(f"{ENTRIES_PATH}/<entry_id>")
def get_entry_by_id(entry_id: str) -> Response:
    """The entry with this UUID or entry ID."""
    return _json(entry_json(rekor_service().entry_by_id(entry_id)))


@bp.post(f"{ENTRIES_PATH}/retrieve")
def retrieve_entries() -> Response:
    """Entries by UUID, index or content (at most 10 items); missing ones are skipped."""
    query = parse_retrieve(parse_json(_body(MAX_RETRIEVE_REQUEST_BYTES)))
    entries = rekor_service().retrieve(
        entry_ids=query.entry_ids, indexes=query.indexes, entries=query.entries
    )
    return _json([entry_json(entry) for entry in entries])


@bp.post("/api/v1/index/retrieve")
def search_index() -> Response:
    """Entry IDs by artifact hash, public key or email."""
    query = parse_search(parse_json(_body(MAX_SEARCH_REQUEST_BYTES)))
    return _json(rekor_service().search(query))


@bp.get("/api/v1/log")
def log_info() -> Response:
    """Tree size, root hash, signed tree head and tree ID."""
    info = rekor_service().log_info()
    return _json(
        {
            "rootHash": info.root_hash.hex(),
            "treeSize": info.tree_size,
            "signedTreeHead": info.signed_tree_head,
            "treeID": str(info.tree_id),
        }
    )


@bp.get("/api/v1/log/publicKey")
def public_key() -> Response:
    """The log's public key as PEM."""
    service = rekor_service()
    tree_id = request.args.get("treeID")
    if tree_id is not None and tree_id != str(service.tree_id):
        raise NotFoundError(f"no tree {tree_id[:24]}")
    return Response(service.public_key_pem, mimetype="application/x-pem-file")


@bp.get("/api/v1/log/proof")
def consistency_proof() -> Response:
    """The consistency proof from `firstSize` (default 1) to `lastSize`."""
    first = parse_int_param(request.args.get("firstSize"), "firstSize", default=1)
    last = parse_int_param(request.args.get("lastSize"), "lastSize")
    root, hashes = rekor_service().consistency_proof(first, last)
    return _json({"rootHash": root.hex(), "hashes": [h.hex() for h in hashes]})
