"""Watching a log from outside: is it append-only, and who signed (or was certified) as us?

A monitor keeps the last checkpoint it verified in a state file. Each run fetches the log's
signed checkpoint, proves it extends the stored one (RFC 9162 consistency proof), then reads
the entries added since the last run. Every entry is tied to a checkpoint the monitor has
verified. A Rekor v1 log (`LogMonitor`) answers proofs itself: each entry's inclusion proof
must hash up to a checkpoint signed by the log, and that checkpoint must be consistent with
the one the run started from. A Rekor v2 log (`TileLogMonitor`) serves only tiles: proofs are
built from them and checked against the signed roots (`client.transparency.tiles`). A CA's
RFC 6962 CT log (`CTLogMonitor`) is read in proven chunks (`client.transparency.ct`). A log
that shows the monitor entries it never committed, or that rewrote its history, is caught, and
the state file is left untouched as evidence.

For each entry's signing certificate, the identities (SAN) and OIDC issuer are compared with
a watch list: a watched identity is reported, and a watched identity certified by an issuer
the watch list does not expect is reported as suspicious. So is a watched identity in a
certificate no certificate authority of the trusted root issued: anyone can log a certificate
they made themselves that names our identity and our issuer (`IssuanceCheck`). This is what
rekor-monitor does for public Sigstore; it works for any keyless deployment too. Entries the
monitor cannot judge are reported, never skipped in silence: a bare public key (no identity),
a kind it does not know, or bytes it cannot read. In a CT log, the certificate itself is the
entry: a certificate issued to a watched identity is reported as soon as the CA logs it, before
anything is signed with it (a precertificate is checked as its CA signed it, directly).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from keyless.client.entry_body import (
    EntryBodyError,
    SignerForm,
    UnknownKindError,
    label,
    parse_entry_body,
)
from keyless.client.errors import ClientError
from keyless.client.http import json_field
from keyless.client.transparency.ct import CTEntryError, CTLog
from keyless.client.transparency.rekor_v1 import RekorLog
from keyless.client.transparency.tiles import LogInconsistencyError, TileLog, TreeHead
from keyless.client.trust import LogKey

if TYPE_CHECKING:
    from cryptography import x509

    from keyless.client.trust import TrustedRoot

__all__ = [
    "CTLogMonitor",
    "IssuanceCheck",
    "LogInconsistencyError",
    "LogMonitor",
    "MonitorState",
    "TileLogMonitor",
    "TreeHead",
    "WatchList",
]

MAX_STATE_BYTES = 64 * 1024
MAX_PATTERN_CHARS = 1024

MATCH = "watched-identity"
UNEXPECTED_ISSUER = "unexpected-issuer"
UNTRUSTED_CERTIFICATE = "untrusted-certificate"
# Why an entry was not judged.
PUBLIC_KEY = "public-key"
UNKNOWN_KIND = "unknown-kind"
UNREADABLE = "unreadable"


class MonitorStateError(ClientError):
    """The state file cannot be read or does not belong to this log."""


@dataclass(frozen=True)
class MonitorState:
    """What persists between runs: the log, its last verified checkpoint, the next index."""

    log_url: str
    head: TreeHead
    next_index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "logUrl": self.log_url,
            "origin": self.head.origin,
            "treeSize": self.head.size,
            "rootHash": self.head.root_hash.hex(),
            "checkpoint": self.head.note,
            "nextIndex": self.next_index,
        }


def load_state(path: Path, *, log_url: str) -> MonitorState | None:
    """The stored state for `log_url`, or None on a first run (no file).

    Raises:
        MonitorStateError: the file is unreadable, malformed, or was written for another log.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MonitorStateError(f"cannot read monitor state {path}: {exc.strerror}") from exc
    if len(data) > MAX_STATE_BYTES:
        raise MonitorStateError(f"monitor state {path} is larger than {MAX_STATE_BYTES} bytes")
    try:
        doc = json.loads(data)
        state = MonitorState(
            log_url=json_field(doc, "logUrl", str),
            head=TreeHead(
                origin=json_field(doc, "origin", str),
                size=json_field(doc, "treeSize", int),
                root_hash=bytes.fromhex(json_field(doc, "rootHash", str)),
                note=json_field(doc, "checkpoint", str),
            ),
            next_index=json_field(doc, "nextIndex", int),
        )
    except (ValueError, TypeError, RecursionError) as exc:
        raise MonitorStateError(f"monitor state {path} is malformed: {exc}") from exc
    if state.log_url != log_url:
        raise MonitorStateError(
            f"monitor state {path} belongs to {state.log_url}, not {log_url}",
            hint="give each log its own --state file",
        )
    return state


