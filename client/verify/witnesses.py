"""Witness cosignatures on a bundle's checkpoint (C2SP tlog-cosignature v1): `keyless verify
--witness KEY --witness-threshold N` requires N of the given witnesses to have cosigned it.

A cosignature says the witness saw no other history of the log up to that checkpoint, so a
log that showed this bundle a fork would need the witnesses to lie too. The checkpoint's own
signature by the log is the verifier's step 11; this is checked after it, on the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.client.verify.errors import VerificationError
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from keyless.client.bundle import Bundle
    from keyless.tlog.cosignature import VerifierKey

MAX_KEY_FILE_BYTES = 4096


def load_witness_key(value: str) -> VerifierKey:
    """A witness's verifier key: a vkey string (`name+id+key`) or a file holding one.

    Raises:
        VerificationError("witness-key"): unreadable, malformed, or not a cosignature key.
    """
    from keyless.tlog.cosignature import COSIGNATURE_V1, parse_vkey
    from keyless.tlog.errors import CheckpointError

    text = value
    if "+" not in value:
        try:
            with open(Path(value), "rb") as handle:
                text = handle.read(MAX_KEY_FILE_BYTES).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise VerificationError(
                reason=Reason.WITNESS_KEY, detail=f"cannot read witness key {value}"
            ) from exc
    try:
        key = parse_vkey(text)
    except CheckpointError as exc:
        raise VerificationError(reason=Reason.WITNESS_KEY, detail=exc.message) from exc
    if key.kind != COSIGNATURE_V1:
        raise VerificationError(
            reason=Reason.WITNESS_KEY,
            detail=f"{key.name}'s key is not a witness's cosignature/v1 (type 0x04) key",
        )
    return key


def check_cosignatures(
    bundle: Bundle, *, witnesses: Sequence[VerifierKey], threshold: int
) -> tuple[str, ...]:
    """The names of the witnesses whose valid cosignature the bundle's checkpoint carries, if
    at least `threshold`.

    Raises:
        VerificationError("witness-cosignature"): fewer, or a cosignature by a given witness
            that does not verify.
    """
    from keyless.tlog.checkpoint import parse_note
    from keyless.tlog.cosignature import verify_cosignature
    from keyless.tlog.errors import CheckpointError

    if not 1 <= threshold <= len(witnesses):
        raise ValueError("the witness threshold must be between 1 and the number of witnesses")
    entry = bundle.entry
    proof = entry.inclusion_proof if entry is not None else None
    if proof is None or proof.checkpoint is None:
        raise VerificationError(
            reason=Reason.WITNESS_COSIGNATURE,
            detail="the bundle has no checkpoint for witnesses to have cosigned",
        )
    try:
        note = parse_note(proof.checkpoint.envelope)
    except CheckpointError as exc:
        raise VerificationError(reason=Reason.WITNESS_COSIGNATURE, detail=exc.message) from exc
    cosigned, missing = [], []
    for key in witnesses:
        try:
            verify_cosignature(note, key)
        except CheckpointError as exc:
            if exc.reason != "cosignature-missing":
                raise VerificationError(
                    reason=Reason.WITNESS_COSIGNATURE, detail=exc.message
                ) from exc
            missing.append(key.name)
            continue
        cosigned.append(key.name)
    if len(cosigned) < threshold:
        raise VerificationError(
            reason=Reason.WITNESS_COSIGNATURE,
            detail=f"{len(cosigned)} of the given witnesses cosigned the bundle's checkpoint, "
            f"{threshold} needed (none from {', '.join(missing)})",
            hint="the log may have submitted the checkpoint after the bundle was made, or the "
            "witnesses were unreachable: sign again, or lower --witness-threshold",
        )
    return tuple(cosigned)
