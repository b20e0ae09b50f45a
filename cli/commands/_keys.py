"""Command-line glue for long-lived keys: the key password, overwrite prompts, key files.

The password follows cosign: `COSIGN_PASSWORD` when it is set (even to the empty string) wins;
else, on a terminal, a prompt (twice when a key is created); else all of standard input, taken
as is (cosign does not strip a trailing newline either). Prompts go to the terminal, never to
stdout.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.cli.main import CLIError

if TYPE_CHECKING:
    from keyless.client.keys import KeySigner, VerifierKey

PASSWORD_VARIABLE = "COSIGN_PASSWORD"
MAX_PASSWORD_BYTES = 64 * 1024
PROMPT = "Enter password for private key: "
PROMPT_AGAIN = "Enter password for private key again: "


def key_password(*, confirm: bool) -> bytes:
    """The key password, from `COSIGN_PASSWORD`, a terminal prompt or standard input.

    Raises:
        CLIError: the two entries differ, or standard input holds more than the bound.
    """
    value = os.environ.get(PASSWORD_VARIABLE)
    if value is not None:
        return value.encode()
    if sys.stdin.isatty():
        first = getpass.getpass(PROMPT)
        if confirm and getpass.getpass(PROMPT_AGAIN) != first:
            raise CLIError("passwords do not match")
        return first.encode()
    data = sys.stdin.buffer.read(MAX_PASSWORD_BYTES + 1)
    if len(data) > MAX_PASSWORD_BYTES:
        raise CLIError(f"the password on standard input is longer than {MAX_PASSWORD_BYTES} bytes")
    return data


def password_source() -> Callable[[], bytes]:
    """The password asker a signer calls, only if its key is encrypted."""
    return lambda: key_password(confirm=False)


def signer(args: argparse.Namespace, reference: str) -> KeySigner:
    """The signer `reference` names; a bad reference is a usage error (exit 2)."""
    from keyless.client.keys import KeyReferenceError, load_signer

    try:
        return load_signer(reference, password=password_source())
    except KeyReferenceError as exc:
        _usage_error(args)(exc.message)
        raise  # unreachable: a usage error exits


def verifier_keys(args: argparse.Namespace, references: list[str]) -> list[VerifierKey]:
    """The public keys `references` name; a bad reference, or one naming something that is not
    an allowed public key, is a usage error (exit 2).

    Raises:
        NetworkError: a key URL could not be fetched (the caller's "could not decide").
    """
    from keyless.client.keys import KeyFileError, KeyReferenceError, load_verifier_key

    keys = []
    for reference in references:
        try:
            keys.append(load_verifier_key(reference))
        except (KeyReferenceError, KeyFileError) as exc:
            _usage_error(args)(exc.message)
    return keys


def _usage_error(args: argparse.Namespace) -> Callable[[str], None]:
    """The command's usage-error exit (`usage_error`, or its parser's `error`)."""
    return getattr(args, "usage_error", None) or args.parser.error


def check_overwrite(paths: list[Path], *, yes: bool) -> None:
    """Ask before replacing an existing key file, as cosign does; `--yes` skips the question.

    Raises:
        CLIError: the user said no, or there is no terminal to ask on and no `--yes`.
    """
    for path in paths:
        if not path.exists() or yes:
            continue
        if not sys.stdin.isatty():
            raise CLIError(f"{path} already exists; pass --yes to overwrite it")
        print(f"File {path} already exists. Overwrite? [y/N] ", end="", file=sys.stderr)
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise CLIError(f"not overwriting {path}")


def write_key_pair(prefix: str, private_pem: bytes, public_pem: bytes) -> None:
    """Write `<prefix>.key` (mode 0600) and `<prefix>.pub` (0644), each whole or not at all."""
    private_path, public_path = key_pair_paths(prefix)
    _write(private_path, private_pem, mode=0o600)
    print(f"Private key written to {private_path}", file=sys.stderr)
    write_public_key(public_path, public_pem)


def write_public_key(path: Path, public_pem: bytes) -> None:
    """Write a PEM public key (mode 0644), whole or not at all, and say so as cosign does."""
    _write(path, public_pem, mode=0o644)
    print(f"Public key written to {path}", file=sys.stderr)


def key_pair_paths(prefix: str) -> list[Path]:
    return [Path(f"{prefix}.key"), Path(f"{prefix}.pub")]


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Create a temporary file with `mode` from the start (a private key is never readable by
    others, not even for a moment), then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)  # the umask may have narrowed it; the final mode is exact
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise CLIError(f"cannot write {path}: {exc.strerror}") from exc
