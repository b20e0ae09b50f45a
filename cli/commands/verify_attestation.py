"""`keyless verify-attestation`: accept an attestation only from the expected signer, of the
expected type, and (optionally) allowed by a Rego policy.

The identity and trust flags are `keyless verify`'s. `--owner`, `--repo` and
`--signer-workflow` are `gh attestation verify`'s shortcuts for GitHub Actions signers; each
expands to anchored checks: the signing workflow's URI (SAN), the issuer
`https://token.actions.githubusercontent.com` (unless an issuer flag is given), and the
certificate's source repository or owner extension.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless.cli.commands import _images, _keys
from keyless.cli.commands.verify import (
    GITHUB_FLAGS,
    _identity_flags_given,
    _logged,
    add_identity_arguments,
    add_trust_arguments,
    build_policy,
    signer_identity,
)
from keyless.core.errors import Error, Reason

if TYPE_CHECKING:
    from keyless.client.attest.rego import RegoPolicy
    from keyless.client.attest.statement import VerifiedAttestation
    from keyless.client.keys import VerifierKey
    from keyless.client.verify import Policy

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_HOST = "github.com"
_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_REPO_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]+)?")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def add_parser(subparsers: Any) -> None:
    from keyless.client.attest.predicates import PREDICATE_TYPES

    parser = subparsers.add_parser(
        "verify-attestation",
        help="verify in-toto attestations of a file, digest or image by signer and type",
        description=(
            "Verify the attestations (Sigstore bundles with in-toto statements) of a file, a "
            "sha256:, sha384: or sha512:<hex> digest or an image, offline for files. Only "
            "attestations of --type "
            "from the expected signer count, and with --policy only those the Rego policy "
            "allows (cosign's convention: package signature, data.signature.allow, input = "
            "the statement). Exit 0 if at least one passes; otherwise one line naming the "
            "check and exit 1."
        ),
    )
    add_identity_arguments(parser)
    github = parser.add_argument_group(
        "GitHub artifact attestations (gh attestation verify's shortcuts; each implies the "
        f"issuer {GITHUB_ISSUER} unless an issuer flag is given)"
    )
    source = github.add_mutually_exclusive_group()
    source.add_argument(
        "--owner",
        metavar="OWNER",
        help="the source repository's owner (certificate extension 1.16); the signer "
        "workflow must be in OWNER's repositories unless --signer-workflow or an identity "
        "flag says otherwise",
    )
    source.add_argument(
        "--repo",
        metavar="OWNER/REPO",
        help="the source repository (certificate extension 1.12); the signer workflow must "
        "be in it unless --signer-workflow or an identity flag says otherwise",
    )
    github.add_argument(
        "--signer-workflow",
        metavar="[HOST/]OWNER/REPO/PATH",
        help="the workflow that signed, e.g. acme/ci/.github/workflows/release.yml (a "
        "reusable workflow); any ref",
    )
    parser.add_argument(
        "--type",
        default=None,
        metavar="TYPE",
        help="only attestations of this predicate type count: a URI or one of "
        f"{', '.join(PREDICATE_TYPES)} (default: any)",
    )
    parser.add_argument(
        "--policy",
        action="append",
        type=Path,
        metavar="FILE.rego",
        help="a Rego policy every counted attestation must satisfy (repeatable)",
    )
    parser.add_argument(
        "--bundle",
        metavar="FILE",
        help="the bundle(s), JSON or JSON Lines (default: <file>.intoto.jsonl)",
    )
    add_trust_arguments(parser)
    parser.add_argument(
        "--key",
        metavar="REF",
        action="append",
        help="instead of an identity: attestations signed with this public key (a PEM file, "
        "env://VAR or an https:// URL) count; repeat it to accept any one of several",
    )
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="result format"
    )
    parser.add_argument(
        "artifact",
        metavar="TARGET",
        help="a file, a sha256:, sha384: or sha512:<hex> digest, or an image "
        "(registry/repo:tag or @digest)",
    )
    _images.add_registry_arguments(parser)
    parser.set_defaults(run=run, usage_error=parser.error)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from keyless.client.attest.predicates import predicate_type_uri

    predicate_type = predicate_type_uri(args.type) if args.type is not None else None
    if args.key is not None and (
        _identity_flags_given(args) or args.owner or args.repo or args.signer_workflow
    ):
        args.usage_error("--key verifies a managed key; identity flags do not apply")
    policy = identity_policy(args) if args.key is None else None
    rego = _policies(args)
    image = _images.image_reference(args.artifact)
    try:
        keys = _keys.verifier_keys(args, args.key) if args.key is not None else []
        if image is not None:
            if args.bundle is not None:
                args.usage_error("--bundle does not apply to images; attestations are referrers")
            name, verified = _verify_image(args, image, policy, keys, predicate_type, rego)
        else:
            name, verified = _verify_files(args, policy, keys, predicate_type, rego)
    except Error as exc:
        if args.output == "json":
            print(json.dumps({"verified": False, "check": exc.reason, "message": exc.message}))
        raise
    if args.output == "json":
        print(
            json.dumps(
                {"verified": True, "target": name, "attestations": [v.to_json() for v in verified]}
            )
        )
        return 0
    for item in verified:
        where = f", found via {item.source}" if item.source else ""
        by = f"with key {item.key}" if item.key else f"by {item.identity} ({item.issuer})"
        print(
            f"Verified OK: {name} attested ({item.predicate_type}) {by}, "
            f"{_logged(item.log_index)}{where}",
            file=sys.stderr,
        )
    return 0


def identity_policy(args: argparse.Namespace) -> Policy:
    """The signer policy: `keyless verify`'s flags, or the GitHub shortcuts expanded."""
    from keyless.client.verify import (
        AllOf,
        ExtensionEquals,
        IdentityRegexp,
        Issuer,
        IssuerRegexp,
    )
    from keyless.oidc import oids

    if not (args.owner or args.repo or args.signer_workflow):
        return build_policy(args)
    policies: list[Any] = []
    if (identity := signer_identity(args)) is not None:
        policies.append(identity)
    elif args.signer_workflow:
        policies.append(IdentityRegexp(_signer_workflow_pattern(args)))
    else:
        prefix = _repo(args) if args.repo else _owner(args)
        policies.append(IdentityRegexp(f"https://{re.escape(GITHUB_HOST)}/{re.escape(prefix)}/.+"))
    if args.certificate_oidc_issuer is not None:
        policies.append(Issuer(args.certificate_oidc_issuer))
    elif args.certificate_oidc_issuer_regexp is not None:
        policies.append(IssuerRegexp(args.certificate_oidc_issuer_regexp))
    else:
        policies.append(Issuer(GITHUB_ISSUER))
    if args.repo:
        policies.append(
            ExtensionEquals(
                arc=oids.SOURCE_REPOSITORY_URI,
                name=Reason.SOURCE_REPOSITORY,
                value=f"https://{GITHUB_HOST}/{_repo(args)}",
            )
        )
    if args.owner:
        policies.append(
            ExtensionEquals(
                arc=oids.SOURCE_REPOSITORY_OWNER_URI,
                name=Reason.SOURCE_REPOSITORY_OWNER,
                value=f"https://{GITHUB_HOST}/{_owner(args)}",
            )
        )
    for suffix, arc, name in GITHUB_FLAGS:
        value = getattr(args, f"certificate_github_workflow_{suffix}")
        if value is not None:
            policies.append(ExtensionEquals(arc=arc, name=name, value=value))
    return AllOf(policies)


