"""An RFC 6962 certificate-transparency log on the shared durable Merkle log.

`CTLog` accepts certificate and precertificate chains that end in one of its accepted roots,
appends the RFC 6962 `MerkleTreeLeaf` durably, and returns an SCT signed with its own P-256 key.
Its STHs are the Merkle log's signed heads, signed as RFC 6962 TreeHeadSignatures. It is
Flask-free; `tlog.ct_api` serves it at `/ct/v1/`. It also satisfies the CA's CT-submitter seam
(`add_pre_chain` / `add_chain` return the JSON AddChainResponse).
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from keyless import strictjson
from keyless.core import precert
from keyless.core.encoding import b64decode, b64encode
from keyless.core.errors import Reason
from keyless.tlog.errors import (
    DuplicateEntryError,
    EntryError,
    LogError,
    NotFoundError,
    RequestError,
)
from keyless.tlog.log import Anchor, MerkleLog
from keyless.tlog.merkle import HASH_SIZE
from keyless.tlog.storage import LogStorage

MAX_CHAIN_LENGTH = 10
MAX_CERT_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 512 * 1024
MAX_ENTRIES_PER_REQUEST = 256
MAX_VERIFIED_LINKS = 64
X509_ENTRY = 0
PRECERT_ENTRY = 1
_TIMESTAMPED_ENTRY = 0
_TREE_HASH = 1
_SHA256 = 4
_ECDSA = 3


class CTHeadSigner:
    """Signs tree heads as RFC 6962 TreeHeadSignatures (a `TreeHeadSigner`).

    The stored form is `timestamp (8 bytes) || DigitallySigned`, since the signature covers
    the timestamp and `verify` is not given it.
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if private_key.curve.name != "secp256r1":
            raise ValueError("a CT log key must be ECDSA P-256")
        self._key = private_key
        self.public_key = private_key.public_key()

    def sign(self, *, size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
        signature = self._key.sign(
            _tree_head_input(timestamp_ms, size, root_hash), ec.ECDSA(hashes.SHA256())
        )
        return struct.pack(">Q", timestamp_ms) + _digitally_signed(signature)

    def verify(self, signed: bytes, *, size: int, root_hash: bytes) -> None:
        if len(signed) < 12 or signed[8:10] != bytes([_SHA256, _ECDSA]):
            raise LogError("malformed tree head signature", reason=Reason.STH_INVALID)
        (timestamp_ms,) = struct.unpack(">Q", signed[:8])
        try:
            self.public_key.verify(
                signed[12:],
                _tree_head_input(timestamp_ms, size, root_hash),
                ec.ECDSA(hashes.SHA256()),
            )
        except InvalidSignature as exc:
            raise LogError(
                "tree head signature does not verify", reason=Reason.STH_INVALID
            ) from exc


class CTLog:
    """An RFC 6962 log: add chains, serve STHs, proofs, entries and roots."""

    def __init__(
        self,
        log: MerkleLog,
        *,
        private_key: ec.EllipticCurvePrivateKey,
        roots: Sequence[x509.Certificate],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not roots:
            raise ValueError("a CT log needs at least one accepted root")
        self._log = log
        self._key = private_key
        self._clock = clock
        self.public_key = private_key.public_key()
        spki = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.log_id = hashlib.sha256(spki).digest()
        self.roots = tuple(roots)
        self._root_der = {r.public_bytes(serialization.Encoding.DER): r for r in self.roots}
        # CA-to-CA links already verified (DER of child, DER of parent): every submission
        # repeats the same intermediates, so only the leaf's signature is checked each time.
        self._verified_links: set[tuple[bytes, bytes]] = set()
        self._known_certs: dict[bytes, x509.Certificate] = {}

    @property
    def log(self) -> MerkleLog:
        """The underlying Merkle log."""
        return self._log

    def _remember(
        self, link: tuple[bytes, bytes], child: x509.Certificate, parent: x509.Certificate
    ) -> None:
        if len(self._verified_links) >= MAX_VERIFIED_LINKS:
            self._verified_links.clear()
            self._known_certs.clear()
        self._verified_links.add(link)
        self._known_certs[link[0]] = child
        self._known_certs[link[1]] = parent

    # Writing.

    def add_chain(self, chain: Sequence[bytes]) -> dict[str, Any]:
        """Log a certificate chain (RFC 6962 §4.1); the AddChainResponse JSON.

        Raises:
            EntryError: the chain is malformed, mis-signed, or not rooted in an accepted root.
        """
        certs = self._check_chain(chain, precert=False)
        signed_entry = _u24(chain[0])
        extra = _u24(b"".join(_u24(c) for c in _rooted_tail(chain, certs)))
        return self._add(X509_ENTRY, signed_entry, extra)

    def add_pre_chain(self, chain: Sequence[bytes]) -> dict[str, Any]:
        """Log a precertificate chain (RFC 6962 §4.2); the AddChainResponse JSON.

        Raises:
            EntryError: no poison extension, mis-signed, or not rooted in an accepted root.
        """
        certs = self._check_chain(chain, precert=True)
        issuer_spki = (
            certs[1]
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        tbs = strip_poison(certs[0].tbs_certificate_bytes)
        signed_entry = hashlib.sha256(issuer_spki).digest() + _u24(tbs)
        tail = b"".join(_u24(c) for c in _rooted_tail(chain, certs))
        extra = _u24(chain[0]) + _u24(tail)
        return self._add(PRECERT_ENTRY, signed_entry, extra)

    def _add(self, entry_type: int, signed_entry: bytes, extra: bytes) -> dict[str, Any]:
        timestamp_ms = int(self._clock() * 1000)
        leaf = _merkle_leaf(timestamp_ms, entry_type, signed_entry)
        # An identical leaf already logged makes this SCT the same statement again.
        with contextlib.suppress(DuplicateEntryError):
            self._log.append(leaf, extra=extra)
        # The MerkleTreeLeaf and the SCT's signed input share one layout (both lead 0x00 0x00).
        signature = self._key.sign(leaf, ec.ECDSA(hashes.SHA256()))
        return {
            "sct_version": 0,
            "id": b64encode(self.log_id),
            "timestamp": timestamp_ms,
            "extensions": "",
            "signature": b64encode(_digitally_signed(signature)),
        }

    def _check_chain(self, chain: Sequence[bytes], *, precert: bool) -> list[x509.Certificate]:
        if not 1 <= len(chain) <= MAX_CHAIN_LENGTH:
            raise EntryError(f"a chain must hold 1 to {MAX_CHAIN_LENGTH} certificates")
        if precert and len(chain) < 2:
            raise EntryError("a precertificate chain must include its issuer")
        certs = []
        for position, der in enumerate(chain):
            if not 0 < len(der) <= MAX_CERT_BYTES:
                raise EntryError(f"certificate {position} is empty or too large")
            known = self._known_certs.get(der) if position else None
            if known is not None:
                certs.append(known)
                continue
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise EntryError(f"certificate {position} is not DER X.509") from exc
        leaf = certs[0]
        if _is_ca(leaf) or chain[0] in self._root_der:
            # A CA or root alone (or first) would get an SCT for a certificate that signs
            # nothing by itself: RFC 6962 logs end-entity certificates, and ours code signing.
            raise EntryError(
                "certificate 0 is a CA certificate; this log accepts end-entity certificates only"
            )
        poisoned = _has_poison(leaf)
        if poisoned != precert:
            kind = "precertificate without" if precert else "certificate with"
            raise EntryError(f"a {kind} the critical poison extension")
        try:
            eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = None
        if eku is None or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            raise EntryError("this log accepts code-signing certificates only")
        for position, issuer in enumerate(certs[1:], start=1):
            if chain[position] not in self._root_der:
                _check_is_ca(issuer, position)
        if len(certs) > 1:
            _check_issued_by(leaf, certs[1], 0)
        for position in range(1, len(certs) - 1):
            link = (chain[position], chain[position + 1])
            if link not in self._verified_links:
                _check_issued_by(certs[position], certs[position + 1], position)
                self._remember(link, certs[position], certs[position + 1])
        last = certs[-1]
        if chain[-1] not in self._root_der:
            root = next((r for r in self.roots if _issued_by(last, r)), None)
            if root is None:
                raise EntryError("the chain does not end in a root this log accepts")
            certs.append(root)
        return certs

    # Reading.

    def get_sth(self) -> dict[str, Any]:
        """The latest signed tree head."""
        head = self._log.head()
        return {
            "tree_size": head.size,
            "timestamp": struct.unpack(">Q", head.signed[:8])[0],
            "sha256_root_hash": b64encode(head.root_hash),
            "tree_head_signature": b64encode(head.signed[8:]),
        }

    def get_sth_consistency(self, first: int, second: int) -> dict[str, Any]:
        """The consistency proof between two tree sizes."""
        _, proof = self._log.consistency_proof(first, second)
        return {"consistency": [b64encode(node) for node in proof]}

    def get_proof_by_hash(self, leaf_hash: bytes, tree_size: int) -> dict[str, Any]:
        """The audit path of the leaf with `leaf_hash` in the tree of `tree_size`."""
        if len(leaf_hash) != HASH_SIZE:
            raise RequestError("hash must be a base64 SHA-256 leaf hash")
        index = self._log.find(leaf_hash)
        if index is None or index >= tree_size:
            raise NotFoundError("no leaf with this hash in a tree of this size")
        _, proof = self._log.inclusion_proof(index, tree_size)
        return {"leaf_index": index, "audit_path": [b64encode(n) for n in proof]}

    def get_entries(self, start: int, end: int) -> dict[str, Any]:
        """Entries `start` to `end` inclusive (fewer past the end, at most a page)."""
        if not 0 <= start <= end:
            raise RequestError(f"bad entry range start={start} end={end}")
        end = min(end, start + MAX_ENTRIES_PER_REQUEST - 1)
        found = self._log.entries(start, end + 1)
        return {
            "entries": [
                {
                    "leaf_input": b64encode(e.data),
                    "extra_data": b64encode(e.extra),
                }
                for e in found
            ]
        }

    def get_roots(self) -> dict[str, Any]:
        """The accepted roots."""
        return {"certificates": [b64encode(der) for der in self._root_der]}


def open_ct_log(
    *,
    private_key: ec.EllipticCurvePrivateKey,
    roots: Sequence[x509.Certificate],
    database: Path | None = None,
    storage: LogStorage | None = None,
    anchor: Anchor | None = None,
    new_log: bool = False,
) -> CTLog:
    """The CT log stored in `database` (a SQLite file) or `storage` (e.g. PostgreSQL, shared
    by several instances), signing with `private_key` (P-256).

    The caller keeps the key (`keyless serve` holds it in its state directory, 0600). With
    `anchor`, the last signed tree head is also kept in a file outside the database, and the
    log refuses to start over a database that is missing, behind or forked from it, or signed
    with another key (`tlog.log.MerkleLog`); `new_log` allows an empty database to start a tree.

    Raises:
        LogStartError: (with `anchor`) the database, key and checkpoint file disagree.
        LogError: (without `anchor`) the database's tree heads were signed with another key.
    """
    if storage is None and database is not None:
        from keyless.tlog.sqlite_storage import SQLiteStorage

        storage = SQLiteStorage(database)
    elif storage is None or database is not None:
        raise TypeError("open_ct_log needs exactly one of database and storage")
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CT log key must be an ECDSA private key")
    signer = CTHeadSigner(private_key)
    log = MerkleLog(storage, signer, anchor=anchor, new_log=new_log)
    if anchor is None:
        head = log.head()
        try:
            signer.verify(head.signed, size=head.size, root_hash=head.root_hash)
        except LogError as exc:
            raise LogError(
                f"the CT log in {database or 'its database'} was signed with another key",
                reason=Reason.LOG_KEY_MISMATCH,
                hint="restore the log's original key, or start a new log with a new database",
            ) from exc
    return CTLog(log, private_key=private_key, roots=roots)


def parse_chain_request(body: bytes) -> list[bytes]:
    """The DER certificates of an add-chain / add-pre-chain JSON body.

    Raises:
        EntryError: the body is too large, not JSON, or not `{"chain": [base64, ...]}`.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise EntryError(f"request body exceeds {MAX_REQUEST_BYTES} bytes")
    try:
        document = strictjson.loads(body)
    except strictjson.JSONError as exc:
        raise EntryError(str(exc)) from exc
    chain = document.get("chain") if isinstance(document, dict) else None
    if not isinstance(chain, list) or not 1 <= len(chain) <= MAX_CHAIN_LENGTH:
        raise EntryError(f'expected {{"chain": [...]}} with 1 to {MAX_CHAIN_LENGTH} certificates')
    if not all(isinstance(item, str) and len(item) <= 2 * MAX_CERT_BYTES for item in chain):
        raise EntryError("chain entries must be base64 strings")
    try:
        return [b64decode(item) for item in chain]
    except ValueError as exc:
        raise EntryError("chain entries must be base64 DER certificates") from exc


def strip_poison(tbs: bytes) -> bytes:
    """A precertificate's TBSCertificate with the poison extension removed (RFC 6962 §3.2).

    Raises:
        EntryError: the TBS is not well-formed DER or carries no poison extension.
    """
    try:
        return precert.strip_poison(tbs)
    except ValueError as exc:
        raise EntryError(f"cannot strip the poison extension: {exc}") from exc


def _has_poison(cert: x509.Certificate) -> bool:
    try:
        extension = cert.extensions.get_extension_for_oid(ExtensionOID.PRECERT_POISON)
    except x509.ExtensionNotFound:
        return False
    return extension.critical


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_is_ca(cert: x509.Certificate, position: int) -> None:
    if not _is_ca(cert):
        raise EntryError(f"certificate {position} issues others but is not a CA")


def _check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, position: int) -> None:
    if not _issued_by(cert, issuer):
        raise EntryError(f"certificate {position} is not signed by certificate {position + 1}")


def _rooted_tail(chain: Sequence[bytes], certs: Sequence[x509.Certificate]) -> list[bytes]:
    """The chain after its first certificate, with the accepted root appended if omitted."""
    tail = list(chain[1:])
    if len(certs) > len(chain):
        tail.append(certs[-1].public_bytes(serialization.Encoding.DER))
    return tail


def _merkle_leaf(timestamp_ms: int, entry_type: int, signed_entry: bytes) -> bytes:
    """The RFC 6962 MerkleTreeLeaf (v1, timestamped_entry), with no extensions."""
    return (
        bytes([0, _TIMESTAMPED_ENTRY])
        + struct.pack(">QH", timestamp_ms, entry_type)
        + signed_entry
        + b"\x00\x00"
    )


def _tree_head_input(timestamp_ms: int, size: int, root_hash: bytes) -> bytes:
    return bytes([0, _TREE_HASH]) + struct.pack(">QQ", timestamp_ms, size) + root_hash


def _digitally_signed(signature: bytes) -> bytes:
    return bytes([_SHA256, _ECDSA]) + struct.pack(">H", len(signature)) + signature


def _u24(data: bytes) -> bytes:
    if len(data) >= 1 << 24:
        raise EntryError("a certificate or chain exceeds 16 MiB")
    return len(data).to_bytes(3, "big") + data
