"""What did the CA issue, and what was signed with it? Answered from the logs, not the CA.

Every certificate a keyless CA issues is first logged as a precertificate in its
certificate-transparency log, so reading that log is a complete record that the CA cannot
edit afterwards. Every entry read is proven part of the tree the CT log's signed tree head
commits to (`client.transparency.ct`), and a precertificate is taken only as the one its leaf
commits to: the listing is exactly what the log committed to, nothing dropped, added or
swapped on the way.

Each matching certificate's signature-log entries are then found in two ways:

- a Rekor v1 log has a search index: the certificate's key is looked up in it (the key is
  ephemeral, so it names one certificate's signatures). The index proves nothing, so each entry
  it names is proven to be the leaf of a checkpoint signed by the log's trusted key and
  consistent with the log's head read at the start (`client.transparency.rekor_v1`), and its
  integrated time is taken only from a signed entry timestamp that verifies. An entry that does
  not prove is named with why, never listed; one that proves is listed if it carries that
  certificate or key (each kind the log holds, intoto 0.0.2 included: entry bodies are read by
  `client.entry_body`);
- a Rekor v2 (tile) log has no search by design: it is read whole from its tiles, every entry
  proven part of the tree its signed checkpoint commits to (`client.transparency.tiles`), and
  each entry is matched to the issued certificates: one that carries a certificate by its serial
  and key, one that carries a bare key by the key.

Each entry listed says what was signed, as its body records it: the artifact digest of a
hashedrekord (for a Rekor v2 entry, the digest signed, which for a DSSE envelope is its PAE's),
and the payload hash of a dsse or intoto entry, with the payload type and predicate type where
the body holds them (an intoto body keeps its statement only where an older log kept it; a
dsse body never does). In both logs, an entry that cannot be read is named, not skipped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from keyless.client.entry_body import (
    EntryBody,
    EntryBodyError,
    HashedRekord,
    InToto,
    Signer,
    SignerForm,
    label,
    parse_entry_body,
)
from keyless.client.errors import ClientError, NetworkError
from keyless.client.transparency.ct import CTEntry, CTEntryError, CTLog
from keyless.client.transparency.rekor_v1 import RETRIEVE_BATCH, ProvenEntry, RekorLog
from keyless.client.transparency.tiles import LogInconsistencyError, TileLog, TreeHead
from keyless.core.encoding import b64encode, format_rfc3339
from keyless.core.errors import Reason

PROGRESS_EVERY = 10_000
REKOR_V1 = "rekor-v1"
REKOR_V2 = "rekor-v2"
CERTIFICATE = "x509Certificate"
PUBLIC_KEY = "publicKey"
MAX_PREDICATE_TYPE_CHARS = 256

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
class SignedContent:
    """What an entry's signature covers, as its body records it (`algorithm:hex` digests).

    A Rekor v1 hashedrekord names the artifact's digest (`artifact_digest`); a Rekor v2 one
    names the digest signed (`digest`), an artifact's or, for a DSSE envelope logged as a
    hashedrekord, its PAE's. A dsse or intoto entry names its payload's hash, with the payload
    type (intoto) and the statement's predicate type where the body holds the statement.
    """

    artifact_digest: str | None = None
    digest: str | None = None
    payload_hash: str | None = None
    payload_type: str | None = None
    predicate_type: str | None = None

    @classmethod
    def of(cls, entry: EntryBody) -> SignedContent:
        if isinstance(entry, HashedRekord):
            value = f"{entry.digest.algorithm}:{entry.digest.value.hex()}"
            if entry.version == "0.0.1":
                return cls(artifact_digest=value)
            return cls(digest=value)
        payload_hash = entry.payload_hash
        found = cls(
            payload_hash=f"{payload_hash.algorithm}:{payload_hash.value.hex()}"
            if payload_hash is not None
            else None
        )
        if isinstance(entry, InToto):
            predicate = _predicate_type(entry.payload) if entry.payload is not None else None
            found = replace(found, payload_type=entry.payload_type, predicate_type=predicate)
        return found

    def to_json(self) -> dict[str, str]:
        fields = {
            "artifactDigest": self.artifact_digest,
            "digest": self.digest,
            "payloadHash": self.payload_hash,
            "payloadType": self.payload_type,
            "predicateType": self.predicate_type,
        }
        return {name: value for name, value in fields.items() if value is not None}

    def describe(self) -> str:
        """One line's worth, e.g. "artifact sha256:…" or "payload sha256:…, predicate …"."""
        if self.artifact_digest is not None:
            return f"artifact {self.artifact_digest}"
        if self.digest is not None:
            return f"digest {self.digest}"
        parts = [f"payload {self.payload_hash or '(no hash recorded)'}"]
        if self.payload_type is not None:
            parts.append(label(self.payload_type, 256))
        if self.predicate_type is not None:
            parts.append(f"predicate {label(self.predicate_type, MAX_PREDICATE_TYPE_CHARS)}")
        else:
            parts.append("predicate type not in the log")
        return ", ".join(parts)


