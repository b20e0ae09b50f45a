"""A log's side of its witnesses (C2SP tlog-witness): the start-up check and cosigned heads.

At start-up (`Witnessing.confirm`) the log asks each witness for its view: an add-checkpoint
of its head from size 0 makes a witness that holds a tree answer 409 with that size; the log
then proves its head consistent with it. A witness that has cosigned a larger tree, or
another root at a size it holds, means the log's state is behind or beside what it once
signed (a whole-state restore from a backup): the log refuses to start. Witnesses that cannot
be reached are named; with none confirming, the log starts on its own checkpoint file only.

While serving, each newly signed head is handed (the `tlog.log.MerkleLog` `on_signed` seam)
to one submitter thread per witness, which sends the newest head it has with the consistency
proof from the size that witness holds (one request at a time per witness, as the protocol's
old size needs). The append waits for `threshold` cosignatures of its head for at most
`wait_seconds`, so a slow or dead witness delays appends by no more than that; the
cosignatures received are served with the head (`cosigned`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from keyless.tlog.checkpoint import NoteSignature, parse_note
from keyless.tlog.cosignature import VerifierKey, verify_cosignature, with_signatures
from keyless.tlog.errors import CheckpointError, LogStartError
from keyless.tlog.log import MerkleLog
from keyless.tlog.storage import SignedHead
from keyless.tlog.witness_wire import (
    MAX_RESPONSE_BYTES,
    AddCheckpoint,
    parse_cosignatures,
    parse_held_size,
)

MAX_KEPT_HEADS = 64
USER_AGENT = "keyless-log"
_logger = logging.getLogger(__name__)

# (size1, size2) -> the consistency proof between the log's trees of those sizes.
Proofs = Callable[[int, int], Sequence[bytes]]


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness: where its add-checkpoint is (its submission prefix) and its key."""

    url: str
    key: VerifierKey


@dataclass(frozen=True)
class WitnessPolicy:
    """A log's witnesses, how many must cosign, and how long an append waits for them."""

    witnesses: tuple[WitnessEndpoint, ...]
    threshold: int = 1
    # 0: appends never wait; cosignatures reach the served checkpoints as they arrive.
    wait_seconds: float = 2.0
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.wait_seconds <= 60:
            raise ValueError("an append waits between 0 and 60 seconds for its witnesses")
        if not self.witnesses:
            raise ValueError("a witness policy needs at least one witness")
        if not 1 <= self.threshold <= len(self.witnesses):
            raise ValueError(
                f"witness threshold {self.threshold} must be between 1 and "
                f"{len(self.witnesses)}, the number of witnesses"
            )


@dataclass(frozen=True)
class _Answer:
    """One add-checkpoint answer: cosignature lines (200), a held size (409), or a failure."""

    lines: tuple[NoteSignature, ...] = ()
    held: int | None = None
    status: int | None = None
    problem: str | None = None


class _Disagreement(Exception):
    """A witness's view contradicts the log's head."""


class _Submitter:
    """One witness: its HTTP session, the size it holds, the newest head waiting for it."""

    def __init__(self, endpoint: WitnessEndpoint, policy: WitnessPolicy) -> None:
        self.endpoint = endpoint
        self._timeout = policy.timeout_seconds
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.held: int | None = None
        self.pending: SignedHead | None = None
        self.done = -1  # the size of the last head this witness was asked about
        self.thread: threading.Thread | None = None

    def ask(self, head: SignedHead, old_size: int, proof: Sequence[bytes]) -> _Answer:
        """Send one add-checkpoint; never raises (a failure is an answer)."""
        body = AddCheckpoint(old_size, tuple(proof), head.signed.decode()).render()
        url = f"{self.endpoint.url.rstrip('/')}/add-checkpoint"
        try:
            response = self.session.post(url, data=body, timeout=self._timeout, stream=True)
            try:
                content = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
            finally:
                response.close()
        except (requests.RequestException, OSError) as exc:
            return _Answer(problem=f"unreachable ({type(exc).__name__})")
        if response.status_code == 409:
            try:
                return _Answer(held=parse_held_size(content), status=409)
            except ValueError as exc:
                return _Answer(status=409, problem=str(exc))
        if response.status_code != 200:
            text = content[:200].decode("utf-8", "replace").strip()
            return _Answer(
                status=response.status_code, problem=f"HTTP {response.status_code}: {text}"
            )
        try:
            lines = parse_cosignatures(content, checkpoint=head.signed.decode())
            note = with_signatures(parse_note(head.signed), lines)
            verify_cosignature(note, self.endpoint.key)
        except CheckpointError as exc:
            return _Answer(status=200, problem=f"no valid cosignature: {exc.message}")
        own = tuple(
            line
            for line in lines
            if line.name == self.endpoint.key.name and line.key_hint == self.endpoint.key.key_id
        )
        return _Answer(lines=own, status=200)


