"""What did the CA issue, and what was signed with it? Answered from the logs, not the CA.

Every certificate a keyless CA issues is first logged as a precertificate in its
certificate-transparency log, so reading that log is a complete record that the CA cannot
edit afterwards. A full read (from entry 0) also recomputes the Merkle root of every entry
and compares it with the log's signed tree head: the listing is then exactly what the log
committed to, nothing dropped or added on the way.

Each matching certificate's key is then looked up in the signature log (entries are indexed
by the signing key, which is ephemeral and so names one certificate's signatures), and each
entry found is checked to carry a certificate with that same key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from cli.errors import ClientError, NetworkError
from cli.http import json_body, new_session, request
from cli.trust import LogKey

# Our CT log answers at most 256 entries per get-entries call; ask for that many.
PAGE = 256
RETRIEVE_BATCH = 10


class LogIntegrityError(ClientError):
    """A log's answers disagree with what it signed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="log-inconsistent")


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
        from cli.monitor import identity_patterns

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
    """A signature-log entry made with an issued certificate's key."""

    log_index: int
    entry_id: str
    integrated_time: int
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "logIndex": self.log_index,
            "entryId": self.entry_id,
            "integratedTime": self.integrated_time,
            "kind": self.kind,
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

    def to_json(self) -> dict[str, Any]:
        return {
            "ctIndex": self.ct_index,
            "logged": self.logged.isoformat().replace("+00:00", "Z"),
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

    def to_json(self) -> dict[str, Any]:
        return {
            "ctTreeSize": self.tree_size,
            "scanned": {"from": self.scanned_from, "to": self.scanned_to},
            "rootVerified": self.root_verified,
            "certificates": [cert.to_json() for cert in self.certificates],
            "unreadable": list(self.unreadable),
        }


class Auditor:
    """A keyless deployment's CT log (`ct_url`) and signature log (`log_url`)."""

    def __init__(
        self,
        *,
        ct_url: str,
        ct_keys: Sequence[LogKey],
        log_url: str | None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.ct_url = ct_url.rstrip("/")
        self.log_url = log_url.rstrip("/") if log_url else None
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
        progress: Callable[[int, int], None] | None = None,
    ) -> AuditResult:
        """Read CT entries `from_index` on (at most `max_entries`) and list what matches.

        Raises:
            LogIntegrityError: the entries do not hash up to the signed tree head.
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
            if progress is not None and (index + 1 - from_index) % 10_000 == 0:
                progress(index + 1 - from_index, end - from_index)
        if full and frontier.root() != root:
            raise LogIntegrityError(
                f"the CT log at {self.ct_url} returned {size} entries whose Merkle root is not "
                "the root of its signed tree head: it shows a different history than it signed"
            )
        if self.log_url is not None:
            found = [self._with_entries(cert) for cert in found]
        return AuditResult(size, from_index, end, full, tuple(found), tuple(unreadable))

    def signed_tree_head(self) -> tuple[int, bytes]:
        """The CT log's tree size and root, from a tree head its key signed (RFC 6962 §3.5)."""
        doc = self._get(f"{self.ct_url}/ct/v1/get-sth")
        try:
            size = doc["tree_size"]
            timestamp = doc["timestamp"]
            root = base64.b64decode(doc["sha256_root_hash"], validate=True)
            signed = base64.b64decode(doc["tree_head_signature"], validate=True)
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
                        base64.b64decode(e["leaf_input"], validate=True),
                        base64.b64decode(e["extra_data"], validate=True),
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

    def _with_entries(self, cert: IssuedCertificate) -> IssuedCertificate:
        spki = base64.b64encode(cert.public_key_pem).decode()
        ids = self._post(
            f"{self.log_url}/api/v1/index/retrieve",
            {"publicKey": {"format": "x509", "content": spki}},
        )
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise NetworkError(f"the signature log at {self.log_url} sent a malformed search")
        entries: list[SignatureEntry] = []
        for start in range(0, len(ids), RETRIEVE_BATCH):
            answer = self._post(
                f"{self.log_url}/api/v1/log/entries/retrieve",
                {"entryUUIDs": ids[start : start + RETRIEVE_BATCH]},
            )
            for item in answer if isinstance(answer, list) else []:
                for entry_id, entry in item.items() if isinstance(item, dict) else ():
                    made = _signature_entry(entry_id, entry, cert.public_key_pem)
                    if made is not None:
                        entries.append(made)
        entries.sort(key=lambda e: e.log_index)
        return replace(cert, entries=tuple(entries))

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
        raise NetworkError(f"{url} answered HTTP {response.status_code}", reason="unreachable")
    return json_body(body, what=url)


def _issued(index: int, leaf: bytes, extra: bytes) -> IssuedCertificate | None:
    """The certificate an RFC 6962 entry records (precertificate or certificate), parsed."""
    from cli.verify import VerificationError
    from cli.verify.policy import certificate_identities, certificate_issuer

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


def _signature_entry(entry_id: str, entry: Any, public_key_pem: bytes) -> SignatureEntry | None:
    """The entry, if its body really carries a certificate with this key (the index may lie)."""
    from cli.monitor import entry_certificates

    try:
        body = base64.b64decode(entry["body"], validate=True)
        index, time = entry["logIndex"], entry["integratedTime"]
        kind = json.loads(body)["kind"]
    except (KeyError, TypeError, ValueError, binascii.Error, RecursionError):
        return None
    for pem in entry_certificates(body):
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            continue
        spki = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if spki == public_key_pem and isinstance(index, int) and isinstance(time, int):
            return SignatureEntry(index, entry_id, time, str(kind))
    return None


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
        from tlog import leaf_hash, node_hash

        node = (0, leaf_hash(leaf))
        while self._stack and self._stack[-1][0] == node[0]:
            height, left = self._stack.pop()
            node = (height + 1, node_hash(left, node[1]))
        self._stack.append(node)

    def root(self) -> bytes:
        from tlog import EMPTY_ROOT, node_hash

        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            root = node_hash(left, root)
        return root
