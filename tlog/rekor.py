"""The Rekor v1 signature log as a plain service: entries, proofs, SETs, checkpoints, search.

No Flask here: `tlog.rekor_api` turns HTTP into calls on `RekorService` and back. Identifiers
follow Rekor: the UUID is the hex leaf hash, the entry ID is the 16-hex tree ID followed by
the UUID, and the log ID is the hex SHA-256 of the log key's DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.core.encoding import b64encode
from keyless.tlog.checkpoint import CheckpointSigner
from keyless.tlog.errors import (
    DuplicateEntryError,
    LogStartError,
    NotFoundError,
    RequestError,
    TooManyError,
)
from keyless.tlog.log import NEW_LOG_HINT, Anchor, MerkleLog
from keyless.tlog.merkle import leaf_hash
from keyless.tlog.pki import parse_pem_key
from keyless.tlog.rekor_kinds import canonicalize
from keyless.tlog.storage import LogEntry, LogStorage, SignedHead
from keyless.tlog.witnessing import Witnessing, WitnessPolicy, consistency_proofs, witnessed

MAX_SEARCH_RESULTS = 1000
MAX_RETRIEVE_ITEMS = 10
_ENTRY_ID = re.compile(r"(?:([0-9a-f]{16}))?([0-9a-f]{64})\Z")
_HOST = re.compile(r"[A-Za-z0-9.\-\[\]:]{1,255}\Z")
_ARTIFACT_HASH = re.compile(r"(?:(sha256):)?([0-9a-f]{64})\Z|(sha384|sha512):([0-9a-f]{96,128})\Z")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\Z")


@dataclass(frozen=True)
class RekorEntry:
    """A log entry as Rekor v1 returns it, with an inclusion proof and a fresh SET."""

    entry_id: str
    body: bytes
    integrated_time: int
    log_id: str
    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str
    signed_entry_timestamp: bytes


@dataclass(frozen=True)
class LogInfo:
    """The log's current state, as `GET /api/v1/log` reports it."""

    tree_size: int
    root_hash: bytes
    signed_tree_head: str
    tree_id: int


@dataclass(frozen=True)
class SearchQuery:
    """An index search: any of artifact hash, public key PEM, email; combined by `operator`."""

    artifact_hash: str | None = None
    public_key_pem: bytes | None = None
    email: str | None = None
    operator: str = "or"


