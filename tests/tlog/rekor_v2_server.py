"""A Rekor v2 log server in its own process, for tests that kill it.

`python -m tests.tlog.rekor_v2_server DB KEY_PEM` serves the v2 blueprint over a SQLite log
with Werkzeug on a free loopback port and prints `PORT <n>` once it is listening.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from flask import Flask
from werkzeug.serving import make_server

from keyless.tlog import rekor_v2_api
from keyless.tlog.rekor_v2 import RekorV2Service
from keyless.tlog.sqlite_storage import SQLiteStorage

ORIGIN = "crash.keyless.test"


def main(argv: list[str]) -> int:
    db, key_path = Path(argv[0]), Path(argv[1])
    key = load_pem_private_key(key_path.read_bytes(), None)
    service = RekorV2Service.open(storage=SQLiteStorage(db), private_key=key, origin=ORIGIN)
    app = Flask("rekor-v2-crash")
    rekor_v2_api.init_app(app, service)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
