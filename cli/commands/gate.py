"""`keyless gate`: the Kubernetes admission webhook (`serve`) and its manifests (`manifests`).

The webhook judges with the same evaluator as `keyless policy check`, over the same
ClusterImagePolicy files and trust roots, so a pipeline and the cluster reach one verdict. The
server itself lives in `server.gate`; this module only reads flags and starts it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from keyless.cli.main import UsageError

DEFAULT_NAMESPACE = "keyless-system"
DEFAULT_IMAGE = "keyless:latest"
DEFAULT_PORT = 8443
DEFAULT_TIMEOUT_SECONDS = 25  # the webhook's timeoutSeconds (Kubernetes caps it at 30)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h)?")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gate",
        help="the Kubernetes admission webhook that admits only signed images",
        description=(
            "An admission webhook judging every image of Pods, Deployments, ReplicaSets, "
            "StatefulSets, DaemonSets, Jobs and CronJobs against ClusterImagePolicy files, "
            "with the evaluator of `keyless policy check`."
        ),
    )
    commands = parser.add_subparsers(dest="gate_command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve POST /mutations and /validations (AdmissionReview v1) over HTTPS",
        description=(
            "Serve the webhook over HTTPS: /mutations pins each tag an enforce policy matches "
            "to its digest (name:tag@sha256:...); /validations admits an object only if every "
            "matching policy passes for each image (mode: warn policies only warn). Also "
            "GET /healthz and /metrics (Prometheus)."
        ),
    )
    _policy_arguments(serve)
    serve.add_argument(
        "--no-match-policy",
        choices=("deny", "warn", "allow"),
        help="an image no policy matches: deny (default), warn or allow",
    )
    tls = serve.add_argument_group("TLS (one of --tls-cert/--tls-key or --tls-self-signed)")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help="certificate chain (PEM)")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key (PEM)")
    tls.add_argument(
        "--tls-self-signed",
        type=Path,
        metavar="DIR",
        help="for trying it out: make (or reuse) a self-signed certificate in DIR and print "
        "its base64 caBundle",
    )
    tls.add_argument(
        "--tls-name",
        action="append",
        default=[],
        metavar="NAME",
        help="another DNS name or IP for the self-signed certificate (it always covers "
        "keyless-gate.NAMESPACE.svc, localhost and 127.0.0.1)",
    )
    serve.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help=f"the gate's namespace, for the self-signed certificate (default {DEFAULT_NAMESPACE})",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    serve.add_argument(
        "--timeout",
        type=_seconds,
        default=float(DEFAULT_TIMEOUT_SECONDS),
        metavar="DURATION",
        help="the most an answer may take (default 25s; the API server's ?timeout= lowers it)",
    )
    serve.add_argument(
        "--cache-size",
        type=int,
        default=1000,
        metavar="N",
        help="verdicts kept (default 1000; 0 turns the cache off)",
    )
    serve.add_argument(
        "--cache-ttl",
        type=_seconds,
        default=600.0,
        metavar="DURATION",
        help="how long a passing verdict is kept (default 10m)",
    )
    serve.add_argument(
        "--cache-negative-ttl",
        type=_seconds,
        default=0.0,
        metavar="DURATION",
        help="how long a failing or warning verdict is kept (default 0: not kept)",
    )
    serve.add_argument(
        "--registry-auth",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="registry credentials: a docker config.json, or an image pull secret's "
        ".dockerconfigjson; repeatable, the first file naming a registry is used "
        "(default: anonymous)",
    )
    serve.add_argument(
        "--client-ca",
        type=Path,
        metavar="FILE",
        help="CA certificates (PEM) a client certificate must chain to; Gatekeeper's external "
        "data requests must then present one (mutual TLS; the webhooks need none)",
    )
    serve.add_argument(
        "--reload-interval",
        type=_seconds,
        default=10.0,
        metavar="DURATION",
        help="how often the policy files are read again; a changed set that loads replaces the "
        "old, a bad one keeps it (default 10s, 0 never)",
    )
    serve.add_argument(
        "--decision-log",
        default="-",
        metavar="FILE",
        help="one JSON line per admission decision: '-' for standard output (the default), "
        "a file to append to, or '' for none",
    )
    serve.add_argument(
        "--allow-insecure-registry",
        action="store_true",
        help="allow plain HTTP when a registry does not speak TLS (loopback, private nets)",
    )
    serve.add_argument("--threads", type=int, default=32, help="concurrent admissions (default 32)")
    serve.set_defaults(run=run_serve, usage_error=serve.error)

    manifests = commands.add_parser(
        "manifests",
        help="print the Kubernetes YAML that installs the gate",
        description=(
            "Print a Namespace, the gate's Deployment and Service, and both webhook "
            "configurations (namespaces opt in with the label keyless.dev/include=true; "
            "failurePolicy: Fail). Apply with: keyless gate manifests | kubectl apply -f -"
        ),
    )
    manifests.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="the gate's namespace")
    manifests.add_argument(
        "--no-namespace", action="store_true", help="do not print the Namespace object"
    )
    manifests.add_argument("--image", default=DEFAULT_IMAGE, help="the keyless image")
    manifests.add_argument(
        "--ca-bundle",
        metavar="BASE64",
        help="the webhooks' caBundle (base64 PEM), as `gate serve --tls-self-signed` prints it",
    )
    manifests.add_argument(
        "--tls-self-signed",
        type=Path,
        metavar="DIR",
        help="make (or reuse) a self-signed certificate in DIR and print it as the TLS Secret, "
        "with its caBundle (for trying it out)",
    )
    manifests.add_argument(
        "--policy",
        type=Path,
        action="append",
        default=[],
        metavar="FILE_OR_DIR",
        help="a policy file, or a directory of them, to put in the keyless-gate-policies "
        "ConfigMap (else create it); checked as keyless policy check and the gate read them",
    )
    manifests.add_argument(
        "--trust-root",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a trusted_root.json for trustRootRef: NAME, put in the keyless-gate-trust ConfigMap",
    )
    manifests.add_argument(
        "--trusted-root",
        type=Path,
        metavar="FILE",
        help="the trusted_root.json of authorities without trustRootRef, put in the "
        "keyless-gate-trust ConfigMap (default: public Sigstore, shipped with keyless)",
    )
    manifests.add_argument(
        "--registry-auth-secret",
        action="append",
        default=[],
        metavar="NAME",
        help="an image pull secret (kubernetes.io/dockerconfigjson) in the gate's namespace "
        "whose credentials the gate uses; repeatable",
    )
    manifests.add_argument(
        "--no-match-policy", choices=("deny", "warn", "allow"), help="passed to gate serve"
    )
    manifests.add_argument(
        "--timeout-seconds",
        type=int,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="the webhooks' timeoutSeconds, 1 to 30 (default 25)",
    )
    manifests.add_argument("--replicas", type=int, default=2, help="gate replicas (default 2)")
    manifests.add_argument(
        "--gatekeeper",
        action="store_true",
        help="for an OPA Gatekeeper cluster: print Gatekeeper's Provider (the gate's external "
        "data), a ConstraintTemplate and a Constraint instead of the gate's own webhooks",
    )
    manifests.set_defaults(run=run_manifests, usage_error=manifests.error)


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        metavar="FILE_OR_DIR",
        action="append",
        required=True,
        help="ClusterImagePolicy YAML (multi-document), or a directory of them; repeatable",
    )
    parser.add_argument(
        "--trust-root",
        metavar="NAME=FILE",
        action="append",
        default=[],
        help="a Sigstore trusted_root.json that authorities name with trustRootRef: NAME",
    )
    parser.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="the trusted_root.json of authorities without trustRootRef "
        "(default: public Sigstore, shipped with keyless)",
    )


def _seconds(text: str) -> float:
    """`600`, `30s`, `10m` or `1h` as seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration (30s, 10m, 1h): {text!r}")
    value = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return value


