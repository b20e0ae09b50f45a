"""Reading a Rekor v1 log as a client: its signed checkpoint, consistency proofs, and entries
each proven to be a leaf of a checkpoint it signed.

A Rekor v1 log answers proofs itself, and nothing it sends is taken on its word:

- its head (`GET /api/v1/log`) must carry a checkpoint signed by one of the trusted root's keys
  for the log;
- a newer checkpoint must extend an older one by a consistency proof (`/api/v1/log/proof`);
- each entry it returns carries an inclusion proof to a checkpoint it signed: the entry's body
  must hash to that leaf at that index, and that checkpoint must be one history with the head
  the reader started from (the same root at the same size, or a consistency proof between them).

`keyless monitor` reads entries by index; `keyless audit` by the entry IDs its search index
names. The index proves nothing; the proofs of the entries it names do.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from keyless.client.errors import ClientError, NetworkError
from keyless.client.http import json_body, json_field, new_session, request
from keyless.client.transparency.tiles import LogInconsistencyError, TreeHead
from keyless.client.trust import LogKey
from keyless.core.encoding import b64decode
from keyless.core.errors import Reason

# Rekor's retrieve endpoint answers at most this many entries per call.
RETRIEVE_BATCH = 10
# Signed checkpoints remembered once verified (a note is a few hundred bytes).
MAX_REMEMBERED_NOTES = 256


@dataclass(frozen=True)
class ProvenEntry:
    """An entry proven to be leaf `index` of a checkpoint consistent with the reader's head."""

    index: int
    entry_id: str
    integrated_time: int | None
    body: bytes


