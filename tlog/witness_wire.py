"""The bodies of C2SP tlog-witness's `add-checkpoint`, both ways. Pure.

Request: `old <size>\\n`, at most 63 base64 consistency-proof lines, a blank line, then the
signed checkpoint. Answers: 200 with the witness's cosignature lines; 409 with the size the
witness holds (`text/x.tlog.size`); 400, 403, 404 and 422 for the refusals the spec names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keyless.core.encoding import b64decode, b64encode
from keyless.core.errors import Reason
from keyless.tlog.checkpoint import MAX_NOTE_BYTES, NoteSignature, parse_note
from keyless.tlog.errors import CheckpointError, LogError
from keyless.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE

MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = MAX_NOTE_BYTES + 64 * (MAX_PROOF_LINES + 1)
MAX_RESPONSE_BYTES = MAX_NOTE_BYTES
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_SIZE = re.compile(r"(?:0|[1-9][0-9]{0,18})\Z")


class WitnessRequestError(LogError):
    """An add-checkpoint request the witness refuses; `status` is its HTTP status."""

    reason = Reason.WITNESS_REQUEST_REFUSED

    def __init__(self, status: int, message: str, *, held: int | None = None) -> None:
        super().__init__(message)
        # The witness protocol's status is per refusal (400, 403, 404, 409, 422), not per class.
        self.status = status  # type: ignore[misc]
        self.held = held  # for 409: the size of the checkpoint the witness holds


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the size the client believes the witness holds, the
    consistency proof from it, and the signed checkpoint (note text, as sent)."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    def render(self) -> bytes:
        """The request body."""
        lines = [f"old {self.old_size}", *(b64encode(node) for node in self.proof)]
        return ("\n".join(lines) + "\n\n" + self.checkpoint).encode()


def parse_size(text: str, what: str) -> int:
    """A tree size in decimal, no leading zeros.

    Raises:
        ValueError: anything else.
    """
    if not _SIZE.match(text) or int(text) > MAX_TREE_SIZE:
        raise ValueError(f"{what} {text[:24]!r} is not a tree size")
    return int(text)


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Read an add-checkpoint request body (its checkpoint's signatures are not checked).

    Raises:
        WitnessRequestError: 400, the body is malformed or oversized.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise WitnessRequestError(400, f"request body is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessRequestError(400, "request body is not UTF-8") from None
    head, blank, checkpoint = text.partition("\n\n")
    if not blank:
        raise WitnessRequestError(400, "request body has no blank line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old "):
        raise WitnessRequestError(400, "request body does not start with an old size line")
    try:
        old_size = parse_size(first[4:], "old size")
    except ValueError as exc:
        raise WitnessRequestError(400, str(exc)) from None
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRequestError(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            node = b64decode(line, what="consistency proof line", max_bytes=HASH_SIZE)
        except ValueError as exc:
            raise WitnessRequestError(400, str(exc)) from None
        if len(node) != HASH_SIZE:
            raise WitnessRequestError(400, f"consistency proof line is not {HASH_SIZE} bytes")
        proof.append(node)
    return AddCheckpoint(old_size, tuple(proof), checkpoint)


def render_cosignatures(lines: tuple[NoteSignature, ...]) -> bytes:
    """A 200 answer: the witness's signature lines."""
    return "".join(line.render() for line in lines).encode()


def parse_cosignatures(body: bytes, *, checkpoint: str) -> tuple[NoteSignature, ...]:
    """The signature lines of a 200 answer, read as lines of `checkpoint` (not verified).

    Raises:
        CheckpointError: the answer is not signature lines.
    """
    if len(body) > MAX_RESPONSE_BYTES:
        raise CheckpointError(f"witness answer is larger than {MAX_RESPONSE_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError("witness answer is not UTF-8") from None
    text_part = checkpoint.partition("\n\n")[0] + "\n"
    return parse_note(text_part + "\n" + text).signatures


def parse_held_size(body: bytes) -> int:
    """The size in a 409 answer (`<size>\\n`).

    Raises:
        ValueError: the body is not one size line.
    """
    text = body[:32].decode("ascii", "replace")
    if not text.endswith("\n") or len(body) > 32:
        raise ValueError("a 409 answer is one tree size line")
    return parse_size(text[:-1], "held size")
