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
from keyless.tsa.errors import Rejected, RequestTooLargeError, TSAError, UnsupportedMediaTypeError
from keyless.tsa.request import (
    MAX_DER_REQUEST_BYTES,
    MAX_JSON_REQUEST_BYTES,
    TimestampRequest,
    parse_der_request,
    parse_json_request,
)

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


@bp.errorhandler(Rejected)
def _rejected(exc: Rejected) -> Response:
    """A `TimeStampResp` of status rejection naming the failure, with the error's status."""
    oversized = isinstance(exc, RequestTooLargeError)  # refused unread, not rejected
    metrics.TIMESTAMPS.labels(result="refused" if oversized else "rejected").inc()
    return _reply(reject(exc.failure, exc.message), exc.status)


@bp.errorhandler(TSAError)
def _tsa_error(exc: TSAError) -> Response:
    """Any other refusal as timestamp-authority's JSON `{"code","message"}`."""
    metrics.TIMESTAMPS.labels(result="refused").inc()
    body = json.dumps({"code": exc.status, "message": exc.message})
    return Response(body + "\n", status=exc.status, mimetype="application/json")


def _bounded_body(limit: int) -> bytes:
    """The request body, refused once it exceeds `limit` bytes (read no further than that)."""
    length = request.content_length
    if length is not None and length > limit:
        raise RequestTooLargeError(f"request is larger than {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise RequestTooLargeError(f"request is larger than {limit} bytes")
    return data


@bp.post(TIMESTAMP_PATH)
def timestamp() -> Response:
    """Timestamp a digest: DER or JSON request in, DER `TimeStampResp` out."""
    authority = _authority()
    kind = request.mimetype
    parse: Callable[[bytes], TimestampRequest]
    if kind == "application/timestamp-query":
        limit, parse = MAX_DER_REQUEST_BYTES, parse_der_request
    elif kind == "application/json":
        limit, parse = MAX_JSON_REQUEST_BYTES, parse_json_request
    else:
        raise UnsupportedMediaTypeError(
            "Content-Type must be application/timestamp-query or application/json"
        )
    der = authority.grant(parse(_bounded_body(limit)))
    metrics.TIMESTAMPS.labels(result="granted").inc()
    return _reply(der, 200)


@bp.get(f"{TIMESTAMP_PATH}/certchain")
def certchain() -> Response:
    """The TSA chain as PEM, signing certificate first."""
    return Response(pem_chain(_authority().chain), mimetype="application/pem-certificate-chain")
