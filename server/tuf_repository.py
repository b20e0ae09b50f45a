"""A TUF repository for this deployment's trust documents, so TUF clients (`sigstore --instance`,
sigstore-js `tufMirrorURL`, cosign `initialize`) can follow key changes securely.

Metadata is built and signed with python-tuf. The layout is the one sigstore clients fetch with
consistent snapshots: every `N.root.json` (never deleted, clients walk the chain),
`timestamp.json` (the only file replaced in place), `N.snapshot.json`, `N.targets.json`, and the
targets as `targets/<sha256>.<name>`. Versioned files are written before the timestamp that
names them, so a client never sees a timestamp pointing at a missing file.

Short-lived roles are re-signed when half their lifetime has passed: at start-up (`publish`) and
lazily on request (`refresh`). Writes take a file lock, so several server processes sharing the
state directory agree on one repository.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from keyless.core.errors import Error, Reason
from keyless.server.state import StateDir

ONLINE_ROLES = (Targets.type, Snapshot.type, Timestamp.type)
MAX_VERSION = 999_999_999
# What clients may ask for; anything else is a 404 before the disk is touched.
_PATH = re.compile(
    r"[1-9][0-9]{0,8}\.(?:root|snapshot|targets)\.json"
    r"|timestamp\.json"
    r"|targets/[0-9a-f]{64}\.[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*\.json",
    re.ASCII,
)
_TARGET_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*\.json", re.ASCII)
_ROOT_FILE = re.compile(r"([1-9][0-9]{0,8})\.root\.json", re.ASCII)
_LOCK_FILE = ".lock"
DIRECTORY = "tuf"
ROOT_KEY_FILE = "tuf-root-key.pem"


class TUFRepositoryError(Error):
    """The TUF repository cannot be published as asked."""

    reason = Reason.TUF_ERROR


class TUFNotFoundError(TUFRepositoryError):
    """No repository file has that name (HTTP 404)."""

    status = 404
    reason = Reason.NOT_FOUND


@dataclass(frozen=True)
class Lifetimes:
    """How long each role's metadata is valid; each is re-signed after half of it."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=180)
    snapshot: timedelta = timedelta(days=14)
    timestamp: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        for role in (Root.type, *ONLINE_ROLES):
            if getattr(self, role) <= timedelta(0):
                raise ValueError(f"the {role} lifetime must be positive")

    def of(self, role: str) -> timedelta:
        return getattr(self, role)


@dataclass(frozen=True)
class RoleKeys:
    """One signing key per top-level role, each with threshold 1."""

    root: Signer
    targets: Signer
    snapshot: Signer
    timestamp: Signer

    def of(self, role: str) -> Signer:
        return getattr(self, role)


@dataclass(frozen=True)
class _Published:
    """The newest metadata on disk (None: not published yet)."""

    root: Metadata[Root] | None
    targets: Metadata[Targets] | None
    snapshot: Metadata[Snapshot] | None
    timestamp: Metadata[Timestamp] | None


