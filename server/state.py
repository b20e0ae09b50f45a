"""The server's state directory: generated keys and databases, created once and reused.

Keys are written with 0600 permissions, atomically (a temporary file renamed into place), and
never overwritten: two workers starting together both end up using the first key written.
A server start (`starting()`) generates keys only on a true first run, when the directory holds
no file keyless owns (`lost+found`, dotfiles and other files are ignored, and named): a key
missing later was lost, and a new one would silently become a new CA, log or issuer. A key file
that cannot be read, is not a private key, or that others may read or write stops the start
with one line naming it (`check_key_file_mode`: owner only, or a Kubernetes Secret mounted for
this pod).

A first run is all or nothing (`generating()`): everything is made in a scratch directory
inside the state directory, which is renamed to mark it complete, and only then moved into
place. A start after a crash discards an incomplete scratch directory (nothing of it was in
place) and finishes moving a complete one; a state directory holding keyless files but no
published trust (a first start from before this, stopped half-way) is refused with a hint.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from keyless.core.errors import Error, Reason

MAX_KEY_FILE_BYTES = 64 * 1024
_LOCK_FILE = ".keyless-start.lock"
# A first run in the making, and the same directory once everything in it is made.
_MAKING = ".keyless-first-run"
_MADE = ".keyless-first-run.done"
# Every name keyless writes at the top of a state directory (tests/e2e/test_state_dir.py checks
# a first run makes nothing else): keys, log databases with SQLite's sidecars, checkpoint
# files, the generated CA and the TUF repository. Anything else is not keyless's.
_OWNED = re.compile(
    r"(?:rekor|rekor-v2|ct)(?:-key\.pem|-checkpoint|\.sqlite(?:-wal|-shm|-journal|-writelock)?)"
    r"|tsa-(?:key|chain)\.pem|oidc-dev-issuer-key\.pem|witness-keys\.json"
    r"|tuf-(?:root|targets|snapshot|timestamp)-key(?:\.v[1-9][0-9]*)?\.pem|ca|tuf",
    re.ASCII,
)
# The last file a start writes: a state directory without it never finished one.
PUBLISHED_MARK = Path("tuf") / "timestamp.json"

log = logging.getLogger(__name__)


def is_keyless_file(name: str) -> bool:
    """Whether `name`, at the top of a state directory, is a file or folder keyless owns."""
    return _OWNED.fullmatch(name) is not None


def default_state_dir() -> Path:
    """`$XDG_STATE_HOME/keyless`, else `~/.local/state/keyless`."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "keyless"


class StateDirError(Error):
    """The state directory cannot be used."""

    reason = Reason.STATE_DIR_UNUSABLE


