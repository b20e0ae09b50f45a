"""Reading a C2SP tlog-tiles log (Rekor v2) as a client: checkpoints, proofs and entries.

A tile log has no proof API: a reader gets the signed checkpoint, hash tiles and entry bundles,
which any mirror or CDN may serve. Nothing read from tiles is trusted as such. Every answer is
checked against a checkpoint signed by a trusted key:

- a consistency proof from an older tree to a newer one is built from the newer tree's tiles
  (`tlog.merkle` over a `NodeReader` backed by tiles) and verified against both signed roots;
- entries are hashed where they stand: the Merkle tree hash of the signed tree is recomputed
  with an entry bundle's own leaf hashes in place, the other subtrees read from tiles, and must
  equal the signed root. A swapped entry or an altered tile cannot pass either check.

A tile at level L holds the nodes at tree level 8·L; a node at level 8·L + r (0 < r < 8) is the
fold of 2^r of them, so every complete-subtree node is in, or folds from, one tile. A tree of
size S has partial tiles (`.p/W`) on its right edge; each tile read is bounded to the size its
coordinates allow.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import requests
import urllib3

from keyless.client.errors import ClientError, NetworkError
from keyless.client.http import new_session
from keyless.client.trust import LogKey, ServerTrust
from keyless.core.errors import Reason
from keyless.tlog import (
    CheckpointError,
    ProofError,
    checkpoint_key_id,
    checkpoint_origin,
    node_hash,
    parse_checkpoint_text,
    parse_note,
)
from keyless.tlog.checkpoint import MAX_NOTE_BYTES, verify_note
from keyless.tlog.merkle import (
    HASH_SIZE,
    NodeID,
    consistency_proof,
    range_nodes,
    verify_consistency,
)
from keyless.tlog.tiles import (
    MAX_ENTRY_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileRef,
    available,
    parse_entry_bundle,
)

TILES_PREFIX = "/api/v2"  # where rekor-tiles (and keyless serve) put the tlog-tiles reads
MAX_CACHED_TILE_BYTES = 32 * 1024 * 1024


class LogInconsistencyError(ClientError):
    """The log contradicted a checkpoint it signed earlier: a fork, a rollback or a lie."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=Reason.LOG_INCONSISTENT)


@dataclass(frozen=True)
class TreeHead:
    """A checkpoint the client verified: signed by the log, with its origin, size and root."""

    origin: str
    size: int
    root_hash: bytes
    note: str