class TUFRepository:
    """The repository in `directory`, signed with `keys`; safe to share between threads."""

    def __init__(
        self,
        directory: Path,
        keys: RoleKeys,
        *,
        lifetimes: Lifetimes | None = None,
        key_files: Mapping[str, Path] | None = None,
    ) -> None:
        self.directory = directory
        # The file each role's key was read from (role -> path), for health checks: a restart
        # needs every one of them.
        self.key_files = dict(key_files or {})
        self._keys = keys
        self._lifetimes = lifetimes or Lifetimes()
        self._lock = threading.Lock()
        self._due_at: datetime | None = None

    def publish(self, targets: Mapping[str, bytes], *, now: datetime) -> None:
        """Serve exactly `targets` (name -> bytes), creating or re-signing what needs it.

        Raises:
            TUFRepositoryError: the root key is not the published root's root key.
        """
        for name in targets:
            if not _TARGET_NAME.fullmatch(name):
                raise ValueError(f"target name {name!r} is not a plain lower-case .json name")
        with self._writing():
            self._update(self._load(), targets, now=now)

    def refresh(self, *, now: datetime) -> None:
        """Re-sign whatever is past half its lifetime; cheap when nothing is due."""
        if self._due_at is not None and now < self._due_at:
            return
        with self._writing():
            published = self._load()
            if published.targets is None:
                raise RuntimeError("refresh before publish")
            current = published.targets.signed.targets
            contents = {name: self._target_bytes(info) for name, info in current.items()}
            self._update(published, contents, now=now)

    def rotate_root(self, new_root: Signer, *, now: datetime) -> int:
        """Replace the root key: the next root version is signed by the old and the new key,
        so clients holding an older root follow it. Returns the new root version."""
        with self._writing():
            published = self._load()
            if published.root is None:
                raise RuntimeError("rotate_root before publish")
            _check_root_key(published.root.signed, self._keys.root)
            version = published.root.signed.version + 1
            keys = replace(self._keys, root=new_root)
            self._write_root(version, keys, [self._keys.root, new_root], now=now)
            self._keys = keys
            return version

    def read(self, name: str, *, now: datetime) -> bytes:
        """The bytes of repository file `name` (a relative URL path), fresh as of `now`.

        Raises:
            TUFNotFoundError: `name` is not a repository file.
        """
        if not _PATH.fullmatch(name):
            raise TUFNotFoundError(f"no TUF file named {name!r}", reason=Reason.NOT_FOUND)
        self.refresh(now=now)
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            raise TUFNotFoundError(f"no TUF file named {name!r}", reason=Reason.NOT_FOUND) from None

    def root_version(self) -> int:
        """The newest root version on disk (0: none)."""
        return _newest_root_version(self.directory)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Exclusive against other threads and other processes using the same directory."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.directory / "targets").mkdir(mode=0o700, exist_ok=True)
        with self._lock, open(self.directory / _LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _update(
        self, published: _Published, targets: Mapping[str, bytes], *, now: datetime
    ) -> None:
        """Bring the repository to `targets` and the current keys; sign only what changed or
        is due, in dependency order (root, targets, snapshot, timestamp)."""
        root = self._update_root(published.root, now=now)
        target_files = {
            name: TargetFile.from_data(name, data, ["sha256"]) for name, data in targets.items()
        }
        md_targets = published.targets
        if (
            md_targets is None
            or md_targets.signed.targets != target_files
            or self._stale(root, md_targets, now=now)
        ):
            for name, info in target_files.items():
                self._write(f"targets/{info.hashes['sha256']}.{name}", targets[name])
            signed = Targets(
                version=_next(md_targets), expires=self._expiry(Targets.type, now), targets={}
            )
            signed.targets = target_files
            md_targets = self._write_metadata(signed, f"{signed.version}.targets.json")
        md_snapshot = published.snapshot
        if (
            md_snapshot is None
            or md_snapshot.signed.meta[f"{Targets.type}.json"].version != md_targets.signed.version
            or self._stale(root, md_snapshot, now=now)
        ):
            signed = Snapshot(
                version=_next(md_snapshot),
                expires=self._expiry(Snapshot.type, now),
                meta={f"{Targets.type}.json": MetaFile(version=md_targets.signed.version)},
            )
            md_snapshot = self._write_metadata(signed, f"{signed.version}.snapshot.json")
        md_timestamp = published.timestamp
        if (
            md_timestamp is None
            or md_timestamp.signed.snapshot_meta.version != md_snapshot.signed.version
            or self._stale(root, md_timestamp, now=now)
        ):
            signed = Timestamp(
                version=_next(md_timestamp),
                expires=self._expiry(Timestamp.type, now),
                snapshot_meta=MetaFile(version=md_snapshot.signed.version),
            )
            md_timestamp = self._write_metadata(signed, "timestamp.json")
        self._due_at = min(
            self._half_life(root.signed.expires, Root.type),
            self._half_life(md_targets.signed.expires, Targets.type),
            self._half_life(md_snapshot.signed.expires, Snapshot.type),
            self._half_life(md_timestamp.signed.expires, Timestamp.type),
        )

    def _update_root(self, published: Metadata[Root] | None, *, now: datetime) -> Metadata[Root]:
        """The root to sign with: version 1 on first run, a new version when an online key
        changed or half its lifetime passed, else the published one."""
        keys = self._keys
        if published is None:
            return self._write_root(1, keys, [keys.root], now=now)
        root = published.signed
        online_changed = any(
            root.roles[role].keyids != [keys.of(role).public_key.keyid] for role in ONLINE_ROLES
        )
        if not online_changed and now < self._half_life(root.expires, Root.type):
            return published
        _check_root_key(root, keys.root)
        return self._write_root(root.version + 1, keys, [keys.root], now=now)

    def _write_root(
        self, version: int, keys: RoleKeys, signers: list[Signer], *, now: datetime
    ) -> Metadata[Root]:
        if version > MAX_VERSION:
            raise TUFRepositoryError(
                "the TUF root version is exhausted", reason=Reason.ROOT_VERSION
            )
        root = Root(version=version, expires=self._expiry(Root.type, now), consistent_snapshot=True)
        for role in (Root.type, *ONLINE_ROLES):
            root.add_key(keys.of(role).public_key, role)
        return self._write_metadata(root, f"{version}.root.json", signers=signers)

    def _write_metadata(
        self, signed: Signed, name: str, *, signers: list[Signer] | None = None
    ) -> Metadata:
        metadata = Metadata(signed)
        for signer in signers or [self._keys.of(signed.type)]:
            metadata.sign(signer, append=True)
        self._write(name, metadata.to_bytes(JSONSerializer(compact=False)))
        return metadata

    def _write(self, name: str, data: bytes) -> None:
        """Write one file atomically: readers see the old bytes or the new, never a part."""
        path = self.directory / name
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)

    def _load(self) -> _Published:
        return _load(self.directory)

    def _target_bytes(self, info: TargetFile) -> bytes:
        return _target_bytes(self.directory, info)

    def _stale(self, root: Metadata[Root], metadata: Metadata, *, now: datetime) -> bool:
        """Past half its lifetime, or not signed by the key the root now names."""
        if now >= self._half_life(metadata.signed.expires, metadata.signed.type):
            return True
        result = root.signed.get_verification_result(
            metadata.signed.type, metadata.signed_bytes, metadata.signatures
        )
        return not result.verified

    def _expiry(self, role: str, now: datetime) -> datetime:
        return now + self._lifetimes.of(role)

    def _half_life(self, expires: datetime, role: str) -> datetime:
        return expires - self._lifetimes.of(role) / 2