def _predicate_type(payload: bytes) -> str | None:
    """An in-toto statement's `predicateType`, if `payload` is one that names it."""
    from keyless import strictjson

    try:
        statement = strictjson.loads(payload, what="statement")
    except strictjson.JSONError:
        return None
    value = statement.get("predicateType") if isinstance(statement, dict) else None
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class SignatureEntry:
    """A signature-log entry made with an issued certificate (or its bare key).

    `log` is REKOR_V1 or REKOR_V2; `entry_id` is the v1 entry ID (its tree ID and leaf hash),
    or for v2 (which names entries by index only) the hex Merkle leaf hash; a v2 entry has no
    integrated time (None), nor a v1 entry without a signed entry timestamp.
    """

    log: str
    log_index: int
    entry_id: str
    integrated_time: int | None
    kind: str
    verifier: str  # CERTIFICATE or PUBLIC_KEY
    signed: SignedContent

    def to_json(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "logIndex": self.log_index,
            "entryId": self.entry_id,
            "integratedTime": self.integrated_time,
            "kind": self.kind,
            "verifier": self.verifier,
            "signed": self.signed.to_json(),
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
class UnprovenEntry:
    """A Rekor v1 entry the search index named that the log did not prove part of the tree
    it signed; `log_index` is None for one it did not serve at all."""

    log_url: str
    log_index: int | None
    entry_id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "log": REKOR_V1,
            "url": self.log_url,
            "logIndex": self.log_index,
            "entryId": self.entry_id,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class LogRead:
    """A signature log the audit used: v1 searched by key, each entry found proven in its
    checkpoint of `tree_size`; v2 read whole up to `tree_size`."""

    log: str
    url: str
    tree_size: int
    root_hash: bytes

    def to_json(self) -> dict[str, Any]:
        read = (
            "search index, each entry found proven in the signed checkpoint"
            if self.log == REKOR_V1
            else "all entries, each proven in the signed checkpoint"
        )
        return {
            "log": self.log,
            "url": self.url,
            "read": read,
            "treeSize": self.tree_size,
            "rootHash": self.root_hash.hex(),
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
    certificates: tuple[IssuedCertificate, ...]
    unreadable: tuple[int, ...] = ()  # CT indexes whose certificate could not be parsed
    signature_logs: tuple[LogRead, ...] = ()
    unreadable_entries: tuple[UnreadableEntry, ...] = ()
    unproven_entries: tuple[UnprovenEntry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "ctTreeSize": self.tree_size,
            "scanned": {"from": self.scanned_from, "to": self.scanned_to},
            # Every CT entry read is proven in the signed tree head, a partial read too.
            "rootVerified": True,
            "certificates": [cert.to_json() for cert in self.certificates],
            "unreadable": list(self.unreadable),
            "signatureLogs": [log.to_json() for log in self.signature_logs],
            "unreadableSignatureLogEntries": [e.to_json() for e in self.unreadable_entries],
            "unprovenSignatureLogEntries": [e.to_json() for e in self.unproven_entries],
        }


@dataclass(frozen=True)
class _V1Found:
    """What a v1 search for one certificate found: its entries, and those named apart."""

    entries: list[SignatureEntry]
    unreadable: list[UnreadableEntry]
    unproven: list[UnprovenEntry]


class Auditor:
    """A keyless deployment's CT log (`ct`) and signature logs: a Rekor v1 log searched by key
    (`rekor`) and Rekor v2 tile logs read whole (`tile_logs`)."""

    def __init__(
        self, *, ct: CTLog, rekor: RekorLog | None, tile_logs: Sequence[TileLog] = ()
    ) -> None:
        self.ct = ct
        self.rekor = rekor
        self.tile_logs = tuple(tile_logs)

    def run(
        self,
        selector: Selector,
        *,
        from_index: int = 0,
        max_entries: int = 100_000,
        progress: Progress | None = None,
    ) -> AuditResult:
        """Read CT entries `from_index` on (at most `max_entries`), each proven in the signed
        tree head, and list what matches, with the entries each certificate made in the v1 log
        (searched, each entry proven) and the tile logs (read whole).

        Raises:
            LogIntegrityError: the CT entries are not the tree its signed tree head commits
                to, or a log's checkpoint or a tile log's entries are not what it signed.
            NetworkError: a log cannot be reached or answers nonsense.
        """
        try:
            head = self.ct.signed_tree_head()
            if not 0 <= from_index <= head.size:
                raise ClientError(
                    f"--from-index {from_index} is outside the CT log (size {head.size})"
                )
            end = min(head.size, from_index + max_entries)
            found, unreadable = self._read_ct(selector, head, from_index, end, progress)
            v1_head = self.rekor.checkpoint() if self.rekor is not None else None
        except LogInconsistencyError as exc:
            raise LogIntegrityError(exc.message) from exc
        logs: list[LogRead] = []
        made: dict[int, list[SignatureEntry]] = {i: [] for i in range(len(found))}
        unreadable_entries: list[UnreadableEntry] = []
        unproven: dict[str, UnprovenEntry] = {}
        if self.rekor is not None and v1_head is not None:
            rekor = self.rekor
            rekor.begin(v1_head)
            logs.append(LogRead(REKOR_V1, rekor.log_url, v1_head.size, v1_head.root_hash))
            unreadable_v1: dict[int, UnreadableEntry] = {}
            for position, cert in enumerate(found):
                v1 = self._v1_entries(rekor, cert, v1_head)
                made[position].extend(v1.entries)
                unreadable_v1.update((e.log_index, e) for e in v1.unreadable)
                unproven.update((e.entry_id, e) for e in v1.unproven)
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
            head.size,
            from_index,
            end,
            certificates,
            tuple(unreadable),
            tuple(logs),
            tuple(unreadable_entries),
            tuple(sorted(unproven.values(), key=lambda e: (e.log_index is None, e.log_index or 0))),
        )

    def _read_ct(
        self,
        selector: Selector,
        head: TreeHead,
        start: int,
        end: int,
        progress: Progress | None,
    ) -> tuple[list[IssuedCertificate], list[int]]:
        """The selected certificates of CT entries [start, end), each proven in `head`, and
        the indexes of those that hold none keyless can read.

        Raises:
            LogInconsistencyError: an entry is not what the signed tree holds.
        """
        found: list[IssuedCertificate] = []
        unreadable: list[int] = []
        for entry in self.ct.proven_entries(start, end, head):
            issued = _issued(entry)
            if issued is None:
                unreadable.append(entry.index)
            elif selector.selects(issued.identities, issued.issuer, issued.logged):
                found.append(issued)
            done = entry.index + 1 - start
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress("CT", done, end - start)
        return found, unreadable

    def _v1_entries(self, rekor: RekorLog, cert: IssuedCertificate, head: TreeHead) -> _V1Found:
        """The entries the v1 log indexes under `cert`'s key, each proven against `head`: those
        that carry `cert` or its key, those whose body cannot be read, and those that do not
        prove (each named, none skipped)."""
        ids = rekor.post_json(
            "/api/v1/index/retrieve",
            {"publicKey": {"format": "x509", "content": b64encode(cert.public_key_pem)}},
        )
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise NetworkError(f"the signature log at {rekor.log_url} sent a malformed search")
        found = _V1Found([], [], [])
        for start in range(0, len(ids), RETRIEVE_BATCH):
            batch = ids[start : start + RETRIEVE_BATCH]
            served = rekor.retrieve({"entryUUIDs": batch})
            names = {entry_id.lower()[-64:] for entry_id, _ in served}
            found.unproven.extend(
                UnprovenEntry(
                    rekor.log_url, None, entry_id, "the search index names it, the log serves none"
                )
                for entry_id in batch
                if entry_id.lower()[-64:] not in names
            )
            for entry_id, entry in served:
                index = entry.get("logIndex")
                if not isinstance(index, int) or isinstance(index, bool):
                    reason = "the log serves it with no log index"
                    found.unproven.append(UnprovenEntry(rekor.log_url, None, entry_id, reason))
                    continue
                try:
                    proven = rekor.prove_entry(index, entry_id, entry, head)
                except LogInconsistencyError as exc:
                    found.unproven.append(
                        UnprovenEntry(rekor.log_url, index, entry_id, exc.message)
                    )
                    continue
                try:
                    made = _signature_entry(proven, cert)
                except EntryBodyError as exc:
                    found.unreadable.append(
                        UnreadableEntry(REKOR_V1, rekor.log_url, index, str(exc))
                    )
                    continue
                if made is not None:
                    found.entries.append(made)
        return found


def _issued(entry: CTEntry) -> IssuedCertificate | None:
    """The certificate a CT entry records (precertificate or certificate), parsed; None when
    the entry holds none keyless can read.

    Raises:
        LogInconsistencyError: a precertificate that is not the one the entry's leaf commits to.
    """
    from keyless.client.verify import VerificationError
    from keyless.client.verify.policy import certificate_identities, certificate_issuer

    try:
        timestamp = entry.timestamp_ms
        cert = entry.certificate()
    except CTEntryError:
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
        ct_index=entry.index,
        logged=datetime.fromtimestamp(timestamp / 1000, UTC),
        serial=f"{cert.serial_number:x}",
        identities=identities,
        issuer=issuer,
        key_algorithm=_describe_key(key),
        public_key_pem=_spki_pem(key),
    )


