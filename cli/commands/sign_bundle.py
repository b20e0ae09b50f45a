"""`keyless sign-bundle`: the sigstore-conformance protocol's signing command.

`sign-bundle [--staging] [--in-toto] --identity-token TOKEN --bundle FILE [--trusted-root F]
[--signing-config F] [--rekor-version 1|2] FILE`: sign FILE (or, with --in-toto, the in-toto
statement in FILE as a DSSE envelope) with the services of the signing config (its highest log
version unless --rekor-version says), verify the new bundle against the trusted root, and
write it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from keyless.cli.main import CLIError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
PRODUCTION_SIGNING_CONFIG = "production_signing_config.v0.2.json"
MAX_STATEMENT_BYTES = 16 * 1024 * 1024


def add_parser(subparsers: Any) -> None:
    from keyless.cli.commands.sign import add_rekor_version_argument
    from keyless.cli.commands.verify_bundle import add_sign_bundle_arguments

    parser = subparsers.add_parser(
        "sign-bundle",
        help="sign a file into a bundle (sigstore-conformance protocol)",
        description="Sign as the sigstore-conformance CLI protocol specifies.",
    )
    add_sign_bundle_arguments(parser)
    add_rekor_version_argument(parser, default="the highest the signing config offers")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from keyless.cli.commands.verify_bundle import protocol_trusted_root
    from keyless.client import services
    from keyless.client.files import read_bounded
    from keyless.client.sign.signer import new_signer

    # The input is read and checked before the CA or any log is asked for anything.
    data = read_bounded(Path(args.file), limit=MAX_STATEMENT_BYTES)
    subject = _first_subject(data) if args.in_toto else None
    endpoints = _services(args, services)
    signer = new_signer(
        endpoints, token=args.identity_token, trusted_root=protocol_trusted_root(args)
    )
    if subject is not None:
        result = signer.sign_dsse(data, payload_type=IN_TOTO_PAYLOAD_TYPE, subject_sha256=subject)
    else:
        result = signer.sign_digest(hashlib.sha256(data).digest())
    try:
        Path(args.bundle).write_text(result.to_json())
    except OSError as exc:
        raise CLIError(f"cannot write the bundle to {args.bundle}: {exc.strerror}") from exc
    return 0


def _services(args: argparse.Namespace, services: Any) -> Any:
    if args.signing_config:
        return services.from_signing_config(
            Path(args.signing_config), rekor_version=args.rekor_version
        )
    if args.staging:
        raise CLIError(
            "keyless ships no staging signing config", hint="pass --signing-config for staging"
        )
    data = (
        resources.files("keyless.client").joinpath("data", PRODUCTION_SIGNING_CONFIG).read_bytes()
    )
    return services.from_signing_config_bytes(
        data, source=PRODUCTION_SIGNING_CONFIG, rekor_version=args.rekor_version
    )


def _first_subject(statement: bytes) -> bytes:
    """The SHA-256 of the statement's first subject: the artifact the new bundle is checked for."""
    try:
        subjects = json.loads(statement)["subject"]
        return bytes.fromhex(subjects[0]["digest"]["sha256"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CLIError("the in-toto statement has no subject with a sha256 digest") from exc