def published_target(directory: Path, name: str) -> bytes | None:
    """Target `name` as the repository in `directory` last published it (None: it never did),
    checked against the hash its targets metadata names; read without any key, so a start
    can compare what it is about to publish with what clients were given."""
    targets = _load(directory).targets
    if targets is None or name not in targets.signed.targets:
        return None
    return _target_bytes(directory, targets.signed.targets[name])


def _load(directory: Path) -> _Published:
    """The newest metadata of each role, as the repository in `directory` wrote it."""
    version = _newest_root_version(directory)
    root = _metadata(directory, f"{version}.root.json", Root) if version else None
    timestamp = _metadata(directory, "timestamp.json", Timestamp)
    snapshot = targets = None
    if timestamp is not None:
        snapshot = _metadata(
            directory, f"{timestamp.signed.snapshot_meta.version}.snapshot.json", Snapshot
        )
    if snapshot is not None:
        meta = snapshot.signed.meta[f"{Targets.type}.json"]
        targets = _metadata(directory, f"{meta.version}.targets.json", Targets)
    return _Published(root=root, targets=targets, snapshot=snapshot, timestamp=timestamp)


def _metadata(directory: Path, name: str, kind: type[Signed]) -> Metadata | None:
    try:
        data = (directory / name).read_bytes()
    except FileNotFoundError:
        return None
    metadata = Metadata.from_bytes(data)
    if not isinstance(metadata.signed, kind):
        raise TUFRepositoryError(
            f"{directory / name} is not {kind.type} metadata", reason=Reason.CORRUPT
        )
    return metadata


