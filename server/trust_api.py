"""Serves this deployment's trust material: GET /api/v1/trust/{trusted_root,signing_config,
client_trust_config}.json, and the last two with a v0.1 signing config
({signing_config,client_trust_config}.v0.1.json). The documents are built once at start-up; keys
don't change while the process runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app

bp = Blueprint("trust", __name__, url_prefix="/api/v1/trust")
_EXTENSION = "keyless.trust"
DOCUMENTS = (
    "trusted_root",
    "signing_config",
    "client_trust_config",
    "signing_config.v0.1",
    "client_trust_config.v0.1",
)


def init_app(app: Flask, documents: Mapping[str, Mapping[str, Any]]) -> None:
    """Serve `documents` (name -> JSON document), each rendered once."""
    app.extensions[_EXTENSION] = {
        name: json.dumps(document, indent=2).encode() for name, document in documents.items()
    }
    app.register_blueprint(bp)


@bp.get("/<name>.json")
def document(name: str) -> Response:
    rendered = current_app.extensions[_EXTENSION].get(name)
    if rendered is None:
        abort(404, description=f"no trust document named {name!r}")
    return Response(rendered, mimetype="application/json")
