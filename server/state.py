"""The server's state directory: generated keys and databases, created once and reused.

Keys are written with 0600 permissions, atomically (a temporary file renamed into place), and
never overwritten: two workers starting together both end up using the first key written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def default_state_dir() -> Path:
    """`$XDG_STATE_HOME/keyless`, else `~/.local/state/keyless`."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "keyless"


class StateDirError(Exception):
    """The state directory cannot be used."""

    user_facing = True

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class StateDir:
    """A directory holding the server's generated keys, with owner-only permissions."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self) -> None:
        """Create the directory (0700) if missing; refuse one others can write to."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            mode = self.path.stat().st_mode
        except OSError as exc:
            raise StateDirError(
                f"cannot create state directory {self.path}: {exc.strerror}"
            ) from exc
        if mode & 0o022:
            raise StateDirError(
                f"state directory {self.path} is writable by others (mode {mode & 0o777:o})",
                hint=f"chmod go-w {self.path}",
            )

    def file(self, name: str) -> Path:
        return self.path / name

    def private_key(self, name: str, generate: Callable[[], PrivateKeyTypes]) -> PrivateKeyTypes:
        """The PEM private key stored as `name`, generated and saved (0600) on first use."""
        path = self.path / name
        if not path.exists():
            pem = generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_private_file(path, pem)
        return serialization.load_pem_private_key(path.read_bytes(), password=None)


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0600, atomically, unless `path` already exists."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # Linking fails if another process won the race; its key is the one to keep.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
