"""What did the CA issue, and what was signed with it? Answered from the logs, not the CA.

Every certificate a keyless CA issues is first logged as a precertificate in its
certificate-transparency log, so reading that log is a complete record that the CA cannot
edit afterwards. A full read (from entry 0) also recomputes the Merkle root of every entry
and compares it with the log's signed tree head: the listing is then exactly what the log
committed to, nothing dropped or added on the way.

Each matching certificate's signature-log entries are then found in two ways:

- a Rekor v1 log has a search index: the certificate's key is looked up in it (the key is
  ephemeral, so it names one certificate's signatures), and each entry found is checked to
  carry that certificate or key (each kind the log holds, intoto 0.0.2 included: entry bodies
  are read by `client.entry_body`);
- a Rekor v2 (tile) log has no search by design: it is read whole from its tiles, every entry
  proven part of the tree its signed checkpoint commits to (`client.transparency.tiles`), and
  each entry is matched to the issued certificates: one that carries a certificate by its serial
  and key, one that carries a bare key by the key.

In both, an entry that cannot be read is named, not skipped.
"""

from __future__ import annotations

import binascii
import functools
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from keyless.client.entry_body import (
    EntryBodyError,
    HashedRekord,
    Signer,
    SignerForm,
    parse_entry_body,
)
from keyless.client.errors import ClientError, NetworkError
from keyless.client.http import json_body, new_session, request
from keyless.client.transparency.tiles import LogInconsistencyError, TileLog
from keyless.client.trust import LogKey
from keyless.core.encoding import b64decode, b64encode, format_rfc3339
from keyless.core.errors import Reason

# Our CT log answers at most 256 entries per get-entries call; ask for that many.
PAGE = 256
RETRIEVE_BATCH = 10
PROGRESS_EVERY = 10_000
REKOR_V1 = "rekor-v1"
REKOR_V2 = "rekor-v2"
CERTIFICATE = "x509Certificate"
PUBLIC_KEY = "publicKey"

Progress = Callable[[str, int, int], None]


class LogIntegrityError(ClientError):
    """A log's answers disagree with what it signed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=Reason.LOG_INCONSISTENT)


@dataclass(frozen=True)
class Selector:
    """Which certificates to list: by identity (exact or anchored regexp) and/or issuer."""

    identities: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    issuers: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def build(
        cls,
        identities: Sequence[str],
        patterns: Sequence[str],
        issuers: Sequence[str],
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Selector:
        """Compile; raises ClientError when nothing is selected or a regexp is bad."""
        if not (identities or patterns or issuers):
            raise ClientError("name an --identity, --identity-regexp or --issuer to audit")
        from keyless.client.transparency.monitor import identity_patterns

        compiled = identity_patterns(patterns)
        return cls(tuple(identities), compiled, tuple(issuers), since, until)

    def selects(self, identities: Sequence[str], issuer: str | None, logged: datetime) -> bool:
        if self.since is not None and logged < self.since:
            return False
        if self.until is not None and logged > self.until:
            return False
        if self.issuers and issuer not in self.issuers:
            return False
        if not (self.identities or self.patterns):
            return True
        return any(
            name in self.identities or any(p.fullmatch(name) for p in self.patterns)
            for name in identities
        )


@dataclass(frozen=True)
class SignatureEntry:
    """A signature-log entry made with an issued certificate (or its bare key).

    `log` is REKOR_V1 or REKOR_V2; `entry_id` is the v1 UUID, or for v2 (which names entries by
    index only) the hex Merkle leaf hash; a v2 entry has no integrated time (None).
    """

    log: str
    log_index: int
    entry_id: str
    integrated_time: int | None
    kind: str
    verifier: str  # CERTIFICATE or PUBLIC_KEY

    def to_json(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "logIndex": self.log_index,
            "entryId": self.entry_id,
            "integratedTime": self.integrated_time,
            "kind": self.kind,
            "verifier": self.verifier,
        }


@dataclass(frozen=True)
class UnreadableEntry:
    """A signature-log entry (proven part of the log) that names no key keyless can read."""

    log: str
    log_url: str
    log_index: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "url": self.log_url,
            "logIndex": self.log_index,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class LogRead:
    """A signature log the audit used: v1 searched by key; v2 read whole up to `tree_size`."""

    log: str
    url: str
    tree_size: int | None = None
    root_hash: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        if self.log == REKOR_V1:
            return {"log": self.log, "url": self.url, "read": "search index"}
        return {
            "log": self.log,
            "url": self.url,
            "read": "all entries, each proven in the signed checkpoint",
            "treeSize": self.tree_size,
            "rootHash": self.root_hash.hex() if self.root_hash is not None else None,
        }


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate the CT log records, with the entries signed under it."""

    ct_index: int
    logged: datetime
    serial: str
    identities: tuple[str, ...]
    issuer: str | None
    key_algorithm: str
    public_key_pem: bytes
    entries: tuple[SignatureEntry, ...] = ()

    @property
    def serial_number(self) -> int:
        return int(self.serial, 16)

    def to_json(self) -> dict[str, Any]:
        return {
            "ctIndex": self.ct_index,
            "logged": format_rfc3339(self.logged),
            "serial": self.serial,
            "identities": list(self.identities),
            "issuer": self.issuer,
            "keyAlgorithm": self.key_algorithm,
            "signatureLogEntries": [entry.to_json() for entry in self.entries],
        }


