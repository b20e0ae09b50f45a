"""A Rekor log server in its own process, for tests that kill it: `python -m tests.tlog.log_server
DB KEY_PEM`. It serves on a free loopback port and prints `PORT <n>` once it is listening."""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from werkzeug.serving import make_server

from tests.tlog.conftest import build_app


def main(argv: list[str]) -> int:
    db, key_path = argv
    key = load_pem_private_key(Path(key_path).read_bytes(), None)
    app, _ = build_app(Path(db), key)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
