"""`keyless verify`: accept an artifact only if the expected identity signed it, offline.

Flags follow cosign's names, except that regexps match the whole value (anchored).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cli.commands import _images

if TYPE_CHECKING:
    from cli.trust import TrustedRoot
    from cli.verify import Policy

# (flag suffix, Fulcio arc, check name) for the GitHub workflow claims cosign users know.
GITHUB_FLAGS: tuple[tuple[str, int, str], ...] = (
    ("trigger", 2, "github-workflow-trigger"),
    ("sha", 3, "github-workflow-sha"),
    ("name", 4, "github-workflow-name"),
    ("repository", 5, "github-workflow-repository"),
    ("ref", 6, "github-workflow-ref"),
)

_ANCHOR_NOTE = (
    "matched against the WHOLE value (anchored, Python re.fullmatch); unlike cosign, "
    "'alice@example\\.com' does not match 'alice@example.com.evil.org'"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="verify an artifact's bundle by signer identity and OIDC issuer",
        description=(
            "Verify a Sigstore bundle for a file or a sha256:<hex> digest, offline. Exit 0 "
            "only if every check holds; otherwise print one line naming the failed check and "
            "exit 1. All --*-regexp flags are anchored: they must match the entire value."
        ),
    )
    add_identity_arguments(parser)
    parser.add_argument(
        "--bundle", metavar="FILE", help="the bundle (default: <artifact>.sigstore.json)"
    )
    add_trust_arguments(parser)
    parser.add_argument("--key", metavar="FILE", help="PEM public key, for managed-key bundles")
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="result format"
    )
    parser.add_argument(
        "artifact",
        metavar="FILE_OR_DIGEST",
        help="a file, sha256:<hex>, or an image (registry/repo:tag or @digest)",
    )
    _images.add_registry_arguments(parser)
    parser.set_defaults(run=run, usage_error=parser.error)


def add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    """The signer identity flags (`build_policy` reads them); shared with verify-attestation."""
    identity = parser.add_argument_group("identity (one of each pair is required)")
    who = identity.add_mutually_exclusive_group()
    who.add_argument(
        "--certificate-identity", metavar="SAN", help="exact signer identity (email or URI)"
    )
    who.add_argument(
        "--certificate-identity-regexp",
        metavar="REGEXP",
        help=f"signer identity regexp, {_ANCHOR_NOTE}",
    )
    issuer = identity.add_mutually_exclusive_group()
    issuer.add_argument("--certificate-oidc-issuer", metavar="URL", help="exact OIDC issuer")
    issuer.add_argument(
        "--certificate-oidc-issuer-regexp",
        metavar="REGEXP",
        help="OIDC issuer regexp, anchored like --certificate-identity-regexp",
    )
    github = parser.add_argument_group("GitHub Actions claims (exact match)")
    for suffix, _, _ in GITHUB_FLAGS:
        github.add_argument(f"--certificate-github-workflow-{suffix}", metavar="VALUE")


def add_trust_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the trusted root comes from (`_trusted_root` reads them); shared likewise."""
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--trusted-root", metavar="FILE", help="a Sigstore trusted_root.json")
    trust.add_argument("--trust-config", metavar="FILE", help="a Sigstore ClientTrustConfig")
    trust.add_argument(
        "--server",
        metavar="URL",
        help="a keyless server: its trusted root, through its TUF repository (trusted on first "
        "use, refreshed on every run)",
    )
    parser.add_argument(
        "--refresh-trust",
        action="store_true",
        help="with --server: forget the trust kept for it and trust its current TUF root",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from datetime import UTC, datetime

    from cli.bundle import load_bundle
    from cli.verify import VerificationError, Verifier
    from cli.verify.artifact import resolve_artifact
    from cli.verify.keys import load_public_key

    policy = None if args.key is not None else build_policy(args)
    if args.key is not None and _identity_flags_given(args):
        args.usage_error("--key verifies a managed key; identity flags do not apply")
    image = _images.image_reference(args.artifact)
    if image is not None:
        return _images.verify(args, image, policy=policy, trusted_root=lambda: _trusted_root(args))
    try:
        artifact = resolve_artifact(args.artifact)
        bundle_path = args.bundle
        if bundle_path is None:
            if artifact.path is None:
                args.usage_error("--bundle is required when verifying a sha256: digest")
            bundle_path = f"{artifact.path}.sigstore.json"
        bundle = load_bundle(bundle_path)
        verifier = Verifier(_trusted_root(args))
        now = datetime.now(UTC)
        if policy is None:
            key = load_public_key(args.key)
            result = verifier.verify_with_key(bundle, sha256=artifact.sha256, key=key, now=now)
        else:
            result = verifier.verify(bundle, sha256=artifact.sha256, policy=policy, now=now)
    except VerificationError as exc:
        if args.output == "json":
            failure = {"verified": False, "check": exc.check, "message": exc.detail}
            print(json.dumps(failure))
        raise
    if args.output == "json":
        print(json.dumps({"artifact": artifact.name, **result.to_json()}))
    else:
        signer = f" by {result.identity} ({result.issuer})" if result.identity else ""
        print(
            f"Verified OK: {artifact.name} signed{signer}, log index {result.log_index}",
            file=sys.stderr,
        )
    return 0


def build_policy(args: argparse.Namespace) -> Policy:
    """The identity policy the flags describe; a usage error when a pair is missing."""
    from cli.verify import (
        AllOf,
        ExtensionEquals,
        Identity,
        IdentityRegexp,
        Issuer,
        IssuerRegexp,
        VerificationError,
    )

    if args.certificate_identity is None and args.certificate_identity_regexp is None:
        args.usage_error(
            "one of --certificate-identity or --certificate-identity-regexp is required"
        )
    if args.certificate_oidc_issuer is None and args.certificate_oidc_issuer_regexp is None:
        args.usage_error(
            "one of --certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required"
        )
    try:
        policies: list[Policy] = [
            Identity(args.certificate_identity)
            if args.certificate_identity is not None
            else IdentityRegexp(args.certificate_identity_regexp),
            Issuer(args.certificate_oidc_issuer)
            if args.certificate_oidc_issuer is not None
            else IssuerRegexp(args.certificate_oidc_issuer_regexp),
        ]
    except VerificationError as exc:  # an invalid or oversized regexp is a usage error
        args.usage_error(exc.detail)
    for suffix, arc, name in GITHUB_FLAGS:
        value = getattr(args, f"certificate_github_workflow_{suffix}")
        if value is not None:
            policies.append(ExtensionEquals(arc=arc, name=name, value=value))
    return AllOf(policies)


def _identity_flags_given(args: argparse.Namespace) -> bool:
    names = [
        "certificate_identity",
        "certificate_identity_regexp",
        "certificate_oidc_issuer",
        "certificate_oidc_issuer_regexp",
    ] + [f"certificate_github_workflow_{suffix}" for suffix, _, _ in GITHUB_FLAGS]
    return any(getattr(args, name) is not None for name in names)


def _trusted_root(args: argparse.Namespace) -> TrustedRoot:
    from cli.trust import (
        fetch_server_trusted_root,
        load_trust_config,
        load_trusted_root,
        production_trusted_root,
    )

    if args.trusted_root:
        return load_trusted_root(args.trusted_root)
    if args.trust_config:
        return load_trust_config(args.trust_config)
    if args.server:
        return fetch_server_trusted_root(args.server, refresh_trust=args.refresh_trust)
    return production_trusted_root()