@dataclass(frozen=True)
class AuditResult:
    tree_size: int
    scanned_from: int
    scanned_to: int
    root_verified: bool
    certificates: tuple[IssuedCertificate, ...]
    unreadable: tuple[int, ...] = ()  # CT indexes whose certificate could not be parsed
    signature_logs: tuple[LogRead, ...] = ()
    unreadable_entries: tuple[UnreadableEntry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "ctTreeSize": self.tree_size,
            "scanned": {"from": self.scanned_from, "to": self.scanned_to},
            "rootVerified": self.root_verified,
            "certificates": [cert.to_json() for cert in self.certificates],
            "unreadable": list(self.unreadable),
            "signatureLogs": [log.to_json() for log in self.signature_logs],
            "unreadableSignatureLogEntries": [e.to_json() for e in self.unreadable_entries],
        }


class Auditor:
    """A keyless deployment's CT log (`ct_url`) and signature logs: a Rekor v1 log searched by
    key (`log_url`) and Rekor v2 tile logs read whole (`tile_logs`)."""

    def __init__(
        self,
        *,
        ct_url: str,
        ct_keys: Sequence[LogKey],
        log_url: str | None,
        tile_logs: Sequence[TileLog] = (),
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.ct_url = ct_url.rstrip("/")
        self.log_url = log_url.rstrip("/") if log_url else None
        self.tile_logs = tuple(tile_logs)
        if not ct_keys:
            raise ClientError(f"the trusted root lists no CT log at {ct_url}")
        self._keys = tuple(ct_keys)
        self._session = session or new_session()
        self._timeout = timeout

    def run(
        self,
        selector: Selector,
        *,
        from_index: int = 0,
        max_entries: int = 100_000,
        progress: Progress | None = None,
    ) -> AuditResult:
        """Read CT entries `from_index` on (at most `max_entries`) and list what matches, with
        the entries each certificate made in the v1 log (searched) and the tile logs (read
        whole).

        Raises:
            LogIntegrityError: the CT entries do not hash up to the signed tree head, or a tile
                log's entries or checkpoint are not what it signed.
            NetworkError: a log cannot be reached or answers nonsense.
        """
        size, root = self.signed_tree_head()
        if not 0 <= from_index <= size:
            raise ClientError(f"--from-index {from_index} is outside the CT log (size {size})")
        end = min(size, from_index + max_entries)
        full = from_index == 0 and end == size
        frontier = _Frontier()
        found: list[IssuedCertificate] = []
        unreadable: list[int] = []
        for index, leaf, extra in self._entries(from_index, end):
            if full:
                frontier.append(leaf)
            issued = _issued(index, leaf, extra)
            if issued is None:
                unreadable.append(index)
            if issued is not None and selector.selects(
                issued.identities, issued.issuer, issued.logged
            ):
                found.append(issued)
            done = index + 1 - from_index
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress("CT", done, end - from_index)
        if full and frontier.root() != root:
            raise LogIntegrityError(
                f"the CT log at {self.ct_url} returned {size} entries whose Merkle root is not "
                "the root of its signed tree head: it shows a different history than it signed"
            )
        logs: list[LogRead] = []
        made: dict[int, list[SignatureEntry]] = {i: [] for i in range(len(found))}
        unreadable_entries: list[UnreadableEntry] = []
        if self.log_url is not None:
            logs.append(LogRead(REKOR_V1, self.log_url))
            unreadable_v1: dict[int, UnreadableEntry] = {}
            for position, cert in enumerate(found):
                entries, unread = self._v1_entries(self.log_url, cert)
                made[position].extend(entries)
                unreadable_v1.update((e.log_index, e) for e in unread)
            unreadable_entries.extend(unreadable_v1[i] for i in sorted(unreadable_v1))
        issued_index = CertificateIndex(found)
        for tile_log in self.tile_logs:
            read = scan_tile_log(tile_log, issued_index, progress=progress)
            logs.append(read.log)
            unreadable_entries.extend(read.unreadable)
            for position, entry in read.matches:
                made[position].append(entry)
        certificates = tuple(
            replace(cert, entries=tuple(sorted(made[i], key=lambda e: (e.log, e.log_index))))
            for i, cert in enumerate(found)
        )
        return AuditResult(
            size,
            from_index,
            end,
            full,
            certificates,
            tuple(unreadable),
            tuple(logs),
            tuple(unreadable_entries),
        )

    def signed_tree_head(self) -> tuple[int, bytes]:
        """The CT log's tree size and root, from a tree head its key signed (RFC 6962 §3.5)."""
        doc = self._get(f"{self.ct_url}/ct/v1/get-sth")
        try:
            size = doc["tree_size"]
            timestamp = doc["timestamp"]
            root = b64decode(doc["sha256_root_hash"])
            signed = b64decode(doc["tree_head_signature"])
            if not isinstance(size, int) or not isinstance(timestamp, int) or len(root) != 32:
                raise ValueError("bad field types")
            (length,) = struct.unpack(">H", signed[2:4])
            signature = signed[4 : 4 + length]
        except (KeyError, TypeError, ValueError, binascii.Error, struct.error) as exc:
            raise NetworkError(f"the CT log at {self.ct_url} sent a malformed tree head") from exc
        message = struct.pack(">BBQQ", 0, 1, timestamp, size) + root
        for key in self._keys:
            try:
                key.verify(signature, message)
            except (InvalidSignature, ValueError, TypeError):
                continue
            return size, root
        raise LogIntegrityError(
            f"the CT log at {self.ct_url} sent a tree head no trusted key signed"
        )

    def _entries(self, start: int, end: int) -> Iterator[tuple[int, bytes, bytes]]:
        index = start
        while index < end:
            last = min(end, index + PAGE) - 1
            doc = self._get(f"{self.ct_url}/ct/v1/get-entries?start={index}&end={last}")
            try:
                page = [
                    (
                        b64decode(e["leaf_input"]),
                        b64decode(e["extra_data"]),
                    )
                    for e in doc["entries"]
                ]
            except (KeyError, TypeError, ValueError, binascii.Error) as exc:
                raise NetworkError(f"the CT log at {self.ct_url} sent malformed entries") from exc
            if not page or len(page) > last - index + 1:
                raise LogIntegrityError(
                    f"the CT log at {self.ct_url} answered {len(page)} entries for "
                    f"{index}..{last} of a tree of size {end}"
                )
            for leaf, extra in page:
                yield index, leaf, extra
                index += 1

    def _v1_entries(
        self, log_url: str, cert: IssuedCertificate
    ) -> tuple[list[SignatureEntry], list[UnreadableEntry]]:
        """The entries the v1 log at `log_url` indexes under `cert`'s key that carry it, and
        those whose body cannot be read (named, not skipped)."""
        spki = b64encode(cert.public_key_pem)
        ids = self._post(
            f"{log_url}/api/v1/index/retrieve",
            {"publicKey": {"format": "x509", "content": spki}},
        )
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise NetworkError(f"the signature log at {log_url} sent a malformed search")
        entries: list[SignatureEntry] = []
        unreadable: list[UnreadableEntry] = []
        for start in range(0, len(ids), RETRIEVE_BATCH):
            answer = self._post(
                f"{log_url}/api/v1/log/entries/retrieve",
                {"entryUUIDs": ids[start : start + RETRIEVE_BATCH]},
            )
            for item in answer if isinstance(answer, list) else []:
                for entry_id, entry in item.items() if isinstance(item, dict) else ():
                    try:
                        made = _signature_entry(entry_id, entry, cert)
                    except EntryBodyError as exc:
                        index = entry["logIndex"]
                        unreadable.append(UnreadableEntry(REKOR_V1, log_url, index, str(exc)))
                        continue
                    if made is not None:
                        entries.append(made)
        return entries, unreadable

    def _get(self, url: str) -> Any:
        response, body = request(self._session, "GET", url, what="the log", timeout=self._timeout)
        return _answer(url, response, body)

    def _post(self, url: str, payload: Any) -> Any:
        response, body = request(
            self._session, "POST", url, what="the log", json=payload, timeout=self._timeout
        )
        return _answer(url, response, body)


def _answer(url: str, response: requests.Response, body: bytes) -> Any:
    if response.status_code != 200:
        raise NetworkError(f"{url} answered HTTP {response.status_code}", reason=Reason.UNREACHABLE)
    return json_body(body, what=url)


def _issued(index: int, leaf: bytes, extra: bytes) -> IssuedCertificate | None:
    """The certificate an RFC 6962 entry records (precertificate or certificate), parsed."""
    from keyless.client.verify import VerificationError
    from keyless.client.verify.policy import certificate_identities, certificate_issuer

    try:
        version, leaf_type, timestamp, entry_type = struct.unpack(">BBQH", leaf[:12])
        if version != 0 or leaf_type != 0:
            return None
        if entry_type == 1:  # precert: extra_data = PrecertChainEntry, precertificate first
            der = _vector24(extra, 0)[0]
        elif entry_type == 0:  # x509: leaf carries the certificate itself
            der = _vector24(leaf, 12)[0]
        else:
            return None
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, struct.error):
        return None
    try:
        identities = tuple(certificate_identities(cert))
    except (VerificationError, ValueError):
        identities = ()
    try:
        issuer: str | None = certificate_issuer(cert)
    except VerificationError:
        issuer = None
    key = cert.public_key()
    return IssuedCertificate(
        ct_index=index,
        logged=datetime.fromtimestamp(timestamp / 1000, UTC),
        serial=f"{cert.serial_number:x}",
        identities=identities,
        issuer=issuer,
        key_algorithm=_describe_key(key),
        public_key_pem=key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def _signature_entry(entry_id: str, entry: Any, cert: IssuedCertificate) -> SignatureEntry | None:
    """The v1 entry, if its body really carries this certificate or its key (the index may
    lie); None for an entry of another signer, or one whose index or time is not a number.

    Raises:
        EntryBodyError: the body is not an entry keyless reads (named by the caller).
    """
    try:
        body = b64decode(entry["body"])
        index, time = entry["logIndex"], entry["integratedTime"]
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    if not isinstance(index, int) or not isinstance(time, int):
        return None
    parsed = parse_entry_body(body)
    for signature in parsed.signatures:
        verifier = _signer_verifier(signature.signer)
        if verifier is not None and verifier.names(cert):
            return SignatureEntry(REKOR_V1, index, entry_id, time, parsed.kind, verifier.kind)
    return None


@dataclass(frozen=True)
class Verifier:
    """Who signed an entry: a certificate (its key and serial) or a bare key (`serial` None)."""

    kind: str  # CERTIFICATE or PUBLIC_KEY
    key: Any
    serial: int | None

    @functools.cached_property
    def public_key_pem(self) -> bytes:
        # Serialised only when compared: most entries of a log are ruled out by serial first.
        return _spki_pem(self.key)

    def names(self, cert: IssuedCertificate) -> bool:
        """A certificate names an issued one by serial and key (a precertificate and its
        certificate share both); a bare key by the key, which is the certificate's own."""
        if self.serial is not None and self.serial != cert.serial_number:
            return False
        return self.public_key_pem == cert.public_key_pem


def _spki_pem(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _signer_verifier(signer: Signer) -> Verifier | None:
    """An entry's certificate or public key as a `Verifier`, or None if it does not parse."""
    try:
        return _parse_signer(signer)
    except (ValueError, UnsupportedAlgorithm):
        return None


def _parse_signer(signer: Signer) -> Verifier:
    """Raises ValueError or UnsupportedAlgorithm when the DER is no certificate or key."""
    if signer.form is SignerForm.CERTIFICATE:
        cert = x509.load_der_x509_certificate(signer.der)
        return Verifier(CERTIFICATE, cert.public_key(), cert.serial_number)
    return Verifier(PUBLIC_KEY, serialization.load_der_public_key(signer.der), None)


@dataclass(frozen=True)
class V2Body:
    """A Rekor v2 entry's signer and what it signed (a digest; for DSSE, of the PAE)."""

    verifier: Verifier
    key: Any
    algorithm: str  # hashlib name: sha256, sha384 or sha512
    digest: bytes
    signature: bytes

    def check_signature(self) -> None:
        """Raises ValueError unless the signature verifies with the verifier's key.

        The log checked it when it took the entry; a log that did not (or that made the
        entry up around someone's certificate) must not have it listed as theirs."""
        from keyless.tlog.errors import EntryError
        from keyless.tlog.pki import verify_prehashed

        try:
            verify_prehashed(self.key, self.signature, self.digest, self.algorithm)
        except (EntryError, ValueError, TypeError, KeyError):
            signer = "certificate" if self.verifier.kind == CERTIFICATE else "public key"
            raise ValueError(
                f"its signature does not verify with its {signer}'s key over its digest"
            ) from None


def parse_v2_entry(body: bytes) -> V2Body:
    """A Rekor v2 entry (hashedrekord 0.0.2, also DSSE logged as one): its certificate or key,
    digest and signature.

    Raises:
        ValueError: the entry is not hashedrekord 0.0.2 (an `EntryBodyError` when it is no
            entry at all), or its certificate or key does not parse; the message is one short
            line naming why.
    """
    entry = parse_entry_body(body)
    if not isinstance(entry, HashedRekord) or entry.version != "0.0.2":
        # A dsse 0.0.2 entry records its payload's hash, not what its signature signs, so
        # its signature cannot be checked; v1 kinds are not what a tile log holds.
        raise ValueError(
            f"entry kind {entry.kind} {entry.version} is not hashedrekord 0.0.2, whose "
            "signature the audit can check"
        )
    signer = entry.signature.signer
    try:
        found = _parse_signer(signer)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{signer.form} does not parse ({_short(str(exc), 80)})") from None
    digest = entry.digest
    return V2Body(found, found.key, digest.algorithm, digest.value, entry.signature.content)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CertificateIndex:
    """The issued certificates by serial and by key, to match a tile log's entries one by one."""

    def __init__(self, certificates: Sequence[IssuedCertificate]) -> None:
        self._by_serial: dict[int, list[tuple[int, IssuedCertificate]]] = {}
        self._by_key: dict[bytes, list[tuple[int, IssuedCertificate]]] = {}
        for position, cert in enumerate(certificates):
            self._by_serial.setdefault(cert.serial_number, []).append((position, cert))
            self._by_key.setdefault(cert.public_key_pem, []).append((position, cert))

    def named_by(self, verifier: Verifier) -> list[int]:
        """Positions of the certificates `verifier` names."""
        if verifier.serial is not None:
            candidates = self._by_serial.get(verifier.serial, ())
        else:
            candidates = self._by_key.get(verifier.public_key_pem, ())
        return [position for position, cert in candidates if verifier.names(cert)]


@dataclass(frozen=True)
class TileLogScan:
    """A tile log read whole: entries matched (certificate position, entry) and unreadable."""

    log: LogRead
    matches: tuple[tuple[int, SignatureEntry], ...]
    unreadable: tuple[UnreadableEntry, ...]


def scan_tile_log(
    log: TileLog, certificates: CertificateIndex, *, progress: Progress | None = None
) -> TileLogScan:
    """Read every entry of a tile log's current checkpoint, each proven in it, and match them.

    Raises:
        LogIntegrityError: the checkpoint is not signed by the log's trusted key, or an entry
            bundle or tile is not what it commits to.
        NetworkError: the log cannot be reached or sends malformed tiles.
    """
    from keyless.tlog import leaf_hash

    matches: list[tuple[int, SignatureEntry]] = []
    unreadable: list[UnreadableEntry] = []
    try:
        head = log.checkpoint()
        for index, body in log.entries(0, head.size, head):
            if progress is not None and index and index % PROGRESS_EVERY == 0:
                progress(REKOR_V2, index, head.size)
            try:
                parsed = parse_v2_entry(body)
                positions = certificates.named_by(parsed.verifier)
                if positions:
                    parsed.check_signature()
            except ValueError as exc:
                unreadable.append(UnreadableEntry(REKOR_V2, log.base_url, index, str(exc)))
                continue
            entry_id = leaf_hash(body).hex() if positions else ""
            for position in positions:
                entry = SignatureEntry(
                    REKOR_V2, index, entry_id, None, "hashedrekord", parsed.verifier.kind
                )
                matches.append((position, entry))
    except LogInconsistencyError as exc:
        raise LogIntegrityError(f"the Rekor v2 log at {log.base_url}: {exc.message}") from exc
    read = LogRead(REKOR_V2, log.base_url, head.size, head.root_hash)
    return TileLogScan(read, tuple(matches), tuple(unreadable))


def _vector24(data: bytes, offset: int) -> tuple[bytes, int]:
    """An RFC 5246 opaque<1..2^24-1> at `offset`: its bytes and the offset after it."""
    if len(data) < offset + 3:
        raise ValueError("truncated length")
    length = int.from_bytes(data[offset : offset + 3], "big")
    end = offset + 3 + length
    if len(data) < end:
        raise ValueError("truncated vector")
    return data[offset + 3 : end], end


def _describe_key(key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__


class _Frontier:
    """The RFC 6962 Merkle tree hash of a stream of leaves, in O(log n) memory."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []

    def append(self, leaf: bytes) -> None:
        from keyless.tlog import leaf_hash, node_hash

        node = (0, leaf_hash(leaf))
        while self._stack and self._stack[-1][0] == node[0]:
            height, left = self._stack.pop()
            node = (height + 1, node_hash(left, node[1]))
        self._stack.append(node)

    def root(self) -> bytes:
        from keyless.tlog import EMPTY_ROOT, node_hash

        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            root = node_hash(left, root)
        return root
