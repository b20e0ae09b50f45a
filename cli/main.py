"""The `keyless` command line: builds the parser, dispatches, and is the only error boundary."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

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


class CLIError(Exception):
    """A failure to report to the user as one line, with an optional hint."""

    # Also recognised when this module runs as `python -m keyless.cli.main`, where the class
    # raised (keyless.cli.main.CLIError) is not this `__main__` copy of it.
    user_facing = True

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


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
    """Run `keyless` with `argv`; returns the exit code (0 ok, 1 failure, 2 usage)."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
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
