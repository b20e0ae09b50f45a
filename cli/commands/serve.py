"""`keyless serve`: run the CA, the logs and (in dev mode) the development issuer."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the keyless servers",
        description=(
            "Run every keyless service on one origin. With no --config: dev mode on "
            "127.0.0.1:8080 with generated keys and the development OIDC issuer (never for "
            "production). With --config FILE: production mode, validated before start."
        ),
    )
    parser.add_argument("--config", type=Path, help="production configuration (YAML)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind, used exactly (default 8080)")
    parser.add_argument("--state-dir", type=Path, help="where generated keys and logs live")
    parser.add_argument("--new-log", action="store_true", help="start a new signature log")
    parser.add_argument(
        "--adopt-existing-log",
        action="store_true",
        help="take a log database that has no checkpoint file as the log's latest state (a "
        "log from before checkpoint files, or an instance joining a shared PostgreSQL log)",
    )
    parser.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="URL",
        help="dev mode: a witness (keyless witness serve) that cosigns the logs' checkpoints, "
        "its key taken on first use and kept in the state directory; repeatable (with "
        "--config: log: witnesses:)",
    )
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from keyless.server.config import dev_config, load_server_config

    overrides = {"host": args.host, "port": args.port, "state_dir": args.state_dir}
    overrides["new_log"] = args.new_log
    if args.config:
        if args.witness:
            args.parser.error("with --config, witnesses are set in log: witnesses:")
        config = load_server_config(args.config, **overrides)
    else:
        config = dev_config(**overrides, witnesses=tuple(args.witness))
    config = replace(config, adopt_existing_log=args.adopt_existing_log)
    import gc

    from keyless.server.wsgi import StartupWarnings, bind, listen, prepare_metrics_dir, run_gunicorn

    # Before anything imports prometheus-client: the workers' metrics go to one directory.
    prepare_metrics_dir()
    from keyless.server.app import create_app

    # The port first: a busy port is one error, before any state is created or announced.
    # Connections are accepted only once the app has been built.
    listener = bind(config)
    try:
        # Build the app once here, before any worker exists: every key, chain and database
        # problem surfaces as one clear error now, and first-run state is created once. The
        # app is then dropped (closing its database connections) so nothing crosses the fork.
        warnings = StartupWarnings()
        with warnings.once():
            preflight = create_app(config)
        del preflight
        gc.collect()
    except BaseException:
        listener.close()
        raise
    listen(listener, config)
    _print_banner(config, listener.getsockname())
    run_gunicorn(config, listener=listener, warnings=warnings)
    return 0


def _print_banner(config: Any, bound: tuple[Any, ...]) -> None:
    url = config.public_url
    host, port = bound[0], bound[1]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [
        f"keyless listening on {address} (state in {config.state_dir})",
        f"  public URL:   {url}",
        f"  trust config: {url}/api/v1/trust/client_trust_config.json",
        f"  TUF mirror:   {url}/tuf (root: keyless trust tuf-root --server {url} -o root.json)",
    ]
    if not config.production:
        lines.insert(
            0,
            "WARNING: dev mode (keys generated in the state directory, the development "
            "issuer mounted). Not for production.",
        )
    if config.dev_issuer:
        token = f'"$(keyless dev-token --server {url} --email alice@example.com)"'
        lines += [
            f"  development OIDC issuer: {url}/oidc (GitHub-Actions-shaped: {url}/oidc/github)",
            f"  get a token:  keyless dev-token --server {url} --email alice@example.com",
            f"                keyless dev-token --server {url} --github-actions "
            "--repository acme/app --workflow release.yml --ref refs/heads/main",
            f"  sign:    keyless sign --server {url} --identity-token {token} FILE",
            f"  verify:  keyless verify --server {url} --certificate-identity alice@example.com "
            f"--certificate-oidc-issuer {url}/oidc FILE",
        ]
    print("\n".join(lines), file=sys.stderr, flush=True)
