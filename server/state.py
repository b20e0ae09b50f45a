"""The server's state directory: generated keys and databases, created once and reused.

Keys are written with 0600 permissions, atomically (a temporary file renamed into place), and
never overwritten: two workers starting together both end up using the first key written.
A server start (`starting()`) generates keys only on a true first run, when the directory is
empty: a key missing later was lost, and a new one would silently become a new CA, log or
issuer. A key file that cannot be read, is not a private key, or that others may read or write
stops the start with one line naming it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

MAX_KEY_FILE_BYTES = 64 * 1024
_LOCK_FILE = ".keyless-start.lock"


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
        # Outside a server start (`keyless ca rotate-tuf-root`), a missing key is a new one.
        self.generate_missing = True

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Create the directory and hold it for one server start: keys missing from a
        directory that was not empty are refused. Starts (workers) queue on a lock, so the
        first one creates everything and the others find it."""
        self.create()
        fd = os.open(self.path / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.generate_missing = not any(
                entry.name != _LOCK_FILE for entry in os.scandir(self.path)
            )
            yield
        finally:
            os.close(fd)

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
            if not self.generate_missing:
                raise StateDirError(
                    f"key file {path} is missing, and {self.path} is not a first run: a new "
                    "key would silently replace what clients trust",
                    hint="restore the file from a backup of the state directory",
                )
            pem = generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_private_file(path, pem)
        return read_private_key(path)


def read_private_key(path: Path) -> PrivateKeyTypes:
    """An unencrypted PEM private key from a file only its owner may read and write.

    Raises:
        StateDirError: the file is missing, unreadable, readable or writable by others, or
            not a private key.
    """
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise StateDirError(f"key file {path} cannot be read: {exc.strerror}") from exc
    if mode & 0o077:
        raise StateDirError(
            f"key file {path} is readable or writable by others (mode {mode & 0o777:o})",
            hint=f"chmod 600 {path}, and replace the key if others may have read it",
        )
    if len(data) > MAX_KEY_FILE_BYTES:
        raise StateDirError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise StateDirError(
            f"key file {path} is not an unencrypted PEM private key (corrupt?)",
            hint="restore the file from a backup of the state directory",
        ) from exc


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