def is_tile_log_key(key: LogKey) -> bool:
    """Whether a trusted root's log entry is a Rekor v2 (tile) log: an Ed25519 key whose log ID
    is its C2SP signed-note key ID under the origin its base URL names."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if not isinstance(key.public_key, ed25519.Ed25519PublicKey):
        return False
    try:
        origin = checkpoint_origin(key.base_url)
    except ValueError:
        return False
    return key.key_id == checkpoint_key_id(key.public_key, name=origin)


def server_tile_log_urls(server: str, trust: ServerTrust) -> set[str]:
    """The tile logs a keyless server runs, from its TUF-verified trust: those its signing
    config lists with majorApiVersion 2, and those its trusted root lists with an Ed25519 key
    under their C2SP key ID. Both are needed: an ECDSA checkpoint key's log ID is the same
    SHA-256 of its key as a v1 log's, so only the signing config tells such a v2 log apart.
    """
    from keyless.client.services import log_urls

    server = server.rstrip("/")
    listed = log_urls(trust.signing_config, source=f"the signing config of {server}", version=2)
    keys = trust.trusted_root.tlogs.values()
    keyed = {key.base_url.rstrip("/") for key in keys if is_tile_log_key(key)}
    return {url for url in (*listed, *keyed) if url == server}


def tile_log_at(
    tiles_url: str,
    keys: Sequence[LogKey],
    *,
    session: requests.Session | None = None,
    timeout: float = 30.0,
) -> TileLog:
    """The tile log among `keys` (a trusted root's logs) that `tiles_url` serves, at its own
    address or a mirror: the one whose origin the served checkpoint names. Only the origin is
    read here; every checkpoint is verified when used.

    Raises:
        NetworkError: unreachable, or no checkpoint there.
        ClientError: the trusted root lists no tile log of that origin.
    """
    tiles_url = tiles_url.rstrip("/")
    session = session or new_session()
    body = _fetch(session, tiles_url, "checkpoint", MAX_NOTE_BYTES, timeout)
    try:
        origin = parse_checkpoint_text(parse_note(body).text).origin
    except CheckpointError as exc:
        raise NetworkError(
            f"the log at {tiles_url} sent a malformed checkpoint: {exc.message}"
        ) from exc
    logs = [k for k in keys if is_tile_log_key(k) and checkpoint_origin(k.base_url) == origin]
    if not logs:
        raise ClientError(
            f"the trusted root lists no tile log of origin {origin[:100]!r}, which the "
            f"checkpoint at {tiles_url} names",
            hint="give the trusted root that lists this log with --trusted-root",
        )
    return TileLog(logs[0].base_url, logs, tiles_url=tiles_url, session=session, timeout=timeout)


class TileLog:
    """A tile log named `base_url` in the trusted root, read from `tiles_url`.

    `keys` are the trusted root's keys for the log; those whose C2SP key ID does not match the
    log's origin (its base URL without the scheme) are not used. `tiles_url` defaults to
    `base_url` + `/api/v2`; give another for a mirror.
    """

    def __init__(
        self,
        base_url: str,
        keys: Sequence[LogKey],
        *,
        tiles_url: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tiles_url = (tiles_url or self.base_url + TILES_PREFIX).rstrip("/")
        try:
            self.origin = checkpoint_origin(self.base_url)
        except ValueError as exc:
            raise ClientError(f"{base_url!r} names no log origin") from exc
        self._keys = []
        for key in keys:
            try:
                matches = key.key_id == checkpoint_key_id(key.public_key, name=self.origin)
            except TypeError:
                matches = False
            if matches:
                self._keys.append(key)
        if not self._keys:
            raise ClientError(
                f"the trusted root lists no tile log key for {self.base_url} "
                f"(origin {self.origin!r})"
            )
        self._session = session or new_session()
        self._timeout = timeout
        self._tiles: OrderedDict[TileRef, list[list[bytes]]] = OrderedDict()
        self._cached_bytes = 0

    # Checkpoints and consistency.

    def checkpoint(self) -> TreeHead:
        """The log's current checkpoint, verified with a trusted key under the log's origin.

        Raises:
            NetworkError: unreachable, or not a checkpoint at all.
            LogInconsistencyError: no trusted key signed it, or it names another origin.
        """
        body = self._fetch("checkpoint", MAX_NOTE_BYTES)
        return self.verify_checkpoint(body)

    def verify_checkpoint(self, note: str | bytes) -> TreeHead:
        """A signed checkpoint of this log (e.g. from a bundle or a state file), verified.

        Raises:
            NetworkError: the note is malformed.
            LogInconsistencyError: no trusted key signed it, or it names another origin.
        """
        try:
            signed = parse_note(note)
            checkpoint = parse_checkpoint_text(signed.text)
        except CheckpointError as exc:
            raise NetworkError(
                f"the log at {self.tiles_url} sent a malformed checkpoint: {exc.message}"
            ) from exc
        failures = []
        for key in self._keys:
            try:
                verify_note(signed, public_key=key.public_key, name=self.origin)
            except (CheckpointError, TypeError) as exc:
                failures.append(str(getattr(exc, "message", exc)))
                continue
            break
        else:
            raise LogInconsistencyError(
                f"the log at {self.tiles_url} sent a checkpoint no trusted key signed: "
                f"{failures[-1]}"
            )
        if checkpoint.origin != self.origin:
            raise LogInconsistencyError(
                f"the log at {self.tiles_url} signed a checkpoint for origin "
                f"{checkpoint.origin!r}, not {self.origin!r}"
            )
        text = note if isinstance(note, str) else note.decode()
        return TreeHead(checkpoint.origin, checkpoint.size, checkpoint.root_hash, text)

    def prove_extends(self, old: TreeHead, new: TreeHead) -> None:
        """Require `new` to be an append-only extension of `old`: a consistency proof read from
        `new`'s tiles, verified against both signed roots.

        Raises:
            LogInconsistencyError: another origin, a smaller tree, or no valid proof.
            NetworkError: a tile cannot be read or is malformed.
        """
        if new.origin != old.origin:
            raise LogInconsistencyError(
                f"the log at {self.tiles_url} changed its origin from {old.origin!r} to "
                f"{new.origin!r}: a new tree (shard) is not the log this client followed"
            )
        if new.size < old.size:
            raise LogInconsistencyError(
                f"the log at {self.tiles_url} signed size {new.size} after signing size "
                f"{old.size}: it went back in time (rollback or fork)"
            )
        if new.size == old.size:
            if new.root_hash != old.root_hash:
                raise LogInconsistencyError(
                    f"the log at {self.tiles_url} signed two different roots for size "
                    f"{new.size}: {old.root_hash.hex()} and {new.root_hash.hex()} (a fork)"
                )
            return
        if old.size == 0:
            return
        proof = consistency_proof(old.size, new.size, _TileNodes(self, new.size))
        try:
            verify_consistency(
                size1=old.size,
                size2=new.size,
                proof=proof,
                root1=old.root_hash,
                root2=new.root_hash,
            )
        except ProofError as exc:
            raise LogInconsistencyError(
                f"the log at {self.tiles_url} cannot prove that size {new.size} (root "
                f"{new.root_hash.hex()}) extends size {old.size} (root {old.root_hash.hex()}): "
                f"{exc.message}; it signed two histories (a fork)"
            ) from exc

    # Entries.

    def entries(self, start: int, end: int, head: TreeHead) -> Iterator[tuple[int, bytes]]:
        """The entries at indexes [start, end) of `head`'s tree, each proven to be that leaf.

        Entry bundles are read whole; each one's leaves, with the rest of the tree read from
        tiles, must rebuild `head`'s signed root before any of its entries is yielded.

        Raises:
            LogInconsistencyError: an entry bundle is not what the signed tree holds.
            NetworkError: a bundle or tile cannot be read or is malformed.
        """
        if not 0 <= start <= end <= head.size:
            raise ValueError(f"entries [{start}, {end}) are not in a tree of {head.size}")
        for index in range(start // TILE_WIDTH, (end + TILE_WIDTH - 1) // TILE_WIDTH):
            first = index * TILE_WIDTH
            width = available(0, index, head.size)
            bundle = self._entry_bundle(index, width)
            leaves = [hashlib.sha256(b"\x00" + entry).digest() for entry in bundle]
            root = self._root_with(head.size, first, leaves)
            if root != head.root_hash:
                raise LogInconsistencyError(
                    f"entries {first}..{first + width - 1} of the log at {self.tiles_url} are "
                    f"not in the tree its checkpoint of size {head.size} signs (the entry "
                    f"bundle or a hash tile differs from what the log committed to)"
                )
            for position in range(max(start, first), min(end, first + width)):
                yield position, bundle[position - first]

    def _entry_bundle(self, index: int, width: int) -> list[bytes]:
        tile = TileRef(None, index, None if width == TILE_WIDTH else width)
        data = self._fetch(tile.path(), width * (2 + MAX_ENTRY_BYTES))
        try:
            entries = parse_entry_bundle(data)
        except ValueError as exc:
            raise NetworkError(
                f"the log at {self.tiles_url} sent a malformed {tile.path()}: {exc}"
            ) from exc
        if len(entries) != width:
            raise NetworkError(
                f"the log at {self.tiles_url} sent {len(entries)} entries in {tile.path()}, "
                f"which must hold {width}"
            )
        return entries

    def _root_with(self, size: int, first: int, leaves: list[bytes]) -> bytes:
        """The root of the tree of `size` with leaves [first, first + len) taken from `leaves`
        and every other subtree from tiles (RFC 6962 MTH, split at the largest power of two)."""
        last = first + len(leaves)

        def mth(start: int, end: int) -> bytes:
            if first <= start and end <= last:
                return _subtree_root(leaves[start - first : end - first])
            if end <= first or last <= start:
                nodes = range_nodes(start, end)
                hashes = [self._node(node, size) for node in nodes]
                digest = hashes[-1]
                for left in reversed(hashes[:-1]):
                    digest = node_hash(left, digest)
                return digest
            middle = start + _split(end - start)
            return node_hash(mth(start, middle), mth(middle, end))

        return mth(0, size)

    # Tiles.

    def _node(self, node: NodeID, size: int) -> bytes:
        """A complete-subtree node of the tree of `size`, from (or folded from) one hash tile."""
        level, index = node
        tile_level, fold_levels = divmod(level, TILE_HEIGHT)
        per_tile = TILE_WIDTH >> fold_levels
        tile_index, position = divmod(index, per_tile)
        width = available(tile_level, tile_index, size)
        levels = self._hash_tile(tile_level, tile_index, width)
        if fold_levels >= len(levels) or position >= len(levels[fold_levels]):
            raise ValueError(f"node {node} is not complete in a tree of {size}")
        return levels[fold_levels][position]

    def _hash_tile(self, level: int, index: int, width: int) -> list[list[bytes]]:
        """Tile (level, index) of `width` hashes, with the levels folded inside it: entry r holds
        the nodes 8·level + r that the tile's complete pairs make."""
        if width < 1:
            raise ValueError(f"tile {level}/{index} is empty")
        tile = TileRef(level, index, None if width == TILE_WIDTH else width)
        cached = self._tiles.get(tile)
        if cached is not None:
            self._tiles.move_to_end(tile)
            return cached
        data = self._fetch(tile.path(), width * HASH_SIZE)
        if len(data) != width * HASH_SIZE:
            raise NetworkError(
                f"the log at {self.tiles_url} sent {len(data)} bytes for {tile.path()}, "
                f"which must be {width * HASH_SIZE}"
            )
        levels = [[data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]]
        while len(levels) < TILE_HEIGHT and len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
        self._tiles[tile] = levels
        self._cached_bytes += len(data) * 2
        while self._cached_bytes > MAX_CACHED_TILE_BYTES:
            _, evicted = self._tiles.popitem(last=False)
            self._cached_bytes -= len(evicted[0]) * HASH_SIZE * 2
        return levels

    def _fetch(self, path: str, limit: int) -> bytes:
        return _fetch(self._session, self.tiles_url, path, limit, self._timeout)


def _fetch(
    session: requests.Session, tiles_url: str, path: str, limit: int, timeout: float
) -> bytes:
    """GET `tiles_url`/`path`, reading at most `limit` bytes (more is refused)."""
    url = f"{tiles_url}/{path}"
    try:
        with session.get(url, stream=True, timeout=timeout) as response:
            body = response.raw.read(limit + 1, decode_content=True)
            status = response.status_code
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise NetworkError(
            f"cannot reach the transparency log at {url}: {type(exc).__name__}",
            reason=Reason.UNREACHABLE,
            hint="check the URL and your network connection",
        ) from exc
    if status != 200:
        raise NetworkError(
            f"the transparency log at {url} answered HTTP {status}", reason=Reason.UNREACHABLE
        )
    if len(body) > limit:
        raise NetworkError(f"the log at {tiles_url} sent more than {limit} bytes for {path}")
    return body


class _TileNodes:
    """A `tlog.merkle.NodeReader` over the tiles of one tree size."""

    def __init__(self, log: TileLog, size: int) -> None:
        self._log = log
        self._size = size

    def read_nodes(self, ids: Sequence[NodeID]) -> list[bytes]:
        return [self._log._node(node, self._size) for node in ids]


def _split(count: int) -> int:
    """The largest power of two strictly below `count` (count > 1)."""
    return 1 << ((count - 1).bit_length() - 1)


def _subtree_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 MTH over leaf hashes (at least one)."""
    if len(leaves) == 1:
        return leaves[0]
    middle = _split(len(leaves))
    return node_hash(_subtree_root(leaves[:middle]), _subtree_root(leaves[middle:]))