class RekorService:
    """A Rekor v1 log over a `MerkleLog`, signing SETs and checkpoints with one P-256 key."""

    def __init__(
        self,
        *,
        log: MerkleLog,
        private_key: ec.EllipticCurvePrivateKey,
        clock: Callable[[], float] = time.time,
        witnessing: Witnessing | None = None,
    ) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise TypeError("the Rekor log key must be an ECDSA P-256 private key")
        self._log = log
        self._key = private_key
        self._clock = clock
        self.witnessing = witnessing
        self.public_key = private_key.public_key()
        der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.log_id = hashlib.sha256(der).hexdigest()
        self.tree_id = log.tree_id
        self._tree_prefix = f"{self.tree_id:016x}"

    @classmethod
    def open(
        cls,
        *,
        storage: LogStorage,
        private_key: ec.EllipticCurvePrivateKey,
        host: str,
        clock: Callable[[], float] = time.time,
        anchor: Anchor | None = None,
        new_log: bool = False,
        witnesses: WitnessPolicy | None = None,
    ) -> RekorService:
        """A service over `storage`; checkpoints name `host` ("127.0.0.1:3000") as Rekor does.

        The checkpoint origin is "<host> - <treeID>" and its signature line names `host`,
        which sigstore-js requires to be a substring of the log's URL in the trusted root.
        With `anchor`, the log refuses to start (`LogStartError`) when its database is behind
        the checkpoint kept outside it, or was signed under another key or origin. With
        `witnesses`, it also refuses when a witness has cosigned a tree its head does not
        extend (`tlog.witnessing`), and serves its checkpoints with their cosignatures.
        """
        if not _HOST.match(host):
            raise ValueError(f"invalid log host {host!r}")
        origin = f"{host} - {storage.tree_id}"
        if anchor is not None:
            check_origin(storage, anchor, origin)
        signer = CheckpointSigner(origin=origin, name=host, private_key=private_key)
        witnessing = witnessed(witnesses, log_name="signature log")
        log = MerkleLog(
            storage,
            signer,
            clock=clock,
            anchor=anchor,
            new_log=new_log,
            on_signed=witnessing.publish if witnessing is not None else None,
        )
        if witnessing is not None:
            witnessing.confirm(log.head(), proofs=consistency_proofs(log))
        return cls(log=log, private_key=private_key, clock=clock, witnessing=witnessing)

    @property
    def log(self) -> MerkleLog:
        """The underlying Merkle log."""
        return self._log

    def _entry_id(self, leaf_hash: bytes) -> str:
        return self._tree_prefix + leaf_hash.hex()

    def _render(self, entry: LogEntry, head: SignedHead, proof: Sequence[bytes]) -> RekorEntry:
        integrated_time = entry.integrated_ms // 1000
        payload = rfc8785.dumps(
            {
                "body": b64encode(entry.data),
                "integratedTime": integrated_time,
                "logID": self.log_id,
                "logIndex": entry.index,
            }
        )
        return RekorEntry(
            entry_id=self._entry_id(entry.leaf_hash),
            body=entry.data,
            integrated_time=integrated_time,
            log_id=self.log_id,
            log_index=entry.index,
            tree_size=head.size,
            root_hash=head.root_hash,
            hashes=tuple(proof),
            checkpoint=self._checkpoint(head).decode(),
            signed_entry_timestamp=self._key.sign(payload, _ECDSA_SHA256),
        )

    def _checkpoint(self, head: SignedHead) -> bytes:
        """`head`'s checkpoint, with the cosignatures its witnesses gave."""
        if self.witnessing is None:
            return head.signed
        return self.witnessing.cosigned(head)

    def add_entry(self, proposed: object) -> RekorEntry:
        """Validate, canonicalise and durably log a proposed entry.

        Raises:
            EntryError: the entry is malformed or its signature does not verify.
            DuplicateEntryError: the same canonical entry is already logged (`.index`).
        """
        canonical = canonicalize(proposed)
        appended = self._log.append(canonical.body, keys=canonical.keys, prove=True)
        if appended.proof is None:
            raise RuntimeError("the log returned no inclusion proof")
        return self._render(appended.entry, appended.head, appended.proof)

    def duplicate_entry_id(self, error: DuplicateEntryError) -> str:
        """The entry ID of the entry a duplicate collided with."""
        return self._entry_id(error.leaf_hash)

    def entry_at(self, index: int) -> RekorEntry:
        """The entry at `index`, proven against the latest checkpoint.

        Raises:
            NotFoundError: no such entry.
        """
        proven = self._log.prove(index)
        return self._render(proven.entry, proven.head, proven.proof)

    def entry_by_id(self, entry_id: str) -> RekorEntry:
        """The entry with this UUID (64 hex) or entry ID (80 hex).

        Raises:
            RequestError: not a UUID or entry ID.
            NotFoundError: no such entry in this tree.
        """
        match = _ENTRY_ID.match(entry_id.lower()) if isinstance(entry_id, str) else None
        if match is None:
            raise RequestError("entry UUID must be 64 or 80 hexadecimal characters")
        prefix, leaf_hex = match.groups()
        if prefix is not None and prefix != self._tree_prefix:
            raise NotFoundError(f"no entry {entry_id} in tree {self.tree_id}")
        index = self._log.find(bytes.fromhex(leaf_hex))
        if index is None:
            raise NotFoundError(f"no entry {entry_id}")
        return self.entry_at(index)

    def retrieve(
        self,
        *,
        entry_ids: Sequence[str] = (),
        indexes: Sequence[int] = (),
        entries: Sequence[object] = (),
    ) -> list[RekorEntry]:
        """Entries by ID, by index, or by content (validated proposed entries); missing skipped.

        Raises:
            TooManyError: more than `MAX_RETRIEVE_ITEMS` items in all.
        """
        total = len(entry_ids) + len(indexes) + len(entries)
        if total > MAX_RETRIEVE_ITEMS:
            raise TooManyError(
                f"at most {MAX_RETRIEVE_ITEMS} entries may be retrieved at once, got {total}"
            )
        found: list[RekorEntry] = []
        for entry_id in entry_ids:
            try:
                found.append(self.entry_by_id(entry_id))
            except NotFoundError:
                continue
        for index in indexes:
            try:
                found.append(self.entry_at(index))
            except NotFoundError:
                continue
        for proposed in entries:
            canonical = canonicalize(proposed)
            logged_at = self._log.find(leaf_hash(canonical.body))
            if logged_at is not None:
                found.append(self.entry_at(logged_at))
        return found

    def search(self, query: SearchQuery) -> list[str]:
        """Entry IDs matching the query, in log order.

        Raises:
            RequestError: no criterion, or a malformed one.
        """
        keys: list[str] = []
        if query.artifact_hash is not None:
            match = _ARTIFACT_HASH.match(query.artifact_hash.lower())
            if match is None:
                raise RequestError("hash must be [sha256:|sha384:|sha512:]<lowercase hex>")
            algorithm = match.group(1) or match.group(3) or "sha256"
            keys.append(f"hash:{algorithm}:{match.group(2) or match.group(4)}")
        if query.public_key_pem is not None:
            key = parse_pem_key(query.public_key_pem)
            keys.append("pk:" + hashlib.sha256(key.canonical_pem).hexdigest())
        if query.email is not None:
            if not _EMAIL.match(query.email):
                raise RequestError("email is not a valid address")
            keys.append("san:" + query.email.lower())
        if not keys:
            raise RequestError("search needs a hash, a publicKey or an email")
        if query.operator not in ("and", "or"):
            raise RequestError("operator must be 'and' or 'or'")
        sets = [set(self._log.search(key, limit=MAX_SEARCH_RESULTS)) for key in keys]
        indexes = set.intersection(*sets) if query.operator == "and" else set.union(*sets)
        ordered = sorted(indexes)[:MAX_SEARCH_RESULTS]
        return [self._entry_id(self._log.entry(index).leaf_hash) for index in ordered]

    def log_info(self) -> LogInfo:
        """The latest signed tree head."""
        head = self._log.head()
        return LogInfo(head.size, head.root_hash, self._checkpoint(head).decode(), self.tree_id)

    def consistency_proof(self, first_size: int, last_size: int) -> tuple[bytes, list[bytes]]:
        """The root at `last_size` and the consistency proof from `first_size`.

        Raises:
            RequestError: sizes out of order or beyond the log.
        """
        if first_size > last_size:
            raise RequestError(f"firstSize {first_size} is greater than lastSize {last_size}")
        return self._log.consistency_proof(first_size, last_size)


def check_origin(storage: LogStorage, anchor: Anchor, origin: str) -> None:
    """Refuse a stored checkpoint (a signed note) that names another origin: the server now runs
    under another public host or port, and every checkpoint it signed would contradict it."""
    with storage.reader() as view:
        stored = view.latest_head()
    if stored is None:
        return
    stored_origin = stored.signed.split(b"\n", 1)[0].decode("utf-8", "replace")
    if stored_origin != origin:
        raise LogStartError(
            f"the log database {anchor.database} belongs to the log {stored_origin!r}, but this "
            f"server would sign as {origin!r}: its public URL (host or port) changed",
            hint="serve under the public URL the log was created with; " + NEW_LOG_HINT,
        )
