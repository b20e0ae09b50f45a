"""`keyless verify`: accept an artifact only if the expected identity signed it, offline.

Flags follow cosign's names, except that regexps match the whole value (anchored), that
`--certificate-identity` (or `-regexp`) may be given several times (any one may match), and
that the other identity flags refuse a second value instead of keeping the last. An image is
judged by the policy evaluator `keyless policy check` and `keyless gate` use, with one
authority built from the flags.

Exit codes: 0 verified, 1 refused (no signature satisfies the flags), 2 usage, 3 could not
decide (the registry or the keyless server could not be reached or refused us). `-o json`
prints one object of the same shape for files, digests and images (README, "Verify");
`-o cosign` prints, for an image, what `cosign verify` prints (`_cosign_output`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from keyless.cli.commands import _images, _keys
from keyless.cli.main import UndecidedError
from keyless.core.encoding import format_rfc3339
from keyless.core.errors import Error, Reason

if TYPE_CHECKING:
    from keyless.client.oci import Reference
    from keyless.client.trust import TrustedRoot
    from keyless.client.verify import Policy

# (flag suffix, Fulcio arc, check name) for the GitHub workflow claims cosign users know.
GITHUB_FLAGS: tuple[tuple[str, int, str], ...] = (
    ("trigger", 2, Reason.GITHUB_WORKFLOW_TRIGGER),
    ("sha", 3, Reason.GITHUB_WORKFLOW_SHA),
    ("name", 4, Reason.GITHUB_WORKFLOW_NAME),
    ("repository", 5, Reason.GITHUB_WORKFLOW_REPOSITORY),
    ("ref", 6, Reason.GITHUB_WORKFLOW_REF),
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
    parser.add_argument(
        "--key",
        metavar="REF",
        action="append",
        help="a public key (a PEM file, env://VAR or an https:// URL) for key-signed bundles "
        "and images; repeat it to accept any one of several (a rotation window)",
    )
    parser.add_argument(
        "--insecure-ignore-tlog",
        action="store_true",
        help="with --key: also accept a signature that verifies with the key but has no valid "
        "transparency log evidence (cosign's flag; the signing is then not publicly visible)",
    )
    parser.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="KEY",
        help="a witness whose cosignature the bundle's checkpoint must carry: its "
        "cosignature/v1 verifier key (name+id+key) or a file holding it; repeatable",
    )
    parser.add_argument(
        "--witness-threshold",
        type=int,
        metavar="N",
        help="how many of the --witness keys must have cosigned (default: all of them)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json", "cosign"),
        default="text",
        help="result format; cosign (images only): cosign verify's header on stderr and its "
        "JSON array on stdout, for scripts written against cosign",
    )
    parser.add_argument(
        "artifact",
        metavar="FILE_OR_DIGEST",
        help="a file, a sha256:, sha384: or sha512:<hex> digest, or an image "
        "(registry/repo:tag or @digest)",
    )
    _images.add_registry_arguments(parser)
    parser.set_defaults(run=run, usage_error=parser.error)


def add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    """The signer identity flags (`build_policy` reads them); shared with verify-attestation."""
    identity = parser.add_argument_group("identity (one of each pair is required)")
    who = identity.add_mutually_exclusive_group()
    who.add_argument(
        "--certificate-identity",
        metavar="SAN",
        action="append",
        help="exact signer identity (email or URI); repeat it to accept any of several",
    )
    who.add_argument(
        "--certificate-identity-regexp",
        metavar="REGEXP",
        action="append",
        help=f"signer identity regexp, {_ANCHOR_NOTE}; repeat it to accept any of several",
    )
    issuer = identity.add_mutually_exclusive_group()
    issuer.add_argument(
        "--certificate-oidc-issuer", metavar="URL", action=_Once, help="exact OIDC issuer"
    )
    issuer.add_argument(
        "--certificate-oidc-issuer-regexp",
        metavar="REGEXP",
        action=_Once,
        help="OIDC issuer regexp, anchored like --certificate-identity-regexp",
    )
    github = parser.add_argument_group("GitHub Actions claims (exact match)")
    for suffix, _, _ in GITHUB_FLAGS:
        github.add_argument(
            f"--certificate-github-workflow-{suffix}", metavar="VALUE", action=_Once
        )


class _Once(argparse.Action):
    """Stores a value, and refuses a second one rather than silently keeping the last."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} may be given only once")
        setattr(namespace, self.dest, values)


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
    if args.key is not None and _identity_flags_given(args):
        args.usage_error("--key verifies a managed key; identity flags do not apply")
    if args.insecure_ignore_tlog and args.key is None:
        args.usage_error("--insecure-ignore-tlog applies to --key only")
    threshold = args.witness_threshold
    if threshold is not None and not 1 <= threshold <= len(args.witness):
        args.usage_error("--witness-threshold must be between 1 and the number of --witness keys")
    policy = None if args.key is not None else build_policy(args)
    image = _images.image_reference(args.artifact)
    if image is None and args.output == "cosign":
        args.usage_error("-o cosign applies to images (cosign verify-blob prints no JSON)")
    if image is not None:
        if args.witness:
            args.usage_error("--witness applies to bundle files and digests, not images")
        if args.bundle is not None:
            args.usage_error("--bundle does not apply to images; signatures are in the registry")
        return _verify_image(args, image, policy, expected=describe_expected(args))
    return _verify_file(args, policy)


