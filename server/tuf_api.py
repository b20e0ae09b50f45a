"""Serves the TUF repository under /tuf/: the metadata and targets sigstore clients fetch
(`N.root.json`, `timestamp.json`, `N.snapshot.json`, `N.targets.json`, `targets/<sha256>.<name>`).

Each request re-signs, first, whatever the repository says is due, so metadata never expires
while the server runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Blueprint, Flask, Response, current_app, jsonify

from keyless.server.tuf_repository import TUFRepository, TUFRepositoryError

bp = Blueprint("tuf", __name__, url_prefix="/tuf")
_EXTENSION = "keyless.tuf"
_CLOCK = "keyless.tuf.clock"


def init_app(
    app: Flask, repository: TUFRepository, *, clock: Callable[[], datetime] | None = None
) -> None:
    """Serve `repository`; `clock` gives the time that decides re-signing (default: now)."""
    app.extensions[_EXTENSION] = repository
    app.extensions[_CLOCK] = clock or _utc_now
    app.register_blueprint(bp)


def repository_of(app: Flask) -> TUFRepository:
    """The repository this app serves."""
    return app.extensions[_EXTENSION]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@bp.errorhandler(TUFRepositoryError)
def _tuf_error(exc: TUFRepositoryError) -> tuple[Response, int]:
    """The `{"code","message"}` body every keyless route answers with, at the error's status."""
    if exc.status >= 500:
        current_app.logger.error("TUF repository failure (%s): %s", exc.reason, exc.message)
    return jsonify(code=exc.status, message=exc.message), exc.status


@bp.get("/<path:name>")
def tuf_file(name: str) -> Response:
    data = repository_of(current_app).read(name, now=current_app.extensions[_CLOCK]())
    response = Response(data, mimetype="application/json")
    if name == "timestamp.json":
        # The one file that changes in place: caches must ask again every time.
        response.headers["Cache-Control"] = "no-cache"
    return response
