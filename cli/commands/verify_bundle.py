"""`keyless verify-bundle`: the sigstore-conformance CLI protocol's verify command.

Arguments follow `docs/cli_protocol.md` exactly. The argument builders here are shared with
`sign-bundle`, so both halves of the protocol parse the same way.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keyless.client.trust import TrustedRoot


def add_instance_arguments(parser: argparse.ArgumentParser) -> None:
    """`--staging` and `--trusted-root`, common to both protocol commands."""
    parser.add_argument(
        "--staging",
        action="store_true",
        help="use the Sigstore staging trust root instead of production",
    )
    parser.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="a Sigstore trusted_root.json (default: the shipped production root)",
    )


def add_sign_bundle_arguments(parser: argparse.ArgumentParser) -> None:
    """Every argument of the protocol's `sign-bundle`, in the protocol's order."""
    add_instance_arguments(parser)
    parser.add_argument(
        "--in-toto", action="store_true", help="FILE is an in-toto statement to sign as DSSE"
    )
    parser.add_argument("--identity-token", required=True, metavar="TOKEN", help="OIDC token")
    parser.add_argument("--bundle", required=True, metavar="FILE", help="where to write")
    parser.add_argument("--signing-config", metavar="FILE", help="a Sigstore signing config")
    parser.add_argument("file", metavar="FILE", help="the artifact (or statement) to sign")


def add_verify_bundle_arguments(parser: argparse.ArgumentParser) -> None:
    """Every argument of the protocol's `verify-bundle`, in the protocol's order."""
    add_instance_arguments(parser)
    parser.add_argument("--bundle", required=True, metavar="FILE", help="the bundle to verify")
    parser.add_argument(
        "--certificate-identity", metavar="IDENTITY", help="expected SAN, matched exactly"
    )
    parser.add_argument(
        "--certificate-oidc-issuer", metavar="URL", help="expected OIDC issuer, matched exactly"
    )
    parser.add_argument("--key", metavar="PATH_TO_KEY", help="PEM public key (managed keys)")
    parser.add_argument(
        "input",
        metavar="FILE_OR_DIGEST",
        help="the artifact, or sha256:<hex> when that is not an existing path",
    )


def protocol_trusted_root(args: argparse.Namespace) -> TrustedRoot:
    """The trust root the protocol asks for: --trusted-root, else staging or production."""
    from keyless.client.trust import (
        load_trusted_root,
        production_trusted_root,
        staging_trusted_root,
    )

    if args.trusted_root:
        return load_trusted_root(args.trusted_root)
    return staging_trusted_root() if args.staging else production_trusted_root()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify-bundle",
        help="verify a bundle (sigstore-conformance protocol)",
        description=(
            "Verify a Sigstore bundle as the sigstore-conformance CLI protocol specifies: "
            "by exact identity and issuer, or with --key. Never uses the network."
        ),
    )
    add_verify_bundle_arguments(parser)
    parser.set_defaults(run=run, usage_error=parser.error)


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from keyless.client.bundle import load_bundle
    from keyless.client.verify import AllOf, Identity, Issuer, Verifier
    from keyless.client.verify.artifact import resolve_artifact
    from keyless.client.verify.keys import load_public_key

    by_identity = args.certificate_identity is not None or args.certificate_oidc_issuer is not None
    if args.key is not None and by_identity:
        args.usage_error("--key cannot be combined with --certificate-identity/-oidc-issuer")
    if args.key is None and (
        args.certificate_identity is None or args.certificate_oidc_issuer is None
    ):
        args.usage_error("give --certificate-identity and --certificate-oidc-issuer, or --key")

    root = protocol_trusted_root(args)
    bundle = load_bundle(args.bundle)
    artifact = resolve_artifact(args.input)
    verifier = Verifier(root)
    now = datetime.now(UTC)
    if args.key is not None:
        result = verifier.verify_with_key(
            bundle, artifact=artifact, key=load_public_key(args.key), now=now
        )
    else:
        policy = AllOf([Identity(args.certificate_identity), Issuer(args.certificate_oidc_issuer)])
        result = verifier.verify(bundle, artifact=artifact, policy=policy, now=now)
    print(f"OK: {artifact.name} (log index {result.log_index})")
    return 0
