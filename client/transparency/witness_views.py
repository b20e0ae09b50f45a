"""What a witness saw of a log, held against what the monitor saw (`keyless monitor --witness`).

A witness serves the latest checkpoint it cosigned for each log (C2SP tlog-witness's
`GET <prefix>/<origin hash>/checkpoint`). That checkpoint is signed by the log and cosigned
by the witness; if the monitor's checkpoint of the log does not extend it, or it does not
extend the monitor's (a proof from the log either way), the log has shown two histories and
the pair of signed checkpoints is the evidence. The witness's cosignature is required, so a
witness that answers with something it did not cosign proves nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyless.client.errors import NetworkError
from keyless.client.http import new_session, request
from keyless.client.transparency.tiles import LogInconsistencyError, TreeHead

if TYPE_CHECKING:
    import requests

    from keyless.client.transparency.monitor import _Monitor
    from keyless.tlog.cosignature import VerifierKey

MAX_CHECKPOINT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Witness:
    """A witness to ask: its monitoring URL prefix and its cosignature/v1 key."""

    url: str
    key: VerifierKey


@dataclass(frozen=True)
class WitnessView:
    """A witness's latest cosigned checkpoint of a log, consistent with the monitor's (None:
    it has cosigned none)."""

    witness: Witness
    head: TreeHead | None


class WitnessDisagreementError(LogInconsistencyError):
    """A witness cosigned a checkpoint of the log that the monitor's does not extend, nor
    extends: two signed histories. `theirs` and `ours` are the two checkpoints."""

    def __init__(self, message: str, *, theirs: str, ours: str) -> None:
        super().__init__(message)
        self.theirs = theirs
        self.ours = ours


def check_witness(
    monitor: _Monitor,
    head: TreeHead,
    witness: Witness,
    *,
    session: requests.Session | None = None,
    timeout: float = 30.0,
) -> WitnessView:
    """The witness's view of the log whose checkpoint `head` the monitor verified.

    Raises:
        WitnessDisagreementError: the two checkpoints are not one history.
        NetworkError: the witness cannot be reached, or answers with a checkpoint the log did
            not sign or the witness did not cosign.
    """
    from keyless.tlog import CheckpointError, parse_note
    from keyless.tlog.cosignature import verify_cosignature

    origin_hash = hashlib.sha256(head.origin.encode()).hexdigest()
    url = f"{witness.url.rstrip('/')}/{origin_hash}/checkpoint"
    response, body = request(
        session or new_session(),
        "GET",
        url,
        what=f"the witness {witness.url}",
        timeout=timeout,
    )
    if response.status_code == 404:
        return WitnessView(witness, None)
    if response.status_code != 200:
        raise NetworkError(f"the witness {witness.url} answered HTTP {response.status_code}")
    if len(body) > MAX_CHECKPOINT_BYTES:
        raise NetworkError(f"the witness {witness.url} sent more than a checkpoint")
    note = body.decode("utf-8", "replace")
    try:
        verify_cosignature(parse_note(note), witness.key)
    except CheckpointError as exc:
        raise NetworkError(
            f"the witness {witness.url} sent a checkpoint without its valid cosignature: "
            f"{exc.message}"
        ) from exc
    try:
        theirs = monitor.verify_note(note)
    except LogInconsistencyError as exc:
        raise NetworkError(
            f"the witness {witness.url} sent a checkpoint the log did not sign: {exc.message}"
        ) from exc
    if theirs.origin != head.origin:
        raise NetworkError(f"the witness {witness.url} sent another log's checkpoint")
    try:
        if theirs.size <= head.size:
            monitor.prove_extends(theirs, head)
        else:
            monitor.prove_extends(head, theirs)
    except LogInconsistencyError as exc:
        raise WitnessDisagreementError(
            f"the witness {witness.url} cosigned the log at size {theirs.size} (root "
            f"{theirs.root_hash.hex()}), which is not one history with the monitor's size "
            f"{head.size} (root {head.root_hash.hex()}): {exc.message}",
            theirs=note,
            ours=head.note,
        ) from exc
    return WitnessView(witness, theirs)