def _target_bytes(directory: Path, info: TargetFile) -> bytes:
    data = (directory / "targets" / f"{info.hashes['sha256']}.{info.path}").read_bytes()
    info.verify_length_and_hashes(data)
    return data


def _check_root_key(root: Root, signer: Signer) -> None:
    """Only the key the published root names can sign the next root so that clients follow.

    Raises:
        TUFRepositoryError: `signer` is not that key.
    """
    if root.roles[Root.type].keyids != [signer.public_key.keyid]:
        raise TUFRepositoryError(
            f"the TUF root key is not the root key of published root version {root.version}",
            reason=Reason.ROOT_KEY_MISMATCH,
            hint="restore the TUF root key file in the state directory, or rotate the root "
            "with the old key so clients can follow",
        )


def _next(metadata: Metadata | None) -> int:
    version = metadata.signed.version + 1 if metadata else 1
    if version > MAX_VERSION:
        raise TUFRepositoryError("a TUF metadata version is exhausted", reason=Reason.VERSION)
    return version


def open_repository(state: StateDir, *, lifetimes: Lifetimes | None = None) -> TUFRepository:
    """The repository in the state directory, with its role keys (P-256, 0600) beside it.

    Online keys are `tuf-<role>-key.pem`, generated on first use. The root key is whichever
    `tuf-root-key*.pem` the newest published root names (rotations add files, never rename).

    Raises:
        TUFRepositoryError: no root key file matches the published root.
    """
    directory = state.file(DIRECTORY)
    files = {role: state.file(f"tuf-{role}-key.pem") for role in ONLINE_ROLES}
    online = {role: _state_key(state, path.name) for role, path in files.items()}
    root, files[Root.type] = _root_key(state, directory)
    return TUFRepository(
        directory, RoleKeys(root=root, **online), lifetimes=lifetimes, key_files=files
    )


def rotate_root_key(state: StateDir, repository: TUFRepository, *, now: datetime) -> int:
    """Sign the next root with a new root key, saved as `tuf-root-key.v<version>.pem` before
    the root naming it is published. Returns the new root version."""
    version = repository.root_version() + 1
    new = _state_key(state, f"tuf-root-key.v{version}.pem")
    return repository.rotate_root(new, now=now)


def _root_key(state: StateDir, directory: Path) -> tuple[Signer, Path]:
    """The root key the newest published root names, and its file."""
    version = _newest_root_version(directory)
    if version == 0:
        return _state_key(state, ROOT_KEY_FILE), state.file(ROOT_KEY_FILE)
    root = Metadata[Root].from_bytes((directory / f"{version}.root.json").read_bytes()).signed
    wanted = root.roles[Root.type].keyids
    for path in sorted(state.path.glob("tuf-root-key*.pem")):
        signer = _state_key(state, path.name)
        if signer.public_key.keyid in wanted:
            return signer, path
    raise TUFRepositoryError(
        f"no TUF root key in {state.path} is the root key of published root version {version}",
        reason=Reason.ROOT_KEY_MISMATCH,
        hint="restore the tuf-root-key*.pem files of the state directory from a backup",
    )


def _state_key(state: StateDir, name: str) -> CryptoSigner:
    return CryptoSigner(state.private_key(name, lambda: ec.generate_private_key(ec.SECP256R1())))


def _newest_root_version(directory: Path) -> int:
    versions = [
        int(match.group(1))
        for path in directory.glob("*.root.json")
        if (match := _ROOT_FILE.fullmatch(path.name))
    ]
    return max(versions, default=0)
