"""`keyless witness serve`: a C2SP tlog-witness that cosigns checkpoints of the logs it knows.

The server itself is `tlog.witness` (state, checks, cosignatures) mounted by
`server.witness_app`; this module reads flags, prints the witness's key and serves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8090


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "witness",
        help="a transparency-log witness (C2SP tlog-witness, cosignature/v1)",
        description=(
            "A witness keeps the latest checkpoint it cosigned for each log it knows and "
            "cosigns a new one only with a consistency proof from it: a log cannot show it "
            "two histories. Its Ed25519 key is made (0600) in the state directory on a first "
            "run."
        ),
    )
    commands = parser.add_subparsers(dest="witness_command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve POST /add-checkpoint, GET /<origin hash>/checkpoint and GET /vkey",
        description=(
            "Serve the witness over HTTP (put a TLS proxy in front beyond loopback). Logs are "
            "given with --log-key ORIGIN VKEY, or learned on first use from the trusted root "
            "of the keyless server at each --log URL, and kept in the state directory."
        ),
    )
    serve.add_argument("--state-dir", type=Path, required=True, help="the witness's state")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    serve.add_argument(
        "--name",
        help="the witness's key name, a schema-less URL (default on a first run: "
        "<host>:<port>/witness); fixed once the key is made",
    )
    serve.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="URL",
        help="a keyless server whose signature logs to witness (keys taken on first use)",
    )
    serve.add_argument(
        "--log-key",
        action="append",
        nargs=2,
        default=[],
        metavar=("ORIGIN", "VKEY"),
        help="a log to witness: its checkpoint origin and its note verifier key",
    )
    serve.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    serve.set_defaults(run=run, parser=serve)


def run(args: argparse.Namespace) -> int:
    from keyless.server.gate.serve import bind
    from keyless.server.gate.serve import run as serve
    from keyless.server.witness_app import create_witness_app, open_witness
    from keyless.tlog.cosignature import parse_vkey
    from keyless.tlog.witness import Witness

    if not 1 <= args.port <= 65535 or args.threads < 1:
        args.parser.error("--port must be 1-65535 and --threads positive")
    host = f"[{args.host}]" if ":" in args.host else args.host
    logs = [(origin, parse_vkey(vkey)) for origin, vkey in args.log_key]
    listener = bind(args.host, args.port)
    try:
        # Opened here once, so every refusal is one line before anything is served; the
        # worker opens it again after the fork (one process holds the state at a time).
        witness = open_witness(
            args.state_dir,
            name=args.name,
            default_name=f"{host}:{args.port}/witness",
            logs=logs,
            servers=args.log,
        )
        lines = [
            f"keyless witness listening on {host}:{args.port} (state in {args.state_dir})",
            f"  verifier key: {witness.verifier_key.render()}",
        ]
        lines += [f"  witnessing:   {log.origin} (size {log.size})" for log in witness.logs()]
        witness.close()
    except BaseException:
        listener.close()
        raise
    print("\n".join(lines), file=sys.stderr, flush=True)
    serve(
        lambda: create_witness_app(Witness.open(args.state_dir)),
        listener,
        cert=None,
        key=None,
        threads=args.threads,
        name="keyless-witness",
    )
    return 0
