"""The `keyless` command line: builds the parser, dispatches, and is the only error boundary."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from keyless.core.errors import Error, Reason

# Subcommand modules under `keyless.cli.commands`, each with `add_parser(subparsers)` and
# `run(args)`.
# They are imported when the parser is built; heavy imports stay inside each `run`.
COMMANDS: tuple[str, ...] = (
    "serve",
    "dev_token",
    "sign",
    "sign_bundle",
    "trust",
    "verify",
    "verify_bundle",
    "tree",
    "monitor",
    "audit",
    "ca",
    "policy",
    "gate",
    "attest",
    "verify_attestation",
    "keys",
)


class CLIError(Error):
    """A failure to report to the user as one line, with an optional hint."""

    reason = Reason.CLI_ERROR


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="keyless",
        description="Keyless code signing: sign and verify by identity, and run the servers.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show causes and debug logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"keyless.cli.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `keyless` with `argv`; returns the exit code (0 ok, 1 failure, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message, hint = _describe(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        if args.verbose and exc.__cause__ is not None:
            print(f"cause: {exc.__cause__!r}", file=sys.stderr)
        return 1


def _describe(exc: Exception) -> tuple[str | None, str | None]:
    """The user-facing message and hint of an expected failure, or (None, None) for a bug."""
    if isinstance(exc, CLIError):
        return exc.message, exc.hint
    message = getattr(exc, "message", None)
    if isinstance(message, str) and getattr(exc, "user_facing", False):
        return message, getattr(exc, "hint", None)
    return None, None


if __name__ == "__main__":
    sys.exit(main())