class StateDir:
    """A directory holding the server's generated keys, with owner-only permissions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Outside a server start (`keyless ca rotate-tuf-root`), a missing key is a new one.
        self.generate_missing = True

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Create the directory and hold it for one server start: keys missing from a
        directory that holds keyless files are refused. Starts (workers) queue on a lock, so
        the first one creates everything and the others find it.

        Raises:
            StateDirError: the directory cannot be used, or holds a half-made state.
        """
        self.create()
        fd = os.open(self.path / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._recover()
            owned, ignored = self._entries()
            self.generate_missing = not owned
            if self.generate_missing and ignored:
                log.warning(
                    "first run in %s: ignoring %s (not keyless files)",
                    self.path,
                    ", ".join(ignored),
                )
            if owned and not (self.path / PUBLISHED_MARK).exists():
                raise StateDirError(
                    f"the state directory {self.path} holds keyless files ({', '.join(owned)}) "
                    f"but no published trust ({PUBLISHED_MARK}): a first start that stopped "
                    "half-way, or a damaged state directory",
                    hint="if no server ever served from it, move those files out and start "
                    "again (a first run); otherwise restore the state directory from a backup",
                )
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def generating(self) -> Iterator[StateDir]:
        """A scratch state directory for a first run; once the block succeeds, everything made
        in it is moved into this one (all or nothing), and this start is no longer a first run.
        Call it inside `starting()`.

        Raises:
            StateDirError: a file to move in is already in place (made by someone else).
        """
        if not self.generate_missing:
            raise RuntimeError("generating() outside a first run")
        making = self.path / _MAKING
        making.mkdir(mode=0o700)
        try:
            yield StateDir(making)
            _sync_tree(making)
        except BaseException:
            shutil.rmtree(making, ignore_errors=True)
            raise
        os.rename(making, self.path / _MADE)
        _sync_directory(self.path)
        self._move_in(self.path / _MADE)
        self.generate_missing = False

    def _recover(self) -> None:
        """Finish or discard a first run that a crash interrupted."""
        if (self.path / _MAKING).exists():
            log.warning(
                "%s: discarding %s, an interrupted first run (nothing of it was in place)",
                self.path,
                _MAKING,
            )
            shutil.rmtree(self.path / _MAKING)
        if (self.path / _MADE).exists():
            log.warning("%s: finishing an interrupted first run (%s)", self.path, _MADE)
            self._move_in(self.path / _MADE)

    def _move_in(self, made: Path) -> None:
        """Rename every entry of `made` into place, then remove it (durably)."""
        for entry in sorted(os.listdir(made)):
            if entry.startswith("."):
                continue  # lock files: each process makes its own
            target = self.path / entry
            if target.exists():
                raise StateDirError(
                    f"cannot finish the first run of {self.path}: {target} is already there "
                    f"(the new one is in {made})",
                    hint=f"move {target} or {made} out, and start again",
                )
            os.rename(made / entry, target)
        _sync_directory(self.path)
        shutil.rmtree(made)
        _sync_directory(self.path)

    def _entries(self) -> tuple[list[str], list[str]]:
        """The names in the directory keyless owns, and the others (but its lock file)."""
        names = sorted(entry.name for entry in os.scandir(self.path))
        owned = [name for name in names if is_keyless_file(name)]
        ignored = [name for name in names if name not in owned and name != _LOCK_FILE]
        return owned, ignored

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
            found = os.fstat(handle.fileno())
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except PermissionError as exc:
        raise StateDirError(
            f"key file {path} cannot be read: {exc.strerror}",
            hint="a Kubernetes Secret is owned by root: mount it with defaultMode: 0400 and "
            "give the pod an fsGroup, through which this process reads it (README: 'Keys "
            "from Kubernetes Secrets')",
        ) from exc
    except OSError as exc:
        raise StateDirError(f"key file {path} cannot be read: {exc.strerror}") from exc
    check_key_file_mode(
        path,
        mode=found.st_mode,
        owner=found.st_uid,
        group=found.st_gid,
        uid=os.geteuid(),
        groups={os.getegid(), *os.getgroups()},
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


def check_key_file_mode(
    path: Path, *, mode: int, owner: int, group: int, uid: int, groups: Collection[int]
) -> None:
    """Refuse a key file (`mode`, `owner`, `group` from its stat) that others may read or
    write, for a process running as `uid` with `groups` (effective and supplementary).

    Owner only (0600, 0400), with one exception: the shape Kubernetes gives a Secret mounted
    with `defaultMode: 0400` in a pod with an `fsGroup`, owned by root (the kubelet writes it),
    readable by that group (the kubelet adds group read: 0440) and by nothing else, read by a
    process that is not root and runs with that group. Only root can change such a file and
    only the pod's processes hold its group; a non-root pod cannot read a Secret any other way.
    A file this process owns is held to owner only: it can fix its own mode.

    Raises:
        StateDirError: anyone else may read or write it; the hint says how to fix the file or
            its mount.
    """
    permissions = mode & 0o777
    if not permissions & 0o077:
        return
    if not permissions & 0o037 and owner == 0 and owner != uid and group in groups:
        return
    replace = "replace the key if others may have read it"
    if owner != uid:
        hint = (
            "mount its Secret with defaultMode: 0400 and the pod's own fsGroup, through which "
            "this process reads it and nothing else can (README: 'Keys from Kubernetes "
            f"Secrets'); outside Kubernetes, make it this user's file, mode 600; {replace}"
        )
    else:
        hint = (
            f"chmod 600 {path} (a Kubernetes Secret: mount it with defaultMode: 0400), and "
            f"{replace}"
        )
        if permissions & 0o020:
            hint += (
                "; with a pod fsGroup the kubelet makes a volume's files group-writable at each "
                "mount unless fsGroupChangePolicy is OnRootMismatch"
            )
    raise StateDirError(
        f"key file {path} is readable or writable by others (mode {permissions:o})", hint=hint
    )


def _sync_tree(root: Path) -> None:
    """fsync every file and directory under `root`, so a rename of `root` publishes them."""
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _sync_directory(Path(directory))


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
