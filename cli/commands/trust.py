"""`keyless trust`: save a keyless server's trust material for clients that take files.

The trusted root and signing config are the server's TUF targets, verified against the TUF
root kept for the server (trusted on first use, as every `--server` command does), so what is
saved is what `keyless sign --server` and `keyless verify --server` would use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from keyless.cli.main import CLIError

DOCUMENTS = ("trusted-root", "signing-config", "client-trust-config", "tuf-root")
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
# python-tuf's own client bounds (UpdaterConfig): a root's size and how many versions to walk.
MAX_ROOT_BYTES = 512_000
MAX_ROOT_ROTATIONS = 256


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trust",
        help="save a server's trusted root, signing config, client trust config or TUF root",
        description=(
            "Fetch one of a keyless server's trust documents, check it parses as Sigstore's "
            "format, and save it: trusted-root for `keyless verify --trusted-root` and cosign "
            "`--trusted-root`, client-trust-config for sigstore-python `--trust-config`, "
            "tuf-root (the newest root of the server's TUF repository, reached from version 1 "
            "through every signed rotation) for `sigstore --instance URL/tuf trust-instance`, "
            "sigstore-js `tufRootPath` and cosign `initialize --root`. The trusted root and "
            "signing config come through the server's TUF repository, checked against the TUF "
            "root kept for it (trusted on first use)."
        ),
    )
    parser.add_argument("document", nargs="?", default="trusted-root", choices=sorted(DOCUMENTS))
    parser.add_argument("--server", required=True, help="the keyless server's origin")
    parser.add_argument("-o", "--output", required=True, help="file to write, or - for stdout")
    parser.add_argument(
        "--refresh-trust",
        action="store_true",
        help="forget the TUF root kept for this server and trust its current one (after a "
        "redeployment you have checked)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    server = args.server.rstrip("/")
    if args.document == "tuf-root":
        body = _tuf_root(server)
    else:
        body = _trust_document(server, args.document, refresh_trust=args.refresh_trust)
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


def _trust_document(server: str, document: str, *, refresh_trust: bool) -> bytes:
    """The verified bytes of a TUF target, or the ClientTrustConfig made of both targets."""
    import json

    from pydantic import ValidationError
    from sigstore_models.trustroot.v1 import ClientTrustConfig

    from keyless.client.trust.tuf import SIGNING_CONFIG_TARGET, TRUSTED_ROOT_TARGET, server_targets

    if document == "trusted-root":
        return server_targets(server, (TRUSTED_ROOT_TARGET,), refresh_trust=refresh_trust)[0]
    if document == "signing-config":
        return server_targets(server, (SIGNING_CONFIG_TARGET,), refresh_trust=refresh_trust)[0]
    root, config = server_targets(
        server, (TRUSTED_ROOT_TARGET, SIGNING_CONFIG_TARGET), refresh_trust=refresh_trust
    )
    combined = {
        "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
        "trustedRoot": json.loads(root),
        "signingConfig": json.loads(config),
    }
    body = json.dumps(combined, indent=2).encode() + b"\n"
    try:
        ClientTrustConfig.from_json(body)
    except ValidationError as exc:
        raise CLIError(f"the trust documents of {server} do not make a ClientTrustConfig") from exc
    return body


def _tuf_root(server: str) -> bytes:
    """The newest TUF root: version 1 (trusted on first use, like any initial root), then each
    next version only if signed by a threshold of both the previous root's and its own keys."""
    from datetime import UTC, datetime

    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata, Root
    from tuf.api.serialization import DeserializationError

    trusted: Metadata[Root] | None = None
    body = b""
    for version in range(1, MAX_ROOT_ROTATIONS + 2):
        url = f"{server}/tuf/{version}.root.json"
        data = _get(url, limit=MAX_ROOT_BYTES)
        if data is None:
            break
        if version > MAX_ROOT_ROTATIONS:
            raise CLIError(f"the TUF repository at {server}/tuf has too many root versions")
        try:
            root = Metadata[Root].from_bytes(data)
        except DeserializationError as exc:
            raise CLIError(f"{url} is not a valid TUF root: {exc}") from exc
        if root.signed.version != version:
            raise CLIError(f"{url} is version {root.signed.version} of the TUF root")
        try:
            if trusted is not None:
                trusted.signed.verify_delegate(Root.type, root.signed_bytes, root.signatures)
            root.signed.verify_delegate(Root.type, root.signed_bytes, root.signatures)
        except RepositoryError as exc:
            raise CLIError(f"{url} is not a validly signed TUF root: {exc}") from exc
        trusted, body = root, data
    if trusted is None:
        raise CLIError(
            f"{server} serves no TUF repository ({server}/tuf/1.root.json answered HTTP 404)"
        )
    if trusted.signed.is_expired(datetime.now(UTC)):
        raise CLIError(
            f"the newest TUF root of {server} (version {trusted.signed.version}) expired at "
            f"{trusted.signed.expires:%Y-%m-%dT%H:%M:%SZ}"
        )
    return body


def _get(url: str, *, limit: int | None = None) -> bytes | None:
    """The body of a 200 answer, None for a 404; anything else is an error."""
    from keyless.client.http import new_session, request

    response, body = request(new_session(), "GET", url, what="the keyless server")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise CLIError(f"{url} answered HTTP {response.status_code}")
    if limit is not None and len(body) > limit:
        raise CLIError(f"{url} is larger than {limit} bytes")
    return body