def run_serve(args: argparse.Namespace) -> int:
    if args.tls_self_signed is not None and (args.tls_cert or args.tls_key):
        args.usage_error("give --tls-cert/--tls-key or --tls-self-signed, not both")
    if args.tls_self_signed is None and not (args.tls_cert and args.tls_key):
        args.usage_error("give --tls-cert and --tls-key, or --tls-self-signed DIR")
    if args.cache_size < 0 or args.threads < 1 or not 0 < args.timeout <= 30:
        args.usage_error("--cache-size must be >= 0, --threads >= 1, --timeout within (0, 30s]")
    for path in args.registry_auth:
        if not path.is_file():
            args.usage_error(f"--registry-auth {path}: no such file")
    if args.client_ca is not None:
        _check_client_ca(args)
    from keyless.cli.commands.policy import load_policies

    policies = load_policies(args)
    for line in policies.warnings:
        print(f"warning: {line}", file=sys.stderr)
    return _serve(args, policies)


def _check_client_ca(args: argparse.Namespace) -> None:
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(args.client_ca.read_bytes())
    except OSError as exc:
        args.usage_error(f"--client-ca {args.client_ca}: cannot read the file: {exc.strerror}")
    except ValueError:
        args.usage_error(f"--client-ca {args.client_ca}: not PEM CA certificates")


def _serve(args: argparse.Namespace, policies: Any) -> int:
    from keyless.server.gate import tls
    from keyless.server.gate.serve import bind, run

    if args.tls_self_signed is not None:
        names = ["localhost", "127.0.0.1", "::1", *tls.service_names(args.namespace)]
        names += args.tls_name
        cert, key = tls.self_signed(args.tls_self_signed, names)
    else:
        cert, key = args.tls_cert, args.tls_key
    tls.check_pair(cert, key)
    listener = bind(args.host, args.port)
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    count = len(policies.policies)
    print(
        f"keyless gate: listening on https://{shown}:{port} (POST /mutations, /validations; "
        f"{count} polic{'y' if count == 1 else 'ies'}, no-match-policy "
        f"{policies.no_match_policy}, fingerprint {policies.fingerprint[:16]})",
        file=sys.stderr,
    )
    if args.tls_self_signed is not None:
        print(f"keyless gate: self-signed certificate {cert}", file=sys.stderr)
        print(f"caBundle: {tls.ca_bundle(cert)}")
    sys.stdout.flush()
    sys.stderr.flush()
    run(
        lambda: _app(args, policies),
        listener,
        cert=cert,
        key=key,
        threads=args.threads,
        client_ca=args.client_ca,
    )
    return 0