def _owner(args: argparse.Namespace) -> str:
    if not _OWNER.fullmatch(args.owner):
        args.usage_error(f"--owner {args.owner[:80]!r} is not a GitHub user or organisation name")
    return str(args.owner)


def _repo(args: argparse.Namespace) -> str:
    owner, _, name = args.repo.partition("/")
    if not _OWNER.fullmatch(owner) or not _REPO_NAME.fullmatch(name) or name in (".", ".."):
        args.usage_error(f"--repo {args.repo[:80]!r} is not OWNER/REPO")
    return str(args.repo)


def _signer_workflow_pattern(args: argparse.Namespace) -> str:
    """`[host/]owner/repo/path` as an anchored SAN regexp: that workflow file, at any ref."""
    parts = args.signer_workflow.split("/")
    host = GITHUB_HOST
    if len(parts) >= 4 and "." in parts[0]:
        host, parts = parts[0], parts[1:]
    valid = (
        len(parts) >= 3
        and _HOST.fullmatch(host)
        and _OWNER.fullmatch(parts[0])
        and _REPO_NAME.fullmatch(parts[1])
        and all(_PATH_SEGMENT.fullmatch(p) and p not in (".", "..") for p in parts[2:])
    )
    if not valid:
        args.usage_error(
            f"--signer-workflow {args.signer_workflow[:120]!r} is not "
            "[HOST/]OWNER/REPO/PATH, e.g. acme/ci/.github/workflows/release.yml"
        )
    return f"https://{re.escape(host)}/{re.escape('/'.join(parts))}@.+"