def _verify_file(args: argparse.Namespace, policy: Policy | None) -> int:
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    from keyless.client.bundle import MAX_BUNDLE_BYTES, load_bundle
    from keyless.client.errors import ClientError, NetworkError
    from keyless.client.files import read_bounded
    from keyless.client.verify import VerificationError, Verifier
    from keyless.client.verify.artifact import DIGEST_ALGORITHMS, resolve_artifact
    from keyless.client.verify.keys import verify_by_key_alone, verify_with_any_key

    digest = None
    key = None
    alone = False
    try:
        keys = _keys.verifier_keys(args, args.key) if policy is None else []
        artifact = resolve_artifact(args.artifact, algorithms=tuple(DIGEST_ALGORITHMS))
        digest = artifact.label
        bundle_path = args.bundle
        if bundle_path is None:
            if artifact.path is None:
                args.usage_error(
                    f"--bundle is required when verifying a {artifact.algorithm}: digest"
                )
            bundle_path = f"{artifact.path}.sigstore.json"
        now = datetime.now(UTC)
        if policy is None:
            try:
                bundle = load_bundle(bundle_path)
                verifier = Verifier(_trusted_root(args))
                result, key = verify_with_any_key(
                    verifier, bundle, keys=keys, artifact=artifact, now=now
                )
            except VerificationError as exc:
                if not args.insecure_ignore_tlog or exc.check in ("trust-root", "artifact"):
                    raise
                try:
                    data = read_bounded(Path(bundle_path), limit=MAX_BUNDLE_BYTES)
                except ClientError:
                    raise exc from None
                result, key = verify_by_key_alone(data, artifact=artifact, keys=keys, failure=exc)
                alone = True
        else:
            bundle = load_bundle(bundle_path)
            verifier = Verifier(_trusted_root(args))
            result = verifier.verify(bundle, artifact=artifact, policy=policy, now=now)
        if args.witness:
            from keyless.client.verify.witnesses import check_cosignatures, load_witness_key

            keys = [load_witness_key(value) for value in args.witness]
            check_cosignatures(
                bundle, witnesses=keys, threshold=args.witness_threshold or len(keys)
            )
    except NetworkError as exc:
        raise _undecided(args, exc, digest) from exc
    except VerificationError as exc:
        _print_json(args, _failure(args.artifact, digest, "fail", exc.reason, exc.message))
        raise
    signature = {
        "identity": result.identity,
        "issuer": result.issuer,
        "log": {"url": result.log_url, "index": result.log_index, "kind": result.entry_kind},
        "signedTimes": [format_rfc3339(t) for t in result.signed_times],
        "type": result.dsse_payload_type or "message-signature",
        "source": "bundle-file",
        "key": key.reference if key is not None else None,
    }
    _print_json(args, _success(artifact.name, digest, [signature]))
    if args.output != "json":
        signer = f" by {result.identity} ({result.issuer})" if result.identity else ""
        if key is not None:
            signer = f" with key {key.reference}"
        logged = "no log entry checked (--insecure-ignore-tlog)" if alone else None
        print(
            f"Verified OK: {artifact.name} signed{signer}, {logged or _logged(result.log_index)}",
            file=sys.stderr,
        )
    return 0


