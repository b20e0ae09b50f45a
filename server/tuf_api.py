"""Serves the TUF repository under /tuf/: the metadata and targets sigstore clients fetch
(`N.root.json`, `timestamp.json`, `N.snapshot.json`, `N.targets.json`, `targets/<sha256>.<name>`).

Each request re-signs, first, whatever the repository says is due, so metadata never expires
while the server runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Blueprint, Flask, Response, abort, current_app

from keyless.server.tuf_repository import TUFNotFoundError, TUFRepository

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


@bp.get("/<path:name>")
def tuf_file(name: str) -> Response:
    repository = repository_of(current_app)
    try:
        data = repository.read(name, now=current_app.extensions[_CLOCK]())
    except TUFNotFoundError as exc:
        abort(404, description=exc.message)
    response = Response(data, mimetype="application/json")
    if name == "timestamp.json":
        # The one file that changes in place: caches must ask again every time.
        response.headers["Cache-Control"] = "no-cache"
    return response
