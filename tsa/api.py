"""The timestamp authority's HTTP API, as Sigstore's timestamp-authority serves it.

- `POST /api/v1/timestamp`: a DER `TimeStampReq` (`application/timestamp-query`) or the JSON
  request (`application/json`) in, a DER `TimeStampResp` (`application/timestamp-reply`) out:
  200 when granted, 400 (413 when oversized) with a rejection `TimeStampResp` naming the
  PKIFailureInfo when refused, 415 with a JSON error for any other content type.
- `GET /api/v1/timestamp/certchain`: the PEM chain, signing certificate first, root last.

Mount with `init_app(app, authority)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, request

from keyless.tsa import metrics
from keyless.tsa.authority import TimestampAuthority, reject
from keyless.tsa.certs import pem_chain
from keyless.tsa.request import MAX_DER_REQUEST_BYTES, MAX_JSON_REQUEST_BYTES

EXTENSION = "keyless.tsa"
TIMESTAMP_PATH = "/api/v1/timestamp"
REPLY_TYPE = "application/timestamp-reply"

bp = Blueprint("tsa", __name__)


def init_app(app: Flask, authority: TimestampAuthority) -> None:
    """Register the blueprint and keep `authority` for its views."""
    app.register_blueprint(bp)
    app.extensions[EXTENSION] = authority


def _authority() -> TimestampAuthority:
    authority = current_app.extensions[EXTENSION]
    if not isinstance(authority, TimestampAuthority):
        raise RuntimeError("the TSA blueprint was mounted without init_app")
    return authority


def _reply(der: bytes, status: int) -> Response:
    response = Response(der, status=status, mimetype=REPLY_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


def _bounded_body(limit: int) -> bytes | None:
    """The request body, or None when it exceeds `limit` bytes (read no further than that)."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    data = request.stream.read(limit + 1)
    return None if len(data) > limit else data


@bp.post(TIMESTAMP_PATH)
def timestamp() -> Response:
    """Timestamp a digest: DER or JSON request in, DER `TimeStampResp` out."""
    authority = _authority()
    kind = request.mimetype
    answer: Callable[[bytes], tuple[bytes, bool]]
    if kind == "application/timestamp-query":
        limit, answer = MAX_DER_REQUEST_BYTES, authority.answer_der
    elif kind == "application/json":
        limit, answer = MAX_JSON_REQUEST_BYTES, authority.answer_json
    else:
        message = "Content-Type must be application/timestamp-query or application/json"
        body = json.dumps({"code": 415, "message": message})
        metrics.TIMESTAMPS.labels(result="refused").inc()
        return Response(body + "\n", status=415, mimetype="application/json")
    data = _bounded_body(limit)
    if data is None:
        metrics.TIMESTAMPS.labels(result="refused").inc()
        return _reply(reject("bad_data_format", f"request is larger than {limit} bytes"), 413)
    der, granted = answer(data)
    metrics.TIMESTAMPS.labels(result="granted" if granted else "rejected").inc()
    return _reply(der, 200 if granted else 400)


@bp.get(f"{TIMESTAMP_PATH}/certchain")
def certchain() -> Response:
    """The TSA chain as PEM, signing certificate first."""
    return Response(pem_chain(_authority().chain), mimetype="application/pem-certificate-chain")