def _verify_image(
    args: argparse.Namespace, image: Reference, policy: Policy | None, *, expected: str
) -> int:
    """One authority from the flags, judged by the policy evaluator (as `policy check` does)."""
    import sys

    from keyless.client.errors import NetworkError
    from keyless.client.oci import RegistryError
    from keyless.client.policy.evaluator import ERROR, Evaluator, ResolvedImage
    from keyless.client.policy.glob import compile_glob
    from keyless.client.policy.model import (
        ImagePolicy,
        KeyAuthority,
        KeylessAuthority,
        Mode,
        PolicySet,
    )
    from keyless.client.policy.trustroots import DEFAULT_TRUST_ROOT, TrustMaterial

    try:
        root = _trusted_root(args)
        keys = _keys.verifier_keys(args, args.key) if args.key is not None else []
    except NetworkError as exc:
        raise _undecided(args, exc, image.digest) from exc
    if keys:
        authority: KeylessAuthority | KeyAuthority = KeyAuthority(
            name="verify", keys=tuple(keys), ignore_tlog=args.insecure_ignore_tlog
        )
    else:
        authority = KeylessAuthority(name="verify", identity=policy, expected=expected)
    only = ImagePolicy(
        "verify", ("**",), Mode.ENFORCE, (authority,), "flags", "", (compile_glob("**"),)
    )
    trust = TrustMaterial(DEFAULT_TRUST_ROOT, root, "", "command line")
    policies = PolicySet((only,), {DEFAULT_TRUST_ROOT: trust})
    with _images.registry_client(args) as client:
        evaluator = Evaluator(policies, registry=lambda: client, all_signatures=True)
        try:
            with _images.registry_hints(args):
                # A digest is looked up too, so a missing image is not "no signatures found".
                resolved = ResolvedImage.from_reference(image, client.resolve(image).digest)
        except RegistryError as exc:
            raise _undecided(args, exc, image.digest) from exc
        verdict = evaluator.evaluate(resolved)
    pinned = f"{image.name}@{resolved.digest}"
    cosign = args.output == "cosign"
    if verdict.outcome == ERROR:
        message = verdict.messages[0]
        _print_json(args, _failure(pinned, resolved.digest, ERROR, Reason.REGISTRY, message))
        raise UndecidedError(message, reason=Reason.REGISTRY)
    (result,) = verdict.policies[0].authorities
    if image.digest is None and not cosign:
        print(f"resolved {image} to {resolved.digest}", file=sys.stderr)
    if not result.passed:
        refusal = result.refusal
        if refusal is None:
            raise RuntimeError("a keyless authority failed without a refusal")
        _print_json(
            args, _failure(pinned, resolved.digest, "fail", refusal.reason, refusal.message)
        )
        raise refusal
    outcome = result.verification
    if outcome is None:
        raise RuntimeError("a keyless authority passed without a verification")
    if cosign:
        from keyless.cli.commands import _cosign_output

        name = _cosign_output.cosign_name(image)
        header = _cosign_output.verification_header(name, outcome, by_key=bool(keys))
        print(header, file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.write(_cosign_output.verification_output(outcome, name))
        return 0
    signatures = [s.to_json() for s in outcome.verified]
    _print_json(args, _success(pinned, resolved.digest, signatures))
    if args.output == "text":
        print(_images.verified_text(outcome), file=sys.stderr)
    return 0


def _success(name: str, digest: str | None, signatures: list[dict[str, Any]]) -> dict[str, Any]:
    first = signatures[0]
    return {
        "verified": True,
        "outcome": "pass",
        "artifact": name,
        "digest": digest,
        "identity": first["identity"],
        "issuer": first["issuer"],
        "signatures": signatures,
        "error": None,
    }


def _failure(
    name: str, digest: str | None, outcome: str, reason: str, message: str
) -> dict[str, Any]:
    return {
        "verified": False,
        "outcome": outcome,
        "artifact": name,
        "digest": digest,
        "identity": None,
        "issuer": None,
        "signatures": [],
        "error": {"reason": reason, "message": message},
    }


def _print_json(args: argparse.Namespace, document: dict[str, Any]) -> None:
    if args.output == "json":
        import json

        print(json.dumps(document))


def _undecided(args: argparse.Namespace, exc: Error, digest: str | None) -> UndecidedError:
    """Could not decide (exit 3): the registry or the keyless server failed, not the image.
    The JSON result says so; the error to raise says why."""
    _print_json(args, _failure(args.artifact, digest, "error", exc.reason, exc.message))
    return UndecidedError(exc.message, reason=exc.reason, hint=exc.hint)


def build_policy(args: argparse.Namespace) -> Policy:
    """The identity policy the flags describe; a usage error when a pair is missing."""
    from keyless.client.verify import (
        AllOf,
        ExtensionEquals,
        Issuer,
        IssuerRegexp,
        VerificationError,
    )

    identity = signer_identity(args)
    if identity is None:
        args.usage_error(
            "one of --certificate-identity or --certificate-identity-regexp is required"
        )
    if args.certificate_oidc_issuer is None and args.certificate_oidc_issuer_regexp is None:
        args.usage_error(
            "one of --certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required"
        )
    try:
        policies: list[Policy] = [
            identity,
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


def signer_identity(args: argparse.Namespace) -> Policy | None:
    """Any one of the `--certificate-identity` (or `-regexp`) values; None when none is given.

    A usage error for an invalid or oversized regexp.
    """
    from keyless.client.verify import AnyOf, Identity, IdentityRegexp, VerificationError

    exact = args.certificate_identity or []
    patterns = args.certificate_identity_regexp or []
    try:
        choices: list[Policy] = [Identity(v) for v in exact] + [IdentityRegexp(p) for p in patterns]
    except VerificationError as exc:
        args.usage_error(exc.detail)
    if not choices:
        return None
    return choices[0] if len(choices) == 1 else AnyOf(choices)


def describe_expected(args: argparse.Namespace) -> str:
    """What the flags accept, for "signed by X but verify wants Y" lines."""
    who = list(args.certificate_identity or []) + [
        f"/{p}/" for p in args.certificate_identity_regexp or []
    ]
    issuer = args.certificate_oidc_issuer or f"/{args.certificate_oidc_issuer_regexp}/"
    return " or ".join(f"{w} ({issuer})" for w in who)


def _identity_flags_given(args: argparse.Namespace) -> bool:
    names = [
        "certificate_identity",
        "certificate_identity_regexp",
        "certificate_oidc_issuer",
        "certificate_oidc_issuer_regexp",
    ] + [f"certificate_github_workflow_{suffix}" for suffix, _, _ in GITHUB_FLAGS]
    return any(getattr(args, name) is not None for name in names)


def _trusted_root(args: argparse.Namespace) -> TrustedRoot:
    from keyless.client.trust import load_trust_config, load_trusted_root, production_trusted_root

    if args.trusted_root:
        return load_trusted_root(args.trusted_root)
    if args.trust_config:
        return load_trust_config(args.trust_config)
    if args.server:
        from keyless.client.trust.tuf import fetch_server_trusted_root

        return fetch_server_trusted_root(args.server, refresh_trust=args.refresh_trust)
    return production_trusted_root()


def _logged(log_index: int | None) -> str:
    """Where the signature was logged, or that a log-less instance's timestamp stands in."""
    if log_index is None:
        return "no log entry (RFC 3161 timestamp of a log-less instance)"
    return f"log index {log_index}"
