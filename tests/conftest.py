"""Fixtures shared by the whole suite: the shared vectors, and real servers on loopback."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KEYLESS_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared test vectors (sigstore-conformance, trust roots, Merkle and CT data)."""
    path = SHARED / "vectors"
    if not path.is_dir():
        raise RuntimeError(f"shared vectors not found at {path}; set KEYLESS_SHARED")
    return path


@contextmanager
def serve_wsgi(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a WSGI app on a free loopback port in a thread; yields its base URL."""
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
