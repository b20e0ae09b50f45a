"""The `keyless` command line: builds the parser, dispatches, and is the only error boundary."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from keyless.core.errors import Error, ProblemsError, Reason

# Each command and the module under `keyless.cli.commands` that adds it (`add_parser(subparsers)`,
# `run(args)`), in the order help lists them. A command line that names its command imports
# that module alone, and heavy imports stay inside each `run`.
COMMANDS: dict[str, str] = {
    "serve": "serve",
    "dev-token": "dev_token",
    "sign": "sign",
    "sign-bundle": "sign_bundle",
    "trust": "trust",
    "verify": "verify",
    "verify-bundle": "verify_bundle",
    "tree": "tree",
    "monitor": "monitor",
    "audit": "audit",
    "ca": "ca",
    "policy": "policy",
    "gate": "gate",
    "attest": "attest",
    "download": "download",
    "verify-attestation": "verify_attestation",
    "generate-key-pair": "keys",
    "import-key-pair": "keys",
    "public-key": "keys",
    "witness": "witness",
}


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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser: with every subcommand, or, for an `argv` that names its command,
    with that one alone (the other modules and their flags cost a start-up nothing uses).

    Anything else (no command, an unknown one, `-h` before it) gets every subcommand, so
    help and usage errors read as they always do.
    """
    parser = argparse.ArgumentParser(
        prog="keyless",
        description="Keyless code signing: sign and verify by identity, and run the servers.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show causes and debug logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    named = _named_command(argv) if argv is not None else None
    modules = dict.fromkeys(COMMANDS.values()) if named is None else (named,)
    for module in modules:
        importlib.import_module(f"keyless.cli.commands.{module}").add_parser(subparsers)
    return parser


def _named_command(argv: Sequence[str]) -> str | None:
    """The module of the command `argv` runs, when it plainly names one after the global
    flags; None for anything else."""
    for arg in argv:
        if arg in ("-v", "--verbose"):
            continue
        return COMMANDS.get(arg)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run `keyless` with `argv`; returns the exit code: 0, the command's own, or the failure's
    (1 unless its class says otherwise; argparse's usage errors exit 2)."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
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