def _app(args: argparse.Namespace, policies: Any) -> Any:
    """The WSGI app, built in the worker (threads and connections do not cross a fork)."""
    from keyless.cli.commands.policy import load_policies
    from keyless.server.gate.app import ExternalDataTransport, create_gate_app
    from keyless.server.gate.decisions import DecisionLog
    from keyless.server.gate.gate import GateSettings

    settings = GateSettings(
        timeout=args.timeout,
        cache_size=args.cache_size,
        cache_ttl=args.cache_ttl,
        negative_ttl=args.cache_negative_ttl,
        workers=args.threads,
    )
    return create_gate_app(
        policies,
        settings,
        registry_auth=args.registry_auth,
        allow_insecure_registry=args.allow_insecure_registry,
        decisions=DecisionLog.open(args.decision_log) if args.decision_log else None,
        reload=(lambda: load_policies(args)) if args.reload_interval > 0 else None,
        reload_interval=args.reload_interval,
        transport=ExternalDataTransport(client_cert=args.client_ca is not None),
    )


def run_manifests(args: argparse.Namespace) -> int:
    import yaml

    from keyless.server.gate.manifests import ManifestOptions, manifests

    if not 1 <= args.timeout_seconds <= 30:
        args.usage_error("--timeout-seconds must be 1 to 30 (Kubernetes' limit)")
    if args.tls_self_signed is not None and args.ca_bundle:
        args.usage_error("give --ca-bundle or --tls-self-signed, not both")
    trust: dict[str, bytes] = {}
    for entry in args.trust_root:
        name, sep, file = entry.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name) or not file:
            args.usage_error(
                f"--trust-root wants NAME=FILE (NAME: letters, digits, ._-), not {entry!r}"
            )
        trust[name] = _read(args, Path(file))
    files = _policy_files(args)
    policies = {path.name: _read(args, path) for path in files}
    if len(policies) != len(files):
        args.usage_error("--policy files must have distinct names")
    trusted_root = _read(args, args.trusted_root) if args.trusted_root else None
    if files:
        _check_policies(args, files)
    tls_pair = None
    if args.tls_self_signed is not None:
        from keyless.server.gate import tls

        cert, key = tls.self_signed(args.tls_self_signed, tls.service_names(args.namespace))
        tls_pair = (cert.read_bytes(), key.read_bytes())
    options = ManifestOptions(
        namespace=args.namespace,
        image=args.image,
        create_namespace=not args.no_namespace,
        ca_bundle=args.ca_bundle,
        tls=tls_pair,
        policies=policies,
        trust_roots=trust,
        trusted_root=trusted_root,
        registry_auth_secrets=tuple(args.registry_auth_secret),
        no_match_policy=args.no_match_policy,
        timeout_seconds=args.timeout_seconds,
        replicas=args.replicas,
        gatekeeper=args.gatekeeper,
    )
    print(yaml.dump_all(manifests(options), Dumper=_dumper(), sort_keys=False), end="")
    return 0


def _dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        """Multi-line strings (policy files, PEM) as literal blocks, readable in review; no
        anchors or aliases (policy and manifest readers refuse them)."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def _policy_files(args: argparse.Namespace) -> list[Path]:
    """The files of --policy, a directory's policy files (as the gate reads one) in its place."""
    from keyless.client.policy.cip import policy_files

    problems: list[str] = []
    files = policy_files(args.policy, problems)
    if problems:
        args.usage_error("; ".join(problems))
    return files


def _check_policies(args: argparse.Namespace, files: list[Path]) -> None:
    """Refuse what `keyless policy check` and the gate would refuse in these policies, under
    this trust: so the manifests never install what the gate would refuse to start with.

    Raises:
        PolicyFileError: the policies' problems (exit 2).
        UsageError: a trusted root that cannot be used.
    """
    from keyless.client.policy import load_policy_set, load_trust_file
    from keyless.client.verify import TrustRootError

    try:
        named = {
            name: load_trust_file(name, Path(file))
            for name, _, file in (entry.partition("=") for entry in args.trust_root)
        }
        default = load_trust_file("", args.trusted_root) if args.trusted_root else None
    except TrustRootError as exc:
        raise UsageError(exc.detail, reason=exc.reason) from exc
    load_policy_set(
        files, trust_files=named, default_trust=default, no_match_policy=args.no_match_policy
    )


def _read(args: argparse.Namespace, path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        args.usage_error(f"cannot read {path}: {exc.strerror}")
    if len(data) > 1024 * 1024:
        args.usage_error(f"{path} is larger than a ConfigMap can hold (1 MiB)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        args.usage_error(f"{path} is not UTF-8 text")
    return data