class Witnessing:
    """One log's witnesses: the start-up check, the background submitters, cosigned heads."""

    def __init__(self, policy: WitnessPolicy, *, log_name: str) -> None:
        self.policy = policy
        self._log_name = log_name
        self._submitters = [_Submitter(w, policy) for w in policy.witnesses]
        self._proofs: Proofs | None = None
        self._changed = threading.Condition()
        self._cosigned: OrderedDict[tuple[int, bytes], dict[str, NoteSignature]] = OrderedDict()
        self._rendered: dict[tuple[int, bytes], bytes] = {}
        self._closed = False

    # Start-up.

    def confirm(self, head: SignedHead, proofs: Proofs) -> list[str]:
        """Learn every witness's view of this log and check `head` against it; start the
        submitters. Returns why each witness that could not confirm did not.

        Raises:
            LogStartError: a witness has cosigned a larger tree, or another root at a size
                it holds.
        """
        self._proofs = proofs
        with ThreadPoolExecutor(max_workers=len(self._submitters)) as pool:
            views = list(pool.map(lambda s: self._view(s, head), self._submitters))
        disagreements = [view for view in views if isinstance(view, _Disagreement)]
        if disagreements:
            raise LogStartError(
                f"the {self._log_name} refuses to sign: "
                + "; ".join(str(d) for d in disagreements),
                hint="this log's state is older than what it signed (a restore from a backup?): "
                "restore its latest state; never serve it as it is, it would sign a second "
                "history",
            )
        unconfirmed = [view for view in views if isinstance(view, str)]
        confirmed = len(views) - len(unconfirmed)
        if confirmed < self.policy.threshold:
            _logger.warning(
                "WARNING: could not confirm the %s's head (size %d) with its witnesses (%d of "
                "%d confirmed, %d needed: %s); starting on its own checkpoint file, which "
                "agrees with its database, but a restore of the whole state would go unseen",
                self._log_name,
                head.size,
                confirmed,
                len(views),
                self.policy.threshold,
                "; ".join(unconfirmed),
            )
        self._start()
        return unconfirmed

    def _view(self, submitter: _Submitter, head: SignedHead) -> _Disagreement | str | None:
        """None: the witness cosigned `head`; a string: why it could not confirm it."""
        url = submitter.endpoint.url
        answer = submitter.ask(head, 0, ())
        # Another process of this log may move the witness on meanwhile: a few tries.
        for _ in range(3):
            if answer.held is None:
                break
            held = answer.held
            submitter.held = held
            if held > head.size:
                return _Disagreement(
                    f"the witness {url} has cosigned a tree of size {held} of this log, larger "
                    f"than its head (size {head.size})"
                )
            answer = submitter.ask(head, held, self._proof(held, head.size))
            if answer.status == 422:
                return _Disagreement(
                    f"the witness {url} holds another root at size {held} than this log's "
                    f"tree ({answer.problem})"
                )
        if answer.problem is not None or answer.held is not None:
            return f"{url}: {answer.problem or f'holds size {answer.held}'}"
        submitter.held = head.size
        self._record(head, submitter, answer.lines)
        return None

    def _proof(self, old: int, new: int) -> Sequence[bytes]:
        if self._proofs is None:
            raise RuntimeError("witnessing before confirm()")
        return [] if old in (0, new) else self._proofs(old, new)

    def _start(self) -> None:
        for submitter in self._submitters:
            thread = threading.Thread(
                target=self._submit_loop,
                args=(submitter,),
                name=f"witness {submitter.endpoint.url}",
                daemon=True,
            )
            submitter.thread = thread
            thread.start()

    # Serving.

    def publish(self, head: SignedHead) -> None:
        """Hand `head` to every witness, and wait (bounded) for `threshold` cosignatures of
        it or every witness's answer. Never raises: witnesses only add evidence."""
        deadline = time.monotonic() + self.policy.wait_seconds
        key = (head.size, head.root_hash)
        with self._changed:
            for submitter in self._submitters:
                pending = submitter.pending
                if pending is None or pending.size < head.size:
                    submitter.pending = head
            self._changed.notify_all()
            while True:
                got = len(self._cosigned.get(key, ()))
                if got >= self.policy.threshold:
                    return
                if all(s.done >= head.size for s in self._submitters):
                    return
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return
                self._changed.wait(left)

    def _submit_loop(self, submitter: _Submitter) -> None:
        while True:
            with self._changed:
                while submitter.pending is None and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                head, submitter.pending = submitter.pending, None
            assert head is not None
            try:
                self._submit(submitter, head)
            except Exception:  # a bug must not stop this witness's submitter
                _logger.exception("submitting to witness %s failed", submitter.endpoint.url)
            with self._changed:
                submitter.done = max(submitter.done, head.size)
                self._changed.notify_all()

    def _submit(self, submitter: _Submitter, head: SignedHead) -> None:
        url = submitter.endpoint.url
        for _ in range(3):
            held = submitter.held if submitter.held is not None else 0
            if held > head.size:
                return  # it holds a newer head already (another process of this log sent it)
            answer = submitter.ask(head, held, self._proof(held, head.size))
            if answer.held is not None:
                submitter.held = answer.held
                continue
            if answer.problem is not None:
                _logger.warning(
                    "witness %s did not cosign the %s at size %d: %s",
                    url,
                    self._log_name,
                    head.size,
                    answer.problem,
                )
                return
            submitter.held = head.size
            self._record(head, submitter, answer.lines)
            return

    def _record(
        self, head: SignedHead, submitter: _Submitter, lines: tuple[NoteSignature, ...]
    ) -> None:
        key = (head.size, head.root_hash)
        with self._changed:
            kept = self._cosigned.setdefault(key, {})
            for line in lines:
                kept[submitter.endpoint.url] = line
            self._cosigned.move_to_end(key)
            self._rendered.pop(key, None)
            while len(self._cosigned) > MAX_KEPT_HEADS:
                old, _ = self._cosigned.popitem(last=False)
                self._rendered.pop(old, None)
            self._changed.notify_all()

    def cosigned(self, head: SignedHead) -> bytes:
        """`head`'s signed checkpoint with the cosignatures received for it."""
        key = (head.size, head.root_hash)
        with self._changed:
            rendered = self._rendered.get(key)
            if rendered is not None:
                return rendered
            lines = tuple(self._cosigned.get(key, {}).values())
        if not lines:
            return head.signed
        note = with_signatures(parse_note(head.signed), lines)
        rendered = note.render().encode()
        with self._changed:
            if key in self._cosigned:
                self._rendered[key] = rendered
        return rendered

    def close(self) -> None:
        """Stop the submitters (a log that stops serving)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for submitter in self._submitters:
            submitter.session.close()


def witnessed(policy: WitnessPolicy | None, *, log_name: str) -> Witnessing | None:
    """The witnessing of a log under `policy`, or None for a log without witnesses."""
    return None if policy is None else Witnessing(policy, log_name=log_name)


def consistency_proofs(log: MerkleLog) -> Proofs:
    """Consistency proofs between trees of `log`, for its witnesses."""
    return lambda old, new: log.consistency_proof(old, new)[1]
