"""`keyless dev-token`: print a token from a running server's development issuer."""

from __future__ import annotations

import argparse
import json
from typing import Any

from keyless.cli.main import CLIError

DEFAULT_SERVER = "http://127.0.0.1:8080"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev-token",
        help="print a token from the development issuer",
        description=(
            "Ask a dev-mode `keyless serve` for an identity token and print it on stdout. "
            "Choose --email for a person, or --github-actions for a token shaped like a "
            "GitHub Actions workflow's."
        ),
    )
    parser.add_argument("--server", default=DEFAULT_SERVER, help=f"default {DEFAULT_SERVER}")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="mint an email token for this address")
    who.add_argument("--github-actions", action="store_true", help="mint a GitHub Actions token")
    parser.add_argument("--subject", help="the sub claim of an email token (default: the email)")
    parser.add_argument("--repository", help="owner/name (GitHub Actions)")
    parser.add_argument("--workflow", help="workflow file name, e.g. release.yml (GitHub Actions)")
    parser.add_argument("--ref", default="refs/heads/main", help="git ref (GitHub Actions)")
    parser.add_argument("--sha", help="commit SHA (GitHub Actions)")
    parser.add_argument("--event-name", help="triggering event, default push (GitHub Actions)")
    parser.add_argument("--environment", help="deployment environment (GitHub Actions)")
    parser.add_argument("--audience", default="sigstore", help="aud claim (default sigstore)")
    parser.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra claim; VALUE is parsed as JSON when it can be (repeatable)",
    )
    parser.add_argument(
        "--expires-in",
        type=int,
        default=600,
        metavar="SECONDS",
        help="lifetime; negative for an already expired token (default 600)",
    )
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    import requests

    body: dict[str, Any] = {
        "audience": args.audience,
        "expires_in": args.expires_in,
        "claims": dict(_claim(args.parser, item) for item in args.claim),
    }
    if args.github_actions:
        if not args.repository or not args.workflow:
            args.parser.error("--github-actions needs --repository and --workflow")
        path = "/oidc/github/mint"
        body.update(repository=args.repository, workflow=args.workflow, ref=args.ref)
        optional = {"sha": args.sha, "event_name": args.event_name, "environment": args.environment}
        body.update({key: value for key, value in optional.items() if value})
    else:
        path = "/oidc/mint"
        body["email"] = args.email
        if args.subject:
            body["subject"] = args.subject
    url = args.server.rstrip("/") + path
    try:
        response = requests.post(url, json=body, timeout=10)
    except requests.RequestException as exc:
        raise CLIError(
            f"cannot reach {args.server}: {exc.__class__.__name__}",
            hint="is `keyless serve` running in dev mode there?",
        ) from exc
    if response.status_code == 404:
        raise CLIError(f"{args.server} has no development issuer", hint="it must run in dev mode")
    payload = _json(response)
    if response.status_code != 200 or "id_token" not in payload:
        reason = payload.get("error_description") or payload.get("message") or response.reason
        raise CLIError(f"the development issuer refused: {reason}")
    print(payload["id_token"])
    return 0


def _claim(parser: argparse.ArgumentParser, item: str) -> tuple[str, Any]:
    key, separator, value = item.partition("=")
    if not separator or not key:
        parser.error(f"--claim expects KEY=VALUE, got {item!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _json(response: Any) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}
