"""The `keyless` command line: builds the parser, dispatches, and is the only error boundary."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from keyless.core.errors import Error, ProblemsError, Reason

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


class UsageError(CLIError):
    """The command was given something it cannot use (exit 2, as argparse's usage errors)."""

    exit_code = 2


class UndecidedError(CLIError):
    """The outcome could not be decided: a registry, log or server failed, not what was checked
    (exit 3)."""

    exit_code = 3


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
    """Run `keyless` with `argv`; returns the exit code: 0, the command's own, or the failure's
    (1 unless its class says otherwise; argparse's usage errors exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    return run_reporting(lambda: args.run(args), verbose=args.verbose)


def run_reporting(
    run: Callable[[], int | None], *, verbose: bool = False, github: bool = False
) -> int:
    """Run a command and return its exit code. An expected failure, a `keyless.core.errors.Error`,
    is reported and exits with the error's `exit_code`; anything else is a bug and raises.

    `github` reports as GitHub Actions' `::error` annotation (the Action's entry point).
    """
    try:
        return run() or 0
    except KeyboardInterrupt:
        return 130
    except Error as exc:
        report(exc, verbose=verbose, github=github)
        return exc.exit_code


def report(exc: Error, *, verbose: bool = False, github: bool = False) -> None:
    """Say on stderr why a command failed: `error: <message>` (one line per problem for a
    list whose problems name their own place), `hint: <hint>`, and with `verbose` the cause."""
    if github:
        hint = f" ({exc.hint})" if exc.hint else ""
        print(f"::error title=keyless::{exc.message}{hint}", file=sys.stderr)
        return
    each = isinstance(exc, ProblemsError) and exc.one_line_per_problem
    for line in exc.problems if each else [exc.message]:
        print(f"error: {line}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    if verbose and exc.__cause__ is not None:
        print(f"cause: {exc.__cause__!r}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
