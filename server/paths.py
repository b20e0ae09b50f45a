"""Request paths cleaned before routing, as Rekor's router cleans them: `/api/v1/log/entries/`
is `/api/v1/log/entries`.

Clients in the field add a trailing slash (sigstore-python 3.x posts to
`/api/v1/log/entries/`, Rekor clients read `/api/v1/log/entries/?logIndex=N`). Werkzeug's own
`strict_slashes=False` is not enough: a route ending in a `path` variable would receive the
slash in its value, and a redirect instead of an answer would cost clients that do not follow
it a POST. So the path is cleaned once, in front of each app, and every route answers directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_SLASHES = re.compile("//+")


def clean_path(path: str) -> str:
    """`path` with each run of slashes made one and a trailing slash dropped (`/` stays)."""
    cleaned = _SLASHES.sub("/", path)
    if len(cleaned) > 1 and cleaned.endswith("/"):
        cleaned = cleaned[:-1]
    return cleaned


def clean_paths(app: WSGIApp) -> WSGIApp:
    """`app`, seeing every request's `PATH_INFO` through `clean_path` (the query is untouched)."""

    def cleaned(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        cleaned_path = clean_path(path)
        if cleaned_path != path:
            environ = {**environ, "PATH_INFO": cleaned_path}
        return app(environ, start_response)

    return cleaned
