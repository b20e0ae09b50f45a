"""Reading an RFC 6962 certificate-transparency log as a client: its signed tree head,
consistency proofs, and entries each proven part of a tree it signed.

Nothing the log sends is taken on its word:

- a tree head must be signed by one of the trusted root's keys for the log (RFC 6962 §3.5);
  its origin, as this package calls a tree's name, is that key's log ID (base64);
- a newer tree head must extend an older one by a consistency proof (`get-sth-consistency`);
- entries are read in chunks, and a chunk is yielded only once it proves: its leaves are
  appended to the complete subtrees left of its first entry (the left siblings of that entry's
  inclusion proof, `get-proof-by-hash`; none at entry 0), and the root of the tree that ends
  with the chunk must be the signed root, or be proven to extend to it by a consistency proof.
  A read from entry 0 to the signed size needs no proof at all;
- a precertificate entry's leaf commits to the TBSCertificate (poison extension removed) and
  the issuer's key hash, while the precertificate itself is in `extra_data`, which no hash
  covers: it is the entry's only when its TBS (`core.precert.strip_poison`) and its issuer's
  key are the ones the leaf commits to (a front end cannot swap in another certificate).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from keyless.client.errors import ClientError, NetworkError
from keyless.client.http import json_body, json_field, new_session, request
from keyless.client.transparency.tiles import LogInconsistencyError, TreeHead
from keyless.client.trust import LogKey, TrustedRoot
from keyless.core.encoding import b64decode, b64encode
from keyless.core.errors import Reason
from keyless.core.precert import strip_poison
from keyless.tlog.merkle import CompactRange, left_of_inclusion

# keyless's CT log answers at most 256 entries per get-entries call; ask for that many.
PAGE = 256
# Entries proven at a time: held in memory until their root proves, with one proof each.
CHUNK = 1024
X509_ENTRY = 0
PRECERT_ENTRY = 1


class CTEntryError(ValueError):
    """An entry that holds no certificate keyless can read; `str()` is one line saying why."""


@dataclass(frozen=True)
class CTEntry:
    """Entry `index` of the CT log at `log_url`: its MerkleTreeLeaf (`leaf`) and its
    `extra_data`."""

    log_url: str
    index: int
    leaf: bytes
    extra: bytes

    @property
    def leaf_hash(self) -> bytes:
        from keyless.tlog import leaf_hash

        return leaf_hash(self.leaf)

    @property
    def timestamp_ms(self) -> int:
        """When the log took the entry (the leaf's timestamp), in ms since the epoch.

        Raises:
            CTEntryError: the leaf is not an RFC 6962 v1 timestamped entry.
        """
        return self._header()[0]

    def certificate(self) -> x509.Certificate:
        """The certificate or precertificate the entry records.

        Raises:
            CTEntryError: the entry holds nothing keyless can read as one.
            LogInconsistencyError: the precertificate in `extra_data` is not the one the leaf
                commits to.
        """
        _, entry_type = self._header()
        try:
            if entry_type == X509_ENTRY:
                return x509.load_der_x509_certificate(_vector24(self.leaf, 12)[0])
            if entry_type != PRECERT_ENTRY:
                raise CTEntryError(f"entry type {entry_type} is neither x509 nor precert")
            key_hash, tbs = self.leaf[12:44], _vector24(self.leaf, 44)[0]
            precert_der, offset = _vector24(self.extra, 0)
            issuer_der = _vector24(_vector24(self.extra, offset)[0], 0)[0]
            precert = x509.load_der_x509_certificate(precert_der)
            issuer = x509.load_der_x509_certificate(issuer_der)
            precert_tbs = strip_poison(precert.tbs_certificate_bytes)
        except CTEntryError:
            raise
        except ValueError as exc:
            raise CTEntryError(f"entry holds no readable certificate ({exc})") from None
        issuer_spki = issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if precert_tbs != tbs or hashlib.sha256(issuer_spki).digest() != key_hash:
            raise LogInconsistencyError(
                f"entry {self.index} of the CT log at {self.log_url}: its precertificate (in "
                "extra_data, which no hash covers) is not the one its leaf commits to"
            )
        return precert

    def _header(self) -> tuple[int, int]:
        try:
            version, leaf_type, timestamp, entry_type = struct.unpack(">BBQH", self.leaf[:12])
        except struct.error:
            raise CTEntryError("the leaf is shorter than an RFC 6962 leaf") from None
        if version != 0 or leaf_type != 0:
            raise CTEntryError(f"leaf version {version} type {leaf_type} is not RFC 6962 v1")
        return timestamp, entry_type


def ct_log_keys(root: TrustedRoot, url: str) -> list[LogKey]:
    """The trusted root's keys for the CT log whose endpoints are `url`/ct/v1/...: listed
    under `url`, or under `url`/ct as keyless lists its own (its origin's /ct/v1/)."""
    names = {url.rstrip("/"), url.rstrip("/") + "/ct"}
    return [key for key in root.ctlogs.values() if key.base_url.rstrip("/") in names]


class CTLog:
    """The RFC 6962 log whose endpoints are `url`/ct/v1/..., with its trusted root keys."""

    def __init__(
        self,
        url: str,
        keys: Sequence[LogKey],
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.endpoints = f"{self.url}/ct/v1"
        if not keys:
            raise ClientError(f"the trusted root lists no CT log at {url}")
        self._keys = tuple(keys)
        self._session = session or new_session()
        self._timeout = timeout

    def signed_tree_head(self) -> TreeHead:
        """The log's tree head, from `get-sth`, signed by a trusted key.

        Raises:
            LogInconsistencyError: no trusted key signed it.
            NetworkError: the log cannot be reached or sends a malformed tree head.
        """
        return self.verify_tree_head(self._get("get-sth"))

    def verify_tree_head(self, doc: Any) -> TreeHead:
        """A `get-sth` answer, verified; its `note` is the answer's JSON, to keep as evidence.

        Raises:
            LogInconsistencyError: no trusted key signed it.
            NetworkError: it is malformed.
        """
        try:
            size = json_field(doc, "tree_size", int)
            timestamp = json_field(doc, "timestamp", int)
            root = b64decode(json_field(doc, "sha256_root_hash", str))
            signed = b64decode(json_field(doc, "tree_head_signature", str))
            if len(root) != 32:
                raise ValueError("the root is not a SHA-256 hash")
            (length,) = struct.unpack(">H", signed[2:4])
            signature = signed[4 : 4 + length]
            message = struct.pack(">BBQQ", 0, 1, timestamp, size) + root
        except (TypeError, ValueError, binascii.Error, struct.error) as exc:
            raise NetworkError(f"the CT log at {self.url} sent a malformed tree head") from exc
        for key in self._keys:
            try:
                key.verify(signature, message)
            except (InvalidSignature, ValueError, TypeError):
                continue
            note = {
                "tree_size": size,
                "timestamp": timestamp,
                "sha256_root_hash": b64encode(root),
                "tree_head_signature": b64encode(signed),
            }
            return TreeHead(b64encode(key.key_id), size, root, json.dumps(note, sort_keys=True))
        raise LogInconsistencyError(
            f"the CT log at {self.url} sent a tree head no trusted key signed"
        )

    def prove_extends(self, old: TreeHead, new: TreeHead) -> None:
        """Require `new` to be an append-only extension of `old` (same log key, consistent).

        Raises:
            LogInconsistencyError: another key, a smaller tree, or no valid proof.
            NetworkError: the log cannot be reached or sends a malformed proof.
        """
        if new.origin != old.origin:
            raise LogInconsistencyError(
                f"the CT log at {self.url} signed with another key (log ID {new.origin}, was "
                f"{old.origin}): a new log is not the one this client followed"
            )
        if new.size < old.size:
            raise LogInconsistencyError(
                f"the CT log at {self.url} signed size {new.size} after signing size "
                f"{old.size}: it went back in time (rollback or fork)"
            )
        if new.size == old.size or old.size == 0:
            if new.size == old.size and new.root_hash != old.root_hash:
                raise LogInconsistencyError(
                    f"the CT log at {self.url} signed two different roots for size "
                    f"{new.size}: {old.root_hash.hex()} and {new.root_hash.hex()} (a fork)"
                )
            return
        self._prove_prefix(old.size, old.root_hash, new, what="its earlier tree")

    def entries(self, start: int, end: int) -> Iterator[CTEntry]:
        """Entries [start, end) as `get-entries` pages them, unproven (`proven_entries`).

        Raises:
            LogInconsistencyError: a page holds none, or more than was asked for.
            NetworkError: the log cannot be reached or sends malformed entries.
        """
        index = start
        while index < end:
            last = min(end, index + PAGE) - 1
            doc = self._get(f"get-entries?start={index}&end={last}")
            try:
                page = [
                    (
                        b64decode(json_field(e, "leaf_input", str)),
                        b64decode(json_field(e, "extra_data", str)),
                    )
                    for e in json_field(doc, "entries", list)
                ]
            except (TypeError, ValueError, binascii.Error) as exc:
                raise NetworkError(f"the CT log at {self.url} sent malformed entries") from exc
            if not page or len(page) > last - index + 1:
                raise LogInconsistencyError(
                    f"the CT log at {self.url} answered {len(page)} entries for "
                    f"{index}..{last} of a tree of size {end}"
                )
            for leaf, extra in page:
                yield CTEntry(self.url, index, leaf, extra)
                index += 1

    def proven_entries(self, start: int, end: int, head: TreeHead) -> Iterator[CTEntry]:
        """Entries [start, end) of `head`'s tree, each yielded once its chunk is proven in it.

        Raises:
            LogInconsistencyError: an entry is not the leaf the signed tree holds there.
            NetworkError: the log cannot be reached or sends malformed entries or proofs.
        """
        if not 0 <= start <= end <= head.size:
            raise ValueError(f"entries [{start}, {end}) are not in a tree of {head.size}")
        tree: CompactRange | None = None
        for chunk_start in range(start, end, CHUNK):
            chunk = list(self.entries(chunk_start, min(end, chunk_start + CHUNK)))
            if tree is None:
                tree = self._left_of(chunk[0], head) if chunk_start else CompactRange()
            for entry in chunk:
                tree.append(entry.leaf_hash)
            what = f"entries {chunk_start}..{tree.size - 1}"
            self._prove_prefix(tree.size, tree.root(), head, what=what)
            yield from chunk

    def _left_of(self, entry: CTEntry, head: TreeHead) -> CompactRange:
        """The complete subtrees left of `entry` in `head`'s tree, from its inclusion proof."""
        from keyless.tlog import ProofError

        path = f"get-proof-by-hash?hash={_query(entry.leaf_hash)}&tree_size={head.size}"
        response, body = self._request(path)
        if response.status_code == 404:
            raise LogInconsistencyError(
                f"the CT log at {self.url} served entry {entry.index} but finds no leaf with "
                f"its hash in its tree of size {head.size}"
            )
        doc = _answer(f"{self.url}/ct/v1/{path}", response, body)
        try:
            index = json_field(doc, "leaf_index", int)
            proof = [b64decode(h) for h in json_field(doc, "audit_path", list)]
        except (TypeError, ValueError, binascii.Error) as exc:
            raise NetworkError(f"the CT log at {self.url} sent a malformed proof") from exc
        try:
            if index != entry.index:
                raise ProofError(f"the log puts that leaf at index {index}")
            hashes = left_of_inclusion(
                index=index, size=head.size, leaf=entry.leaf_hash, proof=proof, root=head.root_hash
            )
        except ProofError as exc:
            raise LogInconsistencyError(
                f"entry {entry.index} of the CT log at {self.url} is not in the tree its tree "
                f"head of size {head.size} signs: {exc.message}"
            ) from exc
        return CompactRange(entry.index, hashes)

    def _prove_prefix(self, size: int, root: bytes, head: TreeHead, *, what: str) -> None:
        """Require the tree of `size` with `root` to be `head`'s tree or a prefix of it."""
        from keyless.tlog import ProofError, verify_consistency

        if size == head.size:
            if root != head.root_hash:
                raise LogInconsistencyError(
                    f"{what} of the CT log at {self.url} are not the tree its tree head of "
                    f"size {head.size} signs: it shows a different history than it signed"
                )
            return
        doc = self._get(f"get-sth-consistency?first={size}&second={head.size}")
        try:
            proof = [b64decode(h) for h in json_field(doc, "consistency", list)]
        except (TypeError, ValueError, binascii.Error) as exc:
            raise NetworkError(f"the CT log at {self.url} sent a malformed proof") from exc
        try:
            verify_consistency(
                size1=size, size2=head.size, proof=proof, root1=root, root2=head.root_hash
            )
        except ProofError as exc:
            raise LogInconsistencyError(
                f"the CT log at {self.url} cannot prove that its tree head of size {head.size} "
                f"(root {head.root_hash.hex()}) extends {what} (size {size}, root "
                f"{root.hex()}): {exc.message}; it signed two histories (a fork)"
            ) from exc

    def _get(self, path: str) -> Any:
        response, body = self._request(path)
        return _answer(f"{self.url}/ct/v1/{path}", response, body)

    def _request(self, path: str) -> tuple[requests.Response, bytes]:
        url = f"{self.url}/ct/v1/{path}"
        return request(self._session, "GET", url, what="the log", timeout=self._timeout)


def _answer(url: str, response: requests.Response, body: bytes) -> Any:
    if response.status_code != 200:
        raise NetworkError(f"{url} answered HTTP {response.status_code}", reason=Reason.UNREACHABLE)
    return json_body(body, what=url)


def _query(digest: bytes) -> str:
    """Base64 for a query string: `+`, `/` and `=` percent-encoded."""
    from urllib.parse import quote

    return quote(b64encode(digest), safe="")


def _vector24(data: bytes, offset: int) -> tuple[bytes, int]:
    """An RFC 5246 opaque<1..2^24-1> at `offset`: its bytes and the offset after it."""
    if len(data) < offset + 3:
        raise CTEntryError("a length field is truncated")
    length = int.from_bytes(data[offset : offset + 3], "big")
    end = offset + 3 + length
    if len(data) < end:
        raise CTEntryError("a certificate is truncated")
    return data[offset + 3 : end], end