def _signature_entry(entry: ProvenEntry, cert: IssuedCertificate) -> SignatureEntry | None:
    """The proven v1 entry, if its body really carries this certificate or its key (the index
    may name others); None for an entry of another signer.

    Raises:
        EntryBodyError: the body is not an entry keyless reads (named by the caller).
    """
    parsed = parse_entry_body(entry.body)
    for signature in parsed.signatures:
        verifier = _signer_verifier(signature.signer)
        if verifier is not None and verifier.names(cert):
            return SignatureEntry(
                REKOR_V1,
                entry.index,
                entry.entry_id,
                entry.integrated_time,
                parsed.kind,
                verifier.kind,
                SignedContent.of(parsed),
            )
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
            if not positions:
                continue
            entry = SignatureEntry(
                REKOR_V2,
                index,
                leaf_hash(body).hex(),
                None,
                "hashedrekord",
                parsed.verifier.kind,
                SignedContent(digest=f"{parsed.algorithm}:{parsed.digest.hex()}"),
            )
            matches.extend((position, entry) for position in positions)
    except LogInconsistencyError as exc:
        raise LogIntegrityError(f"the Rekor v2 log at {log.base_url}: {exc.message}") from exc
    read = LogRead(REKOR_V2, log.base_url, head.size, head.root_hash)
    return TileLogScan(read, tuple(matches), tuple(unreadable))


def _describe_key(key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__