def save_state(path: Path, state: MonitorState) -> None:
    """Write the state atomically and durably (temp file, fsync, rename, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(state.to_json(), indent=2) + "\n").encode()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@dataclass(frozen=True)
class WatchList:
    """Identities to report: exact values or anchored regexps, and the issuers expected of them.

    With no expected issuers, every watched identity is only reported; with some, a watched
    identity certified by any other issuer is suspicious (someone else's issuer vouched for
    a name that is ours).
    """

    identities: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    issuers: tuple[str, ...] = ()

    @classmethod
    def build(
        cls, identities: Sequence[str], patterns: Sequence[str], issuers: Sequence[str]
    ) -> WatchList:
        """Compile the patterns; raises ClientError for one that is too long or invalid."""
        return cls(tuple(identities), identity_patterns(patterns), tuple(issuers))

    def watches(self, identity: str) -> bool:
        return identity in self.identities or any(p.fullmatch(identity) for p in self.patterns)


def identity_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """`--identity-regexp` values compiled (matched with fullmatch by their users).

    Raises:
        ClientError: a pattern is too long or not a valid regexp.
    """
    compiled = []
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ClientError(f"--identity-regexp is longer than {MAX_PATTERN_CHARS} chars")
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ClientError(f"--identity-regexp {pattern!r} is not valid: {exc}") from exc
    return tuple(compiled)


class IssuanceCheck:
    """Was a certificate issued by a certificate authority the trusted root lists?

    The identity and issuer a certificate names prove nothing by themselves: anyone can log a
    self-signed certificate naming alice@example.com and the expected OIDC issuer, or one from
    another keyless deployment's CA. Only the signature of a CA the trusted root lists does.
    This is `keyless verify`'s chain step (`client.verify.Verifier`: path building to a CA whose
    validity window and chain cover the moment) run at the certificate's notBefore, the moment
    of issuance: a Fulcio leaf lives minutes, so it has long expired when a monitor reads it.
    One signature verification per certificate that names a watched identity; others are not
    checked.
    """

    def __init__(self, root: TrustedRoot) -> None:
        from keyless.client.verify import Verifier

        self._verifier = Verifier(root)
        self._authorities = root.certificate_authorities

    def untrusted(self, cert: x509.Certificate) -> str | None:
        """None when `cert` chains to a listed CA at its notBefore; otherwise why it does not."""
        from keyless.client.verify import VerificationError

        if _is_precertificate(cert):
            return self._untrusted_precertificate(cert)
        try:
            # The chain step alone: the monitor has no bundle or signed time to give `verify`.
            self._verifier.check_chain(cert, cert.not_valid_before_utc)
        except VerificationError as exc:
            return exc.detail
        except (ValueError, TypeError) as exc:
            # A certificate the path builder cannot even read is not one a CA issued.
            return f"the certificate cannot be path-validated: {exc}"
        return None

    def _untrusted_precertificate(self, precert: x509.Certificate) -> str | None:
        """A precertificate (a CT log's entry) carries the critical poison extension, which path
        validation refuses by design: it is the CA's when a CA of the trusted root, valid at its
        notBefore, signed it directly (keyless's CA and Fulcio sign precertificates so)."""
        from cryptography.exceptions import InvalidSignature

        moment = precert.not_valid_before_utc
        for authority in self._authorities:
            if not authority.certificates or not authority.valid_for.contains(moment):
                continue
            try:
                precert.verify_directly_issued_by(authority.certificates[0])
            except (InvalidSignature, ValueError, TypeError):
                continue
            return None
        return (
            "the precertificate is not signed by a CA of the trusted root valid at "
            f"{moment.isoformat()}"
        )


def _is_precertificate(cert: x509.Certificate) -> bool:
    from cryptography import x509

    try:
        cert.extensions.get_extension_for_oid(x509.oid.ExtensionOID.PRECERT_POISON)
    except x509.ExtensionNotFound:
        return False
    return True


@dataclass(frozen=True)
class Finding:
    """A log entry signed by a watched identity, or (`issued`, a CT log's) a certificate issued
    to one; `reason` says why an untrusted certificate did not chain."""

    kind: str
    log_index: int
    entry_id: str
    identity: str
    issuer: str | None
    integrated_time: int | None
    reason: str | None = None
    issued: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "logIndex": self.log_index,
            "entryId": self.entry_id,
            "identity": self.identity,
            "issuer": self.issuer,
            "integratedTime": self.integrated_time,
            "reason": self.reason,
        }

    def describe(self) -> str:
        # Both come from a certificate anyone may have logged: no terminal control characters.
        issuer = label(self.issuer, 1024) if self.issuer is not None else "no issuer extension"
        what = "certificate issued to" if self.issued else "signed by"
        line = f"entry {self.log_index}: {what} {label(self.identity, 1024)} ({issuer})"
        if self.kind == UNTRUSTED_CERTIFICATE:
            return (
                f"{line}: certificate not issued by any CA the trusted root lists, a forgery "
                f"or another deployment's ({label(self.reason, 2048)})"
            )
        if self.kind == UNEXPECTED_ISSUER:
            return f"{line}: issuer not expected for this identity"
        return line


@dataclass(frozen=True)
class Unjudged:
    """An entry whose signer the monitor could not compare with the watch list, and why:
    `public-key` (a bare key names no identity), `unknown-kind` or `unreadable`."""

    log_index: int
    reason: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"logIndex": self.log_index, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class RunResult:
    """One pass over one log (`rekor_version` None: a CT log): where it started and ended,
    and what it found."""

    log_url: str
    rekor_version: int | None
    previous: TreeHead | None
    head: TreeHead
    scanned_from: int
    scanned_to: int
    findings: tuple[Finding, ...]
    unjudged: tuple[Unjudged, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "log": "ct" if self.rekor_version is None else f"rekor-v{self.rekor_version}",
            "logUrl": self.log_url,
            "rekorVersion": self.rekor_version,
            "treeSize": self.head.size,
            "rootHash": self.head.root_hash.hex(),
            "previousTreeSize": self.previous.size if self.previous else None,
            "scanned": {"from": self.scanned_from, "to": self.scanned_to},
            "findings": [finding.to_json() for finding in self.findings],
            "unjudged": [entry.to_json() for entry in self.unjudged],
        }


class _Monitor(ABC):
    """The run every log kind shares; subclasses read their own log."""

    rekor_version: int | None
    log_url: str
    issuance: IssuanceCheck

    def run(
        self,
        state: MonitorState | None,
        watch: WatchList,
        *,
        from_index: int | None = None,
        max_entries: int = 10_000,
        progress: Callable[[int, int], None] | None = None,
        checkpoint: Callable[[MonitorState], None] | None = None,
    ) -> RunResult:
        """Verify the log's growth since `state` and scan up to `max_entries` new entries.

        `checkpoint` is called with the state to persist as the scan advances, so that an
        interrupted run resumes where it stopped.

        Raises:
            LogInconsistencyError: the log contradicts the stored checkpoint or itself.
            NetworkError: the log cannot be reached or answers nonsense.
        """
        head = self.latest()
        previous = state.head if state else None
        if previous is not None:
            self._prove_extends(previous, head)
        self._begin(previous, head)
        start = state.next_index if state else head.size
        if from_index is not None:
            start = from_index
        if not 0 <= start <= head.size:
            raise ClientError(
                f"--from-index {start} is outside the log at {self.log_url} (size {head.size})"
            )
        end = min(head.size, start + max_entries)
        findings: list[Finding] = []
        unjudged: list[Unjudged] = []
        done = start
        for index, entry_id, time, body in self._entries(start, end, head):
            found, skipped = self._judge(index, entry_id, time, body, watch)
            findings.extend(found)
            if skipped is not None:
                unjudged.append(skipped)
            done = index + 1
            if progress is not None and (done - start) % 1000 == 0:
                progress(done - start, end - start)
            if checkpoint is not None and (done - start) % 1000 == 0:
                checkpoint(MonitorState(self.log_url, head, done))
        return RunResult(
            self.log_url,
            self.rekor_version,
            previous,
            head,
            start,
            done,
            tuple(findings),
            tuple(unjudged),
        )

    @abstractmethod
    def latest(self) -> TreeHead:
        """The log's current checkpoint, verified with a trusted key."""

    @abstractmethod
    def verify_note(self, note: str) -> TreeHead:
        """A checkpoint of this log from elsewhere (a witness), verified with a trusted key."""

    def prove_extends(self, old: TreeHead, new: TreeHead) -> None:
        """Require `new` to extend `old`, by a proof from the log (LogInconsistencyError)."""
        self._prove_extends(old, new)

    @abstractmethod
    def _prove_extends(self, old: TreeHead, new: TreeHead) -> None:
        """Require `new` to extend `old` (raise LogInconsistencyError)."""

    def _begin(self, previous: TreeHead | None, head: TreeHead) -> None:  # noqa: B027 (optional hook)
        """Called once the run's head is proven to extend the stored one."""

    @abstractmethod
    def _entries(
        self, start: int, end: int, head: TreeHead
    ) -> Iterator[tuple[int, str, int | None, Any]]:
        """(index, entry ID, integrated time, entry) for [start, end), each tied to `head`;
        the entry is what `_judge` reads (a Rekor entry's body by default)."""

    def _judge(
        self, index: int, entry_id: str, time: int | None, entry: Any, watch: WatchList
    ) -> tuple[list[Finding], Unjudged | None]:
        """Findings for one entry, and why it (or part of it) could not be judged."""
        return judge_entry(index, entry_id, time, entry, watch, self.issuance)


class TileLogMonitor(_Monitor):
    """One Rekor v2 (tile) log, read through `client.transparency.tiles.TileLog`.

    Its state is kept under the URL the tiles are read from. Entries carry no integrated time
    (Rekor v2 leaves it 0); their ID is the leaf hash. `issuance` holds the trusted root's
    certificate authorities.
    """

    rekor_version = 2

    def __init__(self, log: TileLog, issuance: IssuanceCheck) -> None:
        self.log = log
        self.log_url = log.tiles_url
        self.issuance = issuance

    def latest(self) -> TreeHead:
        return self.log.checkpoint()

    def verify_note(self, note: str) -> TreeHead:
        return self.log.verify_checkpoint(note)

    def _prove_extends(self, old: TreeHead, new: TreeHead) -> None:
        self.log.prove_extends(old, new)

    def _entries(
        self, start: int, end: int, head: TreeHead
    ) -> Iterator[tuple[int, str, int | None, bytes]]:
        from keyless.tlog import leaf_hash

        for index, body in self.log.entries(start, end, head):
            yield index, leaf_hash(body).hex(), None, body


class LogMonitor(_Monitor):
    """One Rekor v1 log at `log_url`, checked with its keys from a trusted root
    (`client.transparency.rekor_v1.RekorLog`); `issuance` holds the root's certificate
    authorities."""

    rekor_version = 1

    def __init__(
        self,
        log_url: str,
        keys: Sequence[LogKey],
        issuance: IssuanceCheck,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.log = RekorLog(log_url, keys, session=session, timeout=timeout)
        self.log_url = self.log.log_url
        self.issuance = issuance

    def _begin(self, previous: TreeHead | None, head: TreeHead) -> None:
        self.log.begin(head, previous)

    def latest(self) -> TreeHead:
        """The log's current checkpoint, verified with the trusted key."""
        return self.log.checkpoint()

    def verify_note(self, note: str) -> TreeHead:
        return self.log.verify_checkpoint(note)

    def _prove_extends(self, old: TreeHead, new: TreeHead) -> None:
        self.log.prove_extends(old, new)

    def _entries(
        self, start: int, end: int, head: TreeHead
    ) -> Iterator[tuple[int, str, int | None, bytes]]:
        for entry in self.log.entries(start, end, head):
            yield entry.index, entry.entry_id, entry.integrated_time, entry.body


class CTLogMonitor(_Monitor):
    """One RFC 6962 CT log, read through `client.transparency.ct.CTLog`: its entries are the
    certificates a CA issued, so a watched identity is reported when a certificate is issued
    to it (a CA's logged precertificate), before anything is signed with it.

    Its state is kept under the log's endpoints URL (`URL/ct/v1`, never a Rekor log's URL) and
    holds the last tree head verified (`TreeHead.note` is its `get-sth` JSON, the signed
    evidence). An entry's ID is its leaf hash, its time the leaf's timestamp (when the log took
    it, in seconds).
    """

    rekor_version = None

    def __init__(self, log: CTLog, issuance: IssuanceCheck) -> None:
        self.log = log
        self.log_url = log.endpoints
        self.issuance = issuance

    def latest(self) -> TreeHead:
        return self.log.signed_tree_head()

    def verify_note(self, note: str) -> TreeHead:
        """Witnesses cosign signed-note checkpoints; an RFC 6962 tree head is not one."""
        raise ClientError(
            f"the CT log at {self.log_url} signs RFC 6962 tree heads, not checkpoints a "
            "witness cosigns: --witness applies to the Rekor logs"
        )

    def _prove_extends(self, old: TreeHead, new: TreeHead) -> None:
        self.log.prove_extends(old, new)

    def _entries(
        self, start: int, end: int, head: TreeHead
    ) -> Iterator[tuple[int, str, int | None, Any]]:
        for entry in self.log.proven_entries(start, end, head):
            yield entry.index, entry.leaf_hash.hex(), None, entry

    def _judge(
        self, index: int, entry_id: str, time: int | None, entry: Any, watch: WatchList
    ) -> tuple[list[Finding], Unjudged | None]:
        """The certificate's watched identities (LogInconsistencyError: a precertificate that
        is not the one its leaf commits to)."""
        try:
            cert = entry.certificate()
            logged = entry.timestamp_ms // 1000
        except CTEntryError as exc:
            return [], Unjudged(index, UNREADABLE, str(exc))
        found = judge_certificate(
            cert, watch, self.issuance, index=index, entry_id=entry_id, time=logged, issued=True
        )
        if found is None:
            return [], Unjudged(index, UNREADABLE, "a certificate that names no identity")
        return found, None


def judge_entry(
    index: int,
    entry_id: str,
    integrated_time: int | None,
    body: bytes,
    watch: WatchList,
    issuance: IssuanceCheck,
) -> tuple[list[Finding], Unjudged | None]:
    """Findings for one entry (each watched identity in each signing certificate), and why
    the entry, or part of it, could not be judged."""
    from cryptography import x509

    try:
        entry = parse_entry_body(body)
    except UnknownKindError as exc:
        return [], Unjudged(index, UNKNOWN_KIND, exc.kind_label)
    except EntryBodyError as exc:
        return [], Unjudged(index, UNREADABLE, str(exc))
    kind = f"{entry.kind} {entry.version}"
    signers = [signature.signer for signature in entry.signatures]
    certificates = [s.der for s in signers if s.form is SignerForm.CERTIFICATE]
    findings: list[Finding] = []
    unreadable = 0
    for der in certificates:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            unreadable += 1
            continue
        found = judge_certificate(
            cert, watch, issuance, index=index, entry_id=entry_id, time=integrated_time
        )
        if found is None:
            unreadable += 1
            continue
        findings += found
    if unreadable:
        what = f"{kind} with a certificate that names no identity or cannot be parsed"
        return findings, Unjudged(index, UNREADABLE, what)
    if not certificates:
        return findings, Unjudged(index, PUBLIC_KEY, kind)
    return findings, None


def judge_certificate(
    cert: x509.Certificate,
    watch: WatchList,
    issuance: IssuanceCheck,
    *,
    index: int,
    entry_id: str,
    time: int | None,
    issued: bool = False,
) -> list[Finding] | None:
    """A finding per watched identity `cert` names (None: it names none that can be read). A
    certificate no trusted CA issued is `untrusted-certificate` whatever its issuer; only
    those naming a watched identity are chain-checked."""
    from keyless.client.verify import VerificationError
    from keyless.client.verify.policy import certificate_identities, certificate_issuer

    try:
        identities = certificate_identities(cert)
    except (ValueError, VerificationError):
        return None
    watched = [identity for identity in identities if watch.watches(identity)]
    if not watched:
        return []
    try:
        issuer: str | None = certificate_issuer(cert)
    except VerificationError:
        issuer = None
    untrusted = issuance.untrusted(cert)
    if untrusted is not None:
        kind = UNTRUSTED_CERTIFICATE
    elif not watch.issuers or issuer in watch.issuers:
        kind = MATCH
    else:
        kind = UNEXPECTED_ISSUER
    return [
        Finding(kind, index, entry_id, identity, issuer, time, untrusted, issued)
        for identity in watched
    ]
