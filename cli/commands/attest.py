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

from keyless.cli.commands import _images, _keys
from keyless.client.errors import ClientError
from keyless.core.errors import Reason

_DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def add_parser(subparsers: Any) -> None:
    from keyless.cli.commands.sign import add_key_arguments, add_rekor_version_argument
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
        "--subject-name",
        metavar="NAME",
        help="the subject's name in the statement (default, as cosign names it: the file's "
        "name; for an image its repository, registry/repository; for a bare digest the "
        "digest itself, sha256:<hex>)",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        help="where to write the bundle: a .jsonl file gets a line appended, any other file is "
        "overwritten (default <file>.intoto.jsonl; for an image, written only when given)",
    )
    # Required, except for a key signature that is not logged (sign.check_key_arguments).
    where = parser.add_mutually_exclusive_group()
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
    add_key_arguments(parser)
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
    from keyless.cli.commands.sign import check_key_arguments
    from keyless.client.attest.predicates import predicate_type_uri
    from keyless.client.attest.statement import check_subject_name, read_predicate

    if args.refresh_trust and not args.server:
        args.parser.error("--refresh-trust applies to --server")
    check_key_arguments(args)
    if args.subject_name is not None:
        check_subject_name(args.subject_name)
    predicate_type = predicate_type_uri(args.type)
    predicate = read_predicate(args.predicate, predicate_type)
    # The key (and its password) before anything signs: a bad key logs and pushes nothing.
    key = _keys.signer(args, args.key) if args.key is not None else None
    image = _images.image_reference(args.target)
    if image is not None:
        return _attest_image(args, image, predicate_type, predicate, key)
    return _attest_artifact(args, predicate_type, predicate, key)


def _signer(args: argparse.Namespace, key: Any) -> Any:
    """The signer of one attestation: keyless (a token and a certificate) or the `--key`."""
    from keyless.cli.commands import _sign_key
    from keyless.cli.commands.sign import command_signer

    if key is not None:
        return _sign_key.key_signer(args, key, rekor_version=args.rekor_version)
    return command_signer(args, rekor_version=args.rekor_version)


def _by(args: argparse.Namespace, result: Any) -> str:
    """Who attested and where it is logged, for the result line."""
    if args.key is not None:
        who = f"with key {args.key}"
    else:
        who = f"as {result.identity} (issuer {result.issuer})"
    logged = result.log_index
    where = "not logged (--no-tlog-upload)" if logged is None else f"log index {logged}"
    return f"{who}, {where}"


def _attest_artifact(
    args: argparse.Namespace, predicate_type: str, predicate: Any, key: Any
) -> int:
    from keyless.cli.commands.sign import _keep
    from keyless.client.attest.bundles import default_bundle_path, write_bundle
    from keyless.client.attest.statement import artifact_subject_name, statement
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
        raise ClientError(exc.detail, reason=Reason.ARTIFACT) from exc
    bundle_path = args.bundle or default_bundle_path(artifact.path)
    digest = artifact.sha256.hex()
    name = args.subject_name or artifact_subject_name(artifact.path, digest)
    payload = statement([(name, digest)], predicate_type, predicate)
    signer = _signer(args, key)
    try:
        result = signer.sign_dsse(
            payload, payload_type=INTOTO_PAYLOAD_TYPE, subject_sha256=artifact.sha256
        )
    except UnverifiedBundleError as exc:
        raise _keep(exc, beside=bundle_path) from exc
    write_bundle(bundle_path, result.to_json())
    print(
        f"attested {artifact.name} ({predicate_type}) {_by(args, result)}; bundle written to "
        f"{bundle_path}",
        file=sys.stderr,
    )
    return 0


def _attest_image(
    args: argparse.Namespace, image: Any, predicate_type: str, predicate: Any, key: Any
) -> int:
    from datetime import UTC, datetime

    from keyless.cli.commands.sign import _keep
    from keyless.client.attest.bundles import write_bundle
    from keyless.client.attest.images import attest_image
    from keyless.client.sign.signer import UnverifiedBundleError

    def signer() -> Any:
        # An attestation referrer has no v1-only form (no legacy tag): the image follows the
        # signing config as a file does.
        return _signer(args, key)

    try:
        with _images.registry_hints(args), _images.registry_client(args) as client:
            attested = attest_image(
                client,
                image,
                signer=signer,
                predicate_type=predicate_type,
                predicate=predicate,
                created_at=datetime.now(UTC).replace(microsecond=0),
                subject_name=args.subject_name,
            )
    except UnverifiedBundleError as exc:
        raise _keep(exc, beside=args.bundle) from exc
    if args.bundle is not None:
        write_bundle(args.bundle, attested.result.to_json())
    name = f"{attested.reference.name}@{attested.digest}"
    print(
        f"attested {name} ({predicate_type}) {_by(args, attested.result)}; stored as "
        f"referrer {attested.referrer_digest} ({attested.stored_via})",
        file=sys.stderr,
    )
    print(name)
    return 0
