"""`keyless attest`: sign an in-toto attestation about a file, a digest or an image.

The predicate is read and checked before anything else happens, so bad input costs no login,
no certificate and no log entry. Signing itself is `keyless sign`'s flow (same services, token
sources and trust checks), with a DSSE envelope instead of a message signature.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from keyless.cli.commands import _images
from keyless.client.errors import ClientError

_DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def add_parser(subparsers: Any) -> None:
    from keyless.cli.commands.sign import add_rekor_version_argument
    from keyless.client.attest.predicates import PREDICATE_TYPES

    parser = subparsers.add_parser(
        "attest",
        help="sign an in-toto attestation (provenance, SBOM, ...) about a file, digest or image",
        description=(
            "Wrap a JSON predicate in an in-toto v1 statement about TARGET, sign it as a DSSE "
            "envelope with a short-lived certificate, log it, and write a Sigstore bundle v0.3: "
            "for a file appended to <file>.intoto.jsonl, for an image pushed as an OCI referrer "
            "(cosign v3's storage)."
        ),
    )
    parser.add_argument(
        "target",
        help="a file, sha256:<hex> (needs --bundle), or an image (registry/repo:tag or @digest)",
    )
    parser.add_argument(
        "--predicate", type=Path, required=True, metavar="FILE", help="the predicate, JSON"
    )
    parser.add_argument(
        "--type",
        default="custom",
        metavar="TYPE",
        help=f"predicate type: a URI or one of {', '.join(PREDICATE_TYPES)} (default custom)",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        help="where to write the bundle: a .jsonl file gets a line appended, any other file is "
        "overwritten (default <file>.intoto.jsonl; for an image, written only when given)",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="the keyless server (CA and log on one origin)")
    where.add_argument("--signing-config", type=Path, help="a Sigstore SigningConfig file")
    where.add_argument("--trust-config", type=Path, help="a Sigstore ClientTrustConfig file")
    parser.add_argument(
        "--trusted-root",
        type=Path,
        help="with --signing-config: verify the new bundle against this root",
    )
    add_rekor_version_argument(parser, default="the highest the signing config offers")
    parser.add_argument(
        "--refresh-trust",
        action="store_true",
        help="with --server: forget the trust kept for this server and trust its current one",
    )
    token = parser.add_argument_group("identity token (tried in this order)")
    token.add_argument(
        "--identity-token",
        metavar="TOKEN",
        help="an OIDC token, or @FILE; default: $SIGSTORE_ID_TOKEN, then ambient CI "
        "credentials, then a browser login",
    )
    token.add_argument("--oidc-issuer", help="issuer for the interactive login")
    token.add_argument(
        "--oidc-client-id", default="sigstore", help="client ID / audience (default sigstore)"
    )
    token.add_argument("--oauth-force-oob", action="store_true", help="log in with the device flow")
    _images.add_registry_arguments(parser)
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from keyless.client.attest.predicates import predicate_type_uri
    from keyless.client.attest.statement import read_predicate

    if args.refresh_trust and not args.server:
        args.parser.error("--refresh-trust applies to --server")
    predicate_type = predicate_type_uri(args.type)
    predicate = read_predicate(args.predicate, predicate_type)
    image = _images.image_reference(args.target)
    if image is not None:
        return _attest_image(args, image, predicate_type, predicate)
    return _attest_artifact(args, predicate_type, predicate)


def _attest_artifact(args: argparse.Namespace, predicate_type: str, predicate: Any) -> int:
    from keyless.cli.commands.sign import _keep, command_signer
    from keyless.client.attest.bundles import default_bundle_path, write_bundle
    from keyless.client.attest.statement import statement
    from keyless.client.sign.signer import UnverifiedBundleError
    from keyless.client.verify import VerificationError
    from keyless.client.verify.artifact import resolve_artifact
    from keyless.client.verify.dsse import INTOTO_PAYLOAD_TYPE

    if args.target.startswith(_DIGEST_PREFIX) and not Path(args.target).exists():
        if not _DIGEST.fullmatch(args.target):
            args.parser.error("a digest must be sha256: followed by 64 lowercase hex characters")
        if args.bundle is None:
            args.parser.error("attesting a digest needs --bundle FILE")
    try:
        artifact = resolve_artifact(args.target)
    except VerificationError as exc:
        raise ClientError(exc.detail, reason="artifact") from exc
    bundle_path = args.bundle or default_bundle_path(artifact.path)
    name = artifact.path.name if artifact.path is not None else None
    payload = statement([(name, artifact.sha256.hex())], predicate_type, predicate)
    signer = command_signer(args, rekor_version=args.rekor_version)
    try:
        result = signer.sign_dsse(
            payload, payload_type=INTOTO_PAYLOAD_TYPE, subject_sha256=artifact.sha256
        )
    except UnverifiedBundleError as exc:
        raise _keep(exc, beside=bundle_path) from exc
    write_bundle(bundle_path, result.to_json())
    print(
        f"attested {artifact.name} ({predicate_type}) as {result.identity} "
        f"(issuer {result.issuer}), log index {result.log_index}; bundle written to "
        f"{bundle_path}",
        file=sys.stderr,
    )
    return 0


def _attest_image(args: argparse.Namespace, image: Any, predicate_type: str, predicate: Any) -> int:
    from datetime import UTC, datetime

    from keyless.cli.commands.sign import _keep, command_signer
    from keyless.client.attest.bundles import write_bundle
    from keyless.client.attest.images import attest_image
    from keyless.client.sign.signer import EphemeralSigner, UnverifiedBundleError

    def signer() -> EphemeralSigner:
        # An attestation referrer has no v1-only form (no legacy tag): the image follows the
        # signing config as a file does.
        return command_signer(args, rekor_version=args.rekor_version)

    try:
        with _images.registry_hints(args), _images.registry_client(args) as client:
            attested = attest_image(
                client,
                image,
                signer=signer,
                predicate_type=predicate_type,
                predicate=predicate,
                created_at=datetime.now(UTC).replace(microsecond=0),
            )
    except UnverifiedBundleError as exc:
        raise _keep(exc, beside=args.bundle) from exc
    if args.bundle is not None:
        write_bundle(args.bundle, attested.result.to_json())
    name = f"{attested.reference.name}@{attested.digest}"
    print(
        f"attested {name} ({predicate_type}) as {attested.result.identity} "
        f"(issuer {attested.result.issuer}), log index {attested.result.log_index}; stored as "
        f"referrer {attested.referrer_digest} ({attested.stored_via})",
        file=sys.stderr,
    )
    print(name)
    return 0
