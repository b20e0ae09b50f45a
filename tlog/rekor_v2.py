"""The Rekor v2 signature log (rekor-tiles) as a plain service: entries, checkpoints, tiles.

No Flask here: `tlog.rekor_v2_api` is the blueprint. The log is a separate Merkle tree beside
the v1 log, over the same engine (`MerkleLog`, group commit, durable appends, each head checked
against the last before it is signed). What differs from v1:

- one kind, `hashedrekord` 0.0.2, whose verifier is a DER certificate or public key; DSSE is
  logged by clients as a hashedrekord over the envelope's PAE, as upstream does;
- C2SP checkpoints whose origin and key name are the log's host, signed with Ed25519 (or ECDSA
  P-256); the log ID is the full C2SP key ID, SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key) for Ed25519;
- no signed entry timestamp and `integratedTime` 0: signers get their time from a TSA;
- no search and no read-by-index: proofs are in the bundle, and monitors read tiles.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from keyless.core.encoding import b64encode
from keyless.core.keys import HASH_ALGORITHMS, SCHEMES, hash_algorithm
from keyless.tlog import tiles
from keyless.tlog.checkpoint import CheckpointSigner, checkpoint_key_id
from keyless.tlog.errors import EntryError, NotFoundError, StorageError
from keyless.tlog.log import Anchor, MerkleLog
from keyless.tlog.pki import MAX_SIGNATURE_BYTES, VerifyingKey, decode_b64, verify_prehashed
from keyless.tlog.rekor import check_origin
from keyless.tlog.storage import LogStorage, SignedHead
from keyless.tlog.witnessing import Witnessing, WitnessPolicy, consistency_proofs, witnessed

KIND = "hashedrekord"
API_VERSION = "0.0.2"
MAX_VERIFIER_BYTES = 16 * 1024
MAX_CACHED_BYTES = 64 * 1024 * 1024  # full tiles and bundles kept in memory
# The key details this log takes (the scheme each names is core.keys'): ECDSA with its curve's
# hash and RSA PKCS#1 v1.5. Not Ed25519, which signs no digest, nor the rarer names.
ACCEPTED_KEY_DETAILS = (
    "PKIX_ECDSA_P256_SHA_256",
    "PKIX_ECDSA_P384_SHA_384",
    "PKIX_ECDSA_P521_SHA_512",
    "PKIX_RSA_PKCS1V15_2048_SHA256",
    "PKIX_RSA_PKCS1V15_3072_SHA256",
    "PKIX_RSA_PKCS1V15_4096_SHA256",
)
# The entry's data.algorithm (protobuf HashAlgorithm) for the hash a scheme signs.
_DATA_ALGORITHMS = {name: algorithm for algorithm, name in HASH_ALGORITHMS.items()}

CheckpointKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class V2Entry:
    """A logged entry with its inclusion proof and the checkpoint that proof is against."""

    log_index: int
    body: bytes
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class Canonical:
    """A validated request: the canonical body (the Merkle leaf)."""

    body: bytes


def _field(value: dict[str, Any], camel: str, snake: str) -> Any:
    """A field by its JSON name or its proto name (grpc-gateway accepts both), not both."""
    if camel in value and snake in value and camel != snake:
        raise EntryError(f"both {camel} and {snake} are given")
    return value.get(camel, value.get(snake))


def _object(value: object, what: str, fields: dict[str, str]) -> dict[str, Any]:
    """A JSON object whose keys are among `fields` (camelCase -> proto name); null is absent."""
    if not isinstance(value, dict):
        raise EntryError(f"{what} must be a JSON object")
    known = set(fields) | set(fields.values())
    unknown = sorted(set(value) - known)
    if unknown:
        raise EntryError(f"{what} has unknown field {unknown[0][:64]!r}")
    result = {}
    for camel, snake in fields.items():
        item = _field(value, camel, snake)
        if item is not None:
            result[camel] = item
    return result


def _require(fields: dict[str, Any], name: str, what: str) -> Any:
    if name not in fields:
        raise EntryError(f"{what} is missing {name!r}")
    return fields[name]


def canonicalize(request: object) -> Canonical:
    """Validate a `CreateEntryRequest` (parsed JSON), verify its signature, canonicalise it.

    Only `hashedRekordRequestV002` is accepted. Bytes must be canonical standard base64 (the
    official models decode leniently, so this parser is stricter than sigstore-models).

    Raises:
        EntryError: the request is malformed, names a key type it does not match, or its
            signature does not verify over the digest.
    """
    top = _object(
        request,
        "request",
        {
            "hashedRekordRequestV002": "hashed_rekord_request_v002",
            "dsseRequestV002": "dsse_request_v002",
        },
    )
    if "dsseRequestV002" in top:
        raise EntryError(
            "DSSE requests are not accepted: log a hashedrekord over the envelope's PAE"
        )
    spec = _object(
        _require(top, "hashedRekordRequestV002", "request"),
        "hashedRekordRequestV002",
        {"digest": "digest", "signature": "signature"},
    )
    signature = _object(
        _require(spec, "signature", "hashedRekordRequestV002"),
        "signature",
        {"content": "content", "verifier": "verifier"},
    )
    verifier = _object(
        _require(signature, "verifier", "signature"),
        "verifier",
        {
            "publicKey": "public_key",
            "x509Certificate": "x509_certificate",
            "keyDetails": "key_details",
        },
    )
    details = _require(verifier, "keyDetails", "verifier")
    if not isinstance(details, str) or details not in ACCEPTED_KEY_DETAILS:
        raise EntryError(f"key details {str(details)[:64]!r} are not accepted")
    scheme = SCHEMES[details]
    digest_name = scheme.hash_name
    assert digest_name is not None  # every accepted scheme signs a hash
    algorithm = _DATA_ALGORITHMS[digest_name]
    content = decode_b64(
        _require(signature, "content", "signature"),
        "signature content",
        max_bytes=MAX_SIGNATURE_BYTES,
    )
    digest = decode_b64(_require(spec, "digest", "hashedRekordRequestV002"), "digest", max_bytes=64)
    if len(digest) != hash_algorithm(digest_name).digest_size:
        raise EntryError(f"digest is {len(digest)} bytes, {details} needs a {digest_name} digest")
    if ("publicKey" in verifier) == ("x509Certificate" in verifier):
        raise EntryError("verifier needs exactly one of publicKey or x509Certificate")
    kind = "publicKey" if "publicKey" in verifier else "x509Certificate"
    raw = _object(verifier[kind], kind, {"rawBytes": "raw_bytes"})
    der = decode_b64(
        _require(raw, "rawBytes", kind), f"{kind} rawBytes", max_bytes=MAX_VERIFIER_BYTES
    )
    key = _load_key(kind, der)
    if not scheme.matches(key):
        raise EntryError(f"the verifier's key does not match key details {details}")
    verify_prehashed(key, content, digest, digest_name)
    body = rfc8785.dumps(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "spec": {
                "hashedRekordV002": {
                    "data": {"algorithm": algorithm, "digest": b64encode(digest)},
                    "signature": {
                        "content": b64encode(content),
                        "verifier": {"keyDetails": details, kind: {"rawBytes": b64encode(der)}},
                    },
                }
            },
        }
    )
    if len(body) > tiles.MAX_ENTRY_BYTES:
        raise EntryError(f"entry is larger than {tiles.MAX_ENTRY_BYTES} bytes")
    return Canonical(body)


def _load_key(kind: str, der: bytes) -> VerifyingKey:
    key: PublicKeyTypes
    try:
        if kind == "x509Certificate":
            key = x509.load_der_x509_certificate(der).public_key()
        else:
            key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise EntryError(f"cannot parse the {kind}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise EntryError(f"{kind} key type {type(key).__name__} is not accepted")
    return key


class RekorV2Service:
    """A Rekor v2 log over a `MerkleLog`, its checkpoints signed by one Ed25519/P-256 key."""

    def __init__(
        self,
        *,
        log: MerkleLog,
        storage: LogStorage,
        signer: CheckpointSigner,
        witnessing: Witnessing | None = None,
    ) -> None:
        self._log = log
        self.witnessing = witnessing
        self._storage = storage
        # Full tiles and bundles never change: the most recently read are kept in memory.
        self._full: OrderedDict[tiles.TileRef, bytes] = OrderedDict()
        self._full_bytes = 0
        self._full_lock = threading.Lock()
        self.origin = signer.origin
        self.public_key = signer.public_key
        self.key_id = checkpoint_key_id(signer.public_key, name=signer.name)

    @classmethod
    def open(
        cls,
        *,
        storage: LogStorage,
        private_key: CheckpointKey,
        origin: str,
        anchor: Anchor | None = None,
        new_log: bool = False,
        witnesses: WitnessPolicy | None = None,
    ) -> RekorV2Service:
        """A service over `storage` whose checkpoints name `origin` ("log.example.com").

        With `anchor`, the log keeps its last checkpoint outside the database and refuses to
        start (`LogStartError`) when the database is behind it, forked from it, signed under
        another key, or names another origin, as the v1 log does (`tlog.log.Anchor`); with
        `witnesses`, also when a witness has cosigned a tree its head does not extend.
        """
        if isinstance(private_key, ec.EllipticCurvePrivateKey) and not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise TypeError("an ECDSA checkpoint key must be P-256")
        if not isinstance(private_key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise TypeError("the Rekor v2 checkpoint key must be Ed25519 or ECDSA P-256")
        if anchor is not None:
            check_origin(storage, anchor, origin)
        signer = CheckpointSigner(origin=origin, name=origin, private_key=private_key)
        witnessing = witnessed(witnesses, log_name="Rekor v2 log")
        log = MerkleLog(
            storage,
            signer,
            anchor=anchor,
            new_log=new_log,
            on_signed=witnessing.publish if witnessing is not None else None,
        )
        if witnessing is not None:
            witnessing.confirm(log.head(), proofs=consistency_proofs(log))
        return cls(log=log, storage=storage, signer=signer, witnessing=witnessing)

    @property
    def log(self) -> MerkleLog:
        """The underlying Merkle log."""
        return self._log

    def add_entry(self, request: object) -> V2Entry:
        """Validate and durably log a request; returns once a signed checkpoint covers it.

        Raises:
            EntryError: the request is malformed or its signature does not verify.
            DuplicateEntryError: the same entry is already logged (`.index`).
        """
        canonical = canonicalize(request)
        appended = self._log.append(canonical.body, prove=True)
        if appended.proof is None:
            raise RuntimeError("the log returned no inclusion proof")
        head = appended.head
        return V2Entry(
            log_index=appended.entry.index,
            body=appended.entry.data,
            tree_size=head.size,
            root_hash=head.root_hash,
            hashes=appended.proof,
            checkpoint=self._checkpoint(head).decode(),
        )

    def _checkpoint(self, head: SignedHead) -> bytes:
        """`head`'s checkpoint, with the cosignatures its witnesses gave."""
        if self.witnessing is None:
            return head.signed
        return self.witnessing.cosigned(head)

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint, with its witnesses' cosignatures."""
        return self._checkpoint(self._log.head())

    def read_tile(self, tile: tiles.TileRef) -> bytes:
        """A hash tile or an entry bundle; full ones are cached (they are immutable).

        Raises:
            NotFoundError: the tree has not grown to the tile (or to its partial width).
        """
        with self._full_lock:
            cached = self._full.get(tile)
            if cached is not None:
                self._full.move_to_end(tile)
                return cached
        data = self.entry_bundle(tile) if tile.level is None else self.tile(tile)
        if tile.width is None and len(data) <= MAX_CACHED_BYTES // 64:
            with self._full_lock:
                if tile not in self._full:
                    self._full[tile] = data
                    self._full_bytes += len(data)
                while self._full_bytes > MAX_CACHED_BYTES:
                    self._full_bytes -= len(self._full.popitem(last=False)[1])
        return data

    def tile(self, tile: tiles.TileRef) -> bytes:
        """A hash tile, from storage: its stored node hashes, concatenated.

        Raises:
            NotFoundError: the tree has not grown to the tile (or to its partial width).
        """
        if tile.level is None:
            raise ValueError("an entry bundle is not a hash tile")
        with self._storage.reader() as view:
            head = view.latest_head()
            if head is None:
                raise StorageError("log has no signed tree head")
            if tiles.available(tile.level, tile.index, head.size) < tile.count:
                raise NotFoundError(f"no {tile.path()} in a tree of {head.size}")
            return b"".join(view.read_nodes(tiles.tile_nodes(tile.level, tile.index, tile.count)))

    def entry_bundle(self, tile: tiles.TileRef) -> bytes:
        """An entry bundle, from storage: the canonical bodies of the tile's entries.

        Raises:
            NotFoundError: the tree has not grown to the bundle (or to its partial width).
        """
        start = tile.index * tiles.TILE_WIDTH
        with self._storage.reader() as view:
            head = view.latest_head()
            if head is None:
                raise StorageError("log has no signed tree head")
            if tiles.available(0, tile.index, head.size) < tile.count:
                raise NotFoundError(f"no {tile.path()} in a tree of {head.size}")
            entries = view.entries(start, start + tile.count)
        if len(entries) != tile.count:
            raise StorageError(f"log storage lacks entries of {tile.path()}")
        return tiles.entry_bundle([entry.data for entry in entries])
