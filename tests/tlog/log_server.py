"""A Rekor log server in its own process, for tests that kill it or run several workers.

`python -m tests.tlog.log_server DB KEY_PEM` serves with Werkzeug on a free loopback port and
prints `PORT <n>` once it is listening. `... DB KEY_PEM --gunicorn PORT WORKERS` serves under
gunicorn (gthread, 4 threads per worker), every worker opening the same SQLite file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from werkzeug.serving import make_server

from tests.tlog.conftest import build_app


def _gunicorn(db: Path, key_path: Path, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class _LogServer(BaseApplication):
        def load_config(self) -> None:
            settings = {
                "bind": f"127.0.0.1:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": 4,
                "loglevel": "warning",
                "control_socket_disable": True,
            }
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            # Runs in each worker after the fork: every worker opens its own connections.
            key = load_pem_private_key(key_path.read_bytes(), None)
            return build_app(db, key)[0]

    _LogServer().run()


def main(argv: list[str]) -> int:
    db, key_path = Path(argv[0]), Path(argv[1])
    if argv[2:3] == ["--gunicorn"]:
        _gunicorn(db, key_path, int(argv[3]), int(argv[4]))
        return 0
    key = load_pem_private_key(key_path.read_bytes(), None)
    app, _ = build_app(db, key)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
