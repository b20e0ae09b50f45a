"""`keyless policy check`: judge images against ClusterImagePolicy files in a CD pipeline.

The same evaluator as `keyless gate`, so a pipeline and the cluster reach the same verdict.
Exit codes a pipeline can act on: 0 every image passed (warnings allowed), 1 a policy refused
an image, 2 a usage or policy-file error, 3 could not decide (registry or trust unreachable).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from keyless.cli.commands import _images

if TYPE_CHECKING:
    from collections.abc import Callable

    from keyless.client.oci import RegistryClient
    from keyless.client.policy import Evaluator, ImageVerdict, PolicySet

# 2, a usage or policy-file error, is argparse's and PolicyFileError's / WorkloadError's own.
EXIT_PASS, EXIT_REFUSED, EXIT_UNDECIDED = 0, 1, 3


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="judge images against ClusterImagePolicy files (CD pipelines)",
        description="Image policies in policy-controller's ClusterImagePolicy format.",
    )
    commands = parser.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="check images, or the images of Kubernetes manifests, against policies",
        description=(
            "Resolve each image to its digest and judge it against every matching "
            "ClusterImagePolicy: all matching policies must pass, and inside a policy any "
            "one authority is enough. issuerRegExp and subjectRegExp must match the WHOLE "
            "value (anchored, Python re.fullmatch). Exit 0 when every image passes (mode: warn "
            "failures only warn), 1 when a policy refuses an image, 2 for a usage or policy "
            "file error, 3 when the outcome could not be decided (registry unreachable)."
        ),
    )
    check.add_argument(
        "--policy",
        metavar="FILE_OR_DIR",
        action="append",
        required=True,
        help="ClusterImagePolicy YAML (multi-document), or a directory of them; repeatable",
    )
    check.add_argument(
        "--trust-root",
        metavar="NAME=FILE",
        action="append",
        default=[],
        help="a Sigstore trusted_root.json that authorities name with trustRootRef: NAME",
    )
    check.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="the trusted_root.json of authorities without trustRootRef "
        "(default: public Sigstore, shipped with keyless)",
    )
    check.add_argument(
        "--no-match-policy",
        choices=("deny", "warn", "allow"),
        help="an image no policy matches: deny (default), warn or allow; overrides the "
        "config-policy-controller ConfigMap",
    )
    check.add_argument(
        "--resource",
        metavar="FILE",
        action="append",
        default=[],
        help="a Kubernetes manifest (multi-document YAML): check every image of its Pods, "
        "Deployments, StatefulSets, DaemonSets, Jobs, CronJobs and ReplicaSets",
    )
    check.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="result format"
    )
    check.add_argument("images", metavar="IMAGE", nargs="*", help="image references to check")
    _images.add_registry_arguments(check)
    check.set_defaults(run=run, usage_error=check.error)


def run(args: argparse.Namespace) -> int:
    import json

    from keyless.client.policy.workloads import images_in_files

    if not args.images and not args.resource:
        args.usage_error("give at least one IMAGE or --resource")
    evaluator_for = _evaluator(args)
    images = list(args.images) + (images_in_files(args.resource) if args.resource else [])
    with _images.registry_hints(args), _images.registry_client(args) as client:
        evaluator = evaluator_for(client)
        verdicts = [_judge(evaluator, image) for image in dict.fromkeys(images)]
    if args.output == "json":
        print(json.dumps({"images": [v.to_json() for v in verdicts]}, indent=2))
    else:
        for verdict in verdicts:
            _print_text(verdict)
    outcomes = {v.outcome for v in verdicts}
    if "error" in outcomes:
        return EXIT_UNDECIDED
    if "fail" in outcomes:
        return EXIT_REFUSED
    return EXIT_PASS


def _evaluator(args: argparse.Namespace) -> Callable[[RegistryClient], Evaluator]:
    """Load the policies and trust roots; the evaluator is built once a client exists."""
    from keyless.client.policy import Evaluator

    policies = load_policies(args)
    for line in policies.warnings:
        print(f"warning: {line}", file=sys.stderr)
    return lambda client: Evaluator(policies, registry=lambda: client)


def load_policies(args: argparse.Namespace) -> PolicySet:
    """The policy set named by --policy, --trust-root, --trusted-root and --no-match-policy
    (shared with `keyless gate serve`, which takes the same flags).

    Raises:
        PolicyFileError: one line per problem in the policy or trust files.
    """
    from pathlib import Path

    from keyless.client.policy import PolicyFileError, load_policy_set, load_trust_file
    from keyless.client.verify import TrustRootError

    problems: list[str] = []
    named = {}
    for entry in args.trust_root:
        name, sep, file = entry.partition("=")
        if not sep or not name or not file:
            args.usage_error(f"--trust-root wants NAME=FILE, not {entry!r}")
        try:
            named[name] = load_trust_file(name, Path(file))
        except TrustRootError as exc:
            problems.append(f"--trust-root {name}: {exc.detail}")
    default = None
    if args.trusted_root:
        try:
            default = load_trust_file("", Path(args.trusted_root))
        except TrustRootError as exc:
            problems.append(f"--trusted-root: {exc.detail}")
    if problems:
        raise PolicyFileError(problems)
    return load_policy_set(
        args.policy, trust_files=named, default_trust=default, no_match_policy=args.no_match_policy
    )


def _judge(evaluator: Evaluator, image: str) -> ImageVerdict:
    """The verdict for one image as written: an invalid reference is refused (nothing can
    verify it), a registry failure is `error` (could not decide)."""
    from keyless.client.oci.errors import InvalidReferenceError, RegistryError
    from keyless.client.policy import ImageVerdict

    try:
        resolved = evaluator.resolve(image)
    except InvalidReferenceError as exc:
        return ImageVerdict(image, "", (), "fail", (f"{image}: {exc.message}",))
    except RegistryError as exc:
        return ImageVerdict(image, "", (), "error", (f"could not resolve {image}: {exc.message}",))
    return evaluator.evaluate(resolved)


def _print_text(verdict: ImageVerdict) -> None:
    """One summary line per image on stdout; the reasons on stderr."""
    label = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "error": "ERROR"}[verdict.outcome]
    passed = [p for p in verdict.policies if p.passed]
    signers = sorted(
        {f"{p.name}/{a.name}: {a.message}" for p in passed for a in p.authorities if a.passed}
    )
    print(f"{label} {verdict.image}" + (f" ({'; '.join(signers)})" if signers else ""))
    for message in verdict.messages:
        prefix = "warning" if message in verdict.warnings else "error"
        print(f"{prefix}: {message}", file=sys.stderr)
