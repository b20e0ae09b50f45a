"""The witness's HTTP API (C2SP tlog-witness) as a Flask blueprint over a `tlog.witness.Witness`.

- `POST /add-checkpoint`: 200 with the cosignature lines, or the spec's refusals (400, 403,
  404, 409 with the size held as `text/x.tlog.size`, 422), each with a one-line text body.
- `GET /<origin hash>/checkpoint`: the latest checkpoint cosigned for a log (404: none).
- `GET /vkey`: this witness's verifier key, one line (keyless's own: where a log in dev mode
  takes the key on first use).

Mount with `init_app(app, witness)`.
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, Response, current_app, request

from keyless.tlog.witness import Witness
from keyless.tlog.witness_wire import (
    MAX_REQUEST_BYTES,
    SIZE_CONTENT_TYPE,
    WitnessRequestError,
    parse_add_checkpoint,
    render_cosignatures,
)

EXTENSION = "keyless.witness"
_HEX_HASH = re.compile(r"[0-9a-f]{64}\Z")

bp = Blueprint("witness", __name__)


def init_app(app: Flask, witness: Witness) -> None:
    """Register the blueprint and keep `witness` for its views."""
    app.register_blueprint(bp)
    app.extensions[EXTENSION] = witness


def _witness() -> Witness:
    witness = current_app.extensions[EXTENSION]
    if not isinstance(witness, Witness):
        raise RuntimeError("the witness blueprint was mounted without init_app")
    return witness


def _text(
    body: str, status: int = 200, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    return Response(body, status=status, content_type=content_type)


@bp.errorhandler(WitnessRequestError)
def _refused(error: WitnessRequestError) -> Response:
    if error.status == 409 and error.held is not None:
        return _text(f"{error.held}\n", 409, SIZE_CONTENT_TYPE)
    return _text(error.message + "\n", error.status)


@bp.post("/add-checkpoint")
def add_checkpoint() -> Response:
    """Cosign a checkpoint that extends the one held, by its consistency proof."""
    length = request.content_length
    if length is not None and length > MAX_REQUEST_BYTES:
        raise WitnessRequestError(400, f"request body is larger than {MAX_REQUEST_BYTES} bytes")
    body = request.stream.read(MAX_REQUEST_BYTES + 1)
    lines = _witness().add_checkpoint(parse_add_checkpoint(body))
    return _text(render_cosignatures(lines).decode())


@bp.get("/<hashed>/checkpoint")
def checkpoint(hashed: str) -> Response:
    """The latest cosigned checkpoint of the log whose origin hashes to `hashed`."""
    note = _witness().checkpoint(hashed) if _HEX_HASH.match(hashed) else None
    if note is None:
        return _text("this witness has cosigned no checkpoint of that log\n", 404)
    response = _text(note)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/vkey")
def vkey() -> Response:
    """This witness's verifier key (cosignature/v1, Ed25519)."""
    return _text(_witness().verifier_key.render() + "\n")