class RekorLog:
    """One Rekor v1 log at `log_url`, checked with its keys from a trusted root.

    The signed roots a reader has tied to its head are remembered from `begin` on, so that the
    entries proven against one checkpoint cost one consistency proof, not one each.
    """

    def __init__(
        self,
        log_url: str,
        keys: Sequence[LogKey],
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not keys:
            raise ClientError(f"the trusted root lists no transparency log at {log_url}")
        self.log_url = log_url.rstrip("/")
        self.keys = tuple(keys)
        self._session = session or new_session()
        self._timeout = timeout
        self._roots: dict[int, bytes] = {}
        self._verified: dict[str, TreeHead] = {}

    def begin(self, head: TreeHead, previous: TreeHead | None = None) -> None:
        """Start proving entries against `head` (and `previous`, proven to extend to it)."""
        self._roots = {head.size: head.root_hash}
        if previous is not None:
            self._roots[previous.size] = previous.root_hash

    def checkpoint(self) -> TreeHead:
        """The log's current checkpoint, verified with a trusted key.

        Raises:
            LogInconsistencyError: no trusted key signed it, or the log's report disagrees
                with it.
            NetworkError: the log cannot be reached or answers nonsense.
        """
        doc = self.get_json("/api/v1/log")
        try:
            head = self.verify_checkpoint(json_field(doc, "signedTreeHead", str))
            size = json_field(doc, "treeSize", int)
            root = bytes.fromhex(json_field(doc, "rootHash", str))
        except (TypeError, ValueError) as exc:
            raise NetworkError(f"the log at {self.log_url} sent a malformed tree head") from exc
        if size != head.size or root != head.root_hash:
            raise LogInconsistencyError(
                f"the log at {self.log_url} reports size {size} root {root.hex()} but its signed "
                f"checkpoint says size {head.size} root {head.root_hash.hex()}"
            )
        return head

    def verify_checkpoint(self, note: str) -> TreeHead:
        """A checkpoint of this log, verified with a trusted key (LogInconsistencyError).

        A note verified once is remembered: the entries of one answer all carry the same one.
        """
        from keyless.tlog import CheckpointError, verify_checkpoint

        known = self._verified.get(note)
        if known is not None:
            return known
        failures = []
        for key in self.keys:
            try:
                checkpoint = verify_checkpoint(note, public_key=key.public_key)
            except (CheckpointError, TypeError) as exc:
                failures.append(str(getattr(exc, "message", exc)))
                continue
            head = TreeHead(checkpoint.origin, checkpoint.size, checkpoint.root_hash, note)
            if len(self._verified) >= MAX_REMEMBERED_NOTES:
                self._verified.clear()
            self._verified[note] = head
            return head
        raise LogInconsistencyError(
            f"the log at {self.log_url} sent a checkpoint no trusted key signed: {failures[-1]}"
        )

    def prove_extends(self, old: TreeHead, new: TreeHead) -> None:
        """Require `new` to be an append-only extension of `old` (same origin, consistent).

        Raises:
            LogInconsistencyError: another origin, a smaller tree, or no valid proof.
            NetworkError: the log cannot be reached or sends a malformed proof.
        """
        from keyless.tlog import ProofError, verify_consistency

        if new.origin != old.origin:
            raise LogInconsistencyError(
                f"the log at {self.log_url} changed its origin from {old.origin!r} to "
                f"{new.origin!r}: a new tree (shard) is not the log this monitor followed"
            )
        if new.size < old.size:
            raise LogInconsistencyError(
                f"the log at {self.log_url} signed size {new.size} after signing size "
                f"{old.size}: it went back in time (rollback or fork)"
            )
        if new.size == old.size or old.size == 0:
            if new.size == old.size and new.root_hash != old.root_hash:
                raise LogInconsistencyError(
                    f"the log at {self.log_url} signed two different roots for size "
                    f"{new.size}: {old.root_hash.hex()} and {new.root_hash.hex()} (a fork)"
                )
            return
        doc = self.get_json(f"/api/v1/log/proof?firstSize={old.size}&lastSize={new.size}")
        try:
            hashes = [bytes.fromhex(h) for h in json_field(doc, "hashes", list)]
            root = bytes.fromhex(json_field(doc, "rootHash", str))
        except (TypeError, ValueError) as exc:
            raise NetworkError(f"the log at {self.log_url} sent a malformed proof") from exc
        try:
            if root != new.root_hash:
                raise ProofError("the proof's root is not the checkpoint's root")
            verify_consistency(
                size1=old.size, size2=new.size, proof=hashes, root1=old.root_hash, root2=root
            )
        except ProofError as exc:
            raise LogInconsistencyError(
                f"the log at {self.log_url} cannot prove that size {new.size} (root "
                f"{new.root_hash.hex()}) extends size {old.size} (root {old.root_hash.hex()}): "
                f"{exc.message}; it signed two histories (a fork)"
            ) from exc

    def entries(self, start: int, end: int, head: TreeHead) -> Iterator[ProvenEntry]:
        """The entries at indexes [start, end), each proven against `head` (after `begin`).

        Raises:
            LogInconsistencyError: an entry is missing or does not prove.
            NetworkError: the log cannot be reached or answers nonsense.
        """
        for batch_start in range(start, end, RETRIEVE_BATCH):
            indexes = list(range(batch_start, min(end, batch_start + RETRIEVE_BATCH)))
            by_index: dict[int, tuple[str, dict[str, Any]]] = {}
            for entry_id, entry in self.retrieve({"logIndexes": indexes}):
                if isinstance(entry.get("logIndex"), int):
                    by_index[entry["logIndex"]] = (entry_id, entry)
            for index in indexes:
                if index not in by_index:
                    raise LogInconsistencyError(
                        f"the log at {self.log_url} did not return entry {index}, which its "
                        f"checkpoint of size {head.size} commits to"
                    )
                entry_id, entry = by_index[index]
                yield self.prove_entry(index, entry_id, entry, head)

    def retrieve(self, query: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The (entry ID, entry) pairs `POST /api/v1/log/entries/retrieve` answers, unproven
        (at most RETRIEVE_BATCH are asked for at once)."""
        answer = self.post_json("/api/v1/log/entries/retrieve", query)
        found = []
        for item in answer if isinstance(answer, list) else []:
            for entry_id, entry in item.items() if isinstance(item, dict) else ():
                if isinstance(entry, dict):
                    found.append((entry_id, entry))
        return found

    def prove_entry(
        self, index: int, entry_id: str, entry: dict[str, Any], head: TreeHead
    ) -> ProvenEntry:
        """The entry, proved to be leaf `index` of a signed checkpoint consistent with `head`.

        Raises:
            LogInconsistencyError: the proof's checkpoint is not signed, of another tree, not
                one history with `head`, or the body is not that leaf.
            NetworkError: the entry is malformed, or a proof cannot be fetched.
        """
        from keyless.tlog import ProofError, leaf_hash, verify_inclusion

        try:
            body = b64decode(json_field(entry, "body", str))
            proof = entry["verification"]["inclusionProof"]
            note = json_field(proof, "checkpoint", str)
            hashes = [bytes.fromhex(h) for h in json_field(proof, "hashes", list)]
            proof_index = json_field(proof, "logIndex", int)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise NetworkError(
                f"the log at {self.log_url} sent a malformed entry {index}: {exc}"
            ) from exc
        signed = self.verify_checkpoint(note)
        if signed.origin != head.origin:
            raise LogInconsistencyError(
                f"entry {index} is proved against a checkpoint of another tree ({signed.origin!r})"
            )
        self._tie(head, signed)
        try:
            if proof_index != index:
                raise ProofError(f"the proof is for index {proof_index}")
            verify_inclusion(
                index=index,
                size=signed.size,
                leaf=leaf_hash(body),
                proof=hashes,
                root=signed.root_hash,
            )
        except ProofError as exc:
            raise LogInconsistencyError(
                f"entry {index} of the log at {self.log_url} is not in the tree its checkpoint "
                f"signs: {exc.message}"
            ) from exc
        leaf = leaf_hash(body).hex()
        if entry_id.lower()[-64:] != leaf:
            raise LogInconsistencyError(
                f"entry {index} of the log at {self.log_url} is served as {entry_id!r}, which "
                f"does not end in its leaf hash {leaf}"
            )
        return ProvenEntry(index, entry_id, self._vouched_time(index, entry, body), body)

    def _vouched_time(self, index: int, entry: dict[str, Any], body: bytes) -> int | None:
        """The entry's integrated time as its signed entry timestamp vouches for it; None when
        it carries none (the time is then not reported).

        Raises:
            LogInconsistencyError: the SET names no trusted key of the log, or does not verify.
            NetworkError: the SET, time or log ID is malformed.
        """
        from cryptography.exceptions import InvalidSignature

        from keyless.client.verify.transparency import set_payload

        promise = entry["verification"].get("signedEntryTimestamp")
        if promise is None:
            return None
        try:
            signature = b64decode(promise)
            time = json_field(entry, "integratedTime", int)
            log_id = bytes.fromhex(json_field(entry, "logID", str))
        except (TypeError, ValueError, binascii.Error) as exc:
            raise NetworkError(
                f"the log at {self.log_url} sent entry {index} with a malformed signed entry "
                f"timestamp: {exc}"
            ) from exc
        key = next((key for key in self.keys if key.key_id == log_id), None)
        if key is None:
            raise LogInconsistencyError(
                f"entry {index} of the log at {self.log_url} names log ID {log_id.hex()}, which "
                "the trusted root does not list for it"
            )
        payload = set_payload(body=body, integrated_time=time, log_id=log_id, log_index=index)
        try:
            key.verify(signature, payload)
        except (InvalidSignature, ValueError, TypeError):
            raise LogInconsistencyError(
                f"entry {index} of the log at {self.log_url}: its signed entry timestamp (of "
                f"integrated time {time}) does not verify with the log's key"
            ) from None
        return time

    def _tie(self, head: TreeHead, other: TreeHead) -> None:
        """Every checkpoint seen since `begin` must belong to one history."""
        known = self._roots.get(other.size)
        if known is not None:
            if known != other.root_hash:
                raise LogInconsistencyError(
                    f"the log at {self.log_url} signed two different roots for size {other.size}"
                )
            return
        older, newer = (head, other) if head.size < other.size else (other, head)
        self.prove_extends(older, newer)
        self._roots[other.size] = other.root_hash

    def get_json(self, path: str) -> Any:
        url = self.log_url + path
        response, body = request(
            self._session, "GET", url, what="the transparency log", timeout=self._timeout
        )
        return _answer(url, response, body)

    def post_json(self, path: str, payload: Any) -> Any:
        url = self.log_url + path
        response, body = request(
            self._session,
            "POST",
            url,
            what="the transparency log",
            json=payload,
            timeout=self._timeout,
        )
        return _answer(url, response, body)


def _answer(url: str, response: requests.Response, body: bytes) -> Any:
    if response.status_code != 200:
        raise NetworkError(
            f"the transparency log at {url} answered HTTP {response.status_code}",
            reason=Reason.UNREACHABLE,
        )
    return json_body(body, what="the transparency log")