def _policies(args: argparse.Namespace) -> list[RegoPolicy]:
    from keyless.client.attest.rego import RegoPolicy

    policies = []
    for path in args.policy or []:
        if path.suffix != ".rego":
            args.usage_error(f"--policy {path}: only Rego (.rego) policies are supported")
        policies.append(RegoPolicy.from_file(path))
    return policies


def _verify_files(
    args: argparse.Namespace,
    policy: Policy | None,
    keys: list[VerifierKey],
    predicate_type: str | None,
    rego: list[RegoPolicy],
) -> tuple[str, list[VerifiedAttestation]]:
    from datetime import UTC, datetime

    from keyless.cli.commands.verify import _trusted_root
    from keyless.client.attest.bundles import default_bundle_path, read_bundles
    from keyless.client.attest.statement import check_type, statement_of, verify_attestation
    from keyless.client.verify import VerificationError, Verifier
    from keyless.client.verify.artifact import DIGEST_ALGORITHMS, resolve_artifact

    artifact = resolve_artifact(args.artifact, algorithms=tuple(DIGEST_ALGORITHMS))
    if args.bundle is None:
        if artifact.path is None:
            args.usage_error(f"--bundle is required when verifying a {artifact.algorithm}: digest")
        bundle_path = default_bundle_path(artifact.path)
    else:
        bundle_path = Path(args.bundle)
    bundles = read_bundles(bundle_path)
    verifier = Verifier(_trusted_root(args))
    from keyless.client.attest.rego import rego_check

    check = rego_check(rego)
    now = datetime.now(UTC)
    verified: list[VerifiedAttestation] = []
    failures: list[VerificationError] = []
    for bundle in bundles:
        try:
            if predicate_type is not None:
                check_type(statement_of(bundle), predicate_type)
            result = verify_attestation(
                verifier,
                bundle,
                artifact=artifact,
                policy=policy,
                keys=keys,
                predicate_type=predicate_type,
                now=now,
            )
            if check is not None:
                check(result.statement)
        except VerificationError as exc:
            failures.append(exc)
            continue
        verified.append(result)
    if not verified:
        raise _best(failures, len(bundles), predicate_type)
    return artifact.name, verified


def _best(failures: list[Any], count: int, predicate_type: str | None) -> Any:
    """The failure to report when no bundle of a file passed."""
    from keyless.client.attest.statement import most_telling
    from keyless.client.verify import VerificationError

    if count == 1:
        return failures[0]
    first = most_telling(failures)
    if first.check == "type":
        return VerificationError(
            reason=Reason.TYPE,
            detail=f"none of the {count} attestations is of predicate type {predicate_type!r}",
        )
    return VerificationError(
        reason=first.check, detail=f"none of the {count} attestations passed: {first.detail}"
    )


def _verify_image(
    args: argparse.Namespace,
    image: Any,
    policy: Policy | None,
    keys: list[VerifierKey],
    predicate_type: str | None,
    rego: list[RegoPolicy],
) -> tuple[str, list[VerifiedAttestation]]:
    import sys
    from datetime import UTC, datetime

    from keyless.cli.commands.verify import _trusted_root
    from keyless.client.attest.images import verify_image_attestations
    from keyless.client.attest.rego import rego_check

    root = _trusted_root(args)
    with _images.registry_hints(args), _images.registry_client(args) as client:
        outcome = verify_image_attestations(
            client,
            image,
            trusted_root=root,
            policy=policy,
            keys=keys,
            predicate_type=predicate_type,
            now=datetime.now(UTC),
            rego=rego_check(rego),
        )
    if image.digest is None:
        print(f"resolved {image} to {outcome.digest}", file=sys.stderr)
    return f"{outcome.reference.name}@{outcome.digest}", list(outcome.verified)
