"""`keyless trust`: save a keyless server's trust material for clients that take files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli.main import CLIError

DOCUMENTS = {
    "trusted-root": "trusted_root",
    "signing-config": "signing_config",
    "client-trust-config": "client_trust_config",
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trust",
        help="save a server's trusted root, signing config or client trust config",
        description=(
            "Fetch one of a keyless server's trust documents, check it parses as Sigstore's "
            "format, and save it: trusted-root for `keyless verify --trusted-root` and cosign "
            "`--trusted-root`, client-trust-config for sigstore-python `--trust-config`."
        ),
    )
    parser.add_argument("document", nargs="?", default="trusted-root", choices=sorted(DOCUMENTS))
    parser.add_argument("--server", required=True, help="the keyless server's origin")
    parser.add_argument("-o", "--output", required=True, help="file to write, or - for stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from sigstore_models.trustroot.v1 import ClientTrustConfig, SigningConfig, TrustedRoot

    from cli.http import new_session, request

    name = DOCUMENTS[args.document]
    url = f"{args.server.rstrip('/')}/api/v1/trust/{name}.json"
    response, body = request(new_session(), "GET", url, what="the keyless server")
    if response.status_code != 200:
        raise CLIError(f"{url} answered HTTP {response.status_code}")
    model = {
        "trusted_root": TrustedRoot,
        "signing_config": SigningConfig,
        "client_trust_config": ClientTrustConfig,
    }[name]
    try:
        model.from_json(body)
    except ValidationError as exc:
        raise CLIError(f"{url} is not a valid {model.__name__}") from exc
    if args.output == "-":
        sys.stdout.buffer.write(body)
        return 0
    path = Path(args.output)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(body)
        temporary.replace(path)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror}") from exc
    print(f"saved the {args.document} of {args.server} to {path}", file=sys.stderr)
    return 0
