"""DSSE envelopes: in-toto subjects as the artifact (the PAE is `keyless.core.dsse`)."""

from __future__ import annotations

import json

from keyless.client.verify.artifact import DIGEST_ALGORITHMS, Artifact
from keyless.client.verify.errors import VerificationError
from keyless.core.errors import Reason

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"}
)
MAX_SUBJECTS = 4096


def check_subject(payload_type: str, payload: bytes, *, artifact: Artifact) -> None:
    """Check that an in-toto statement names the artifact as a subject.

    A subject matches when every digest it lists that keyless can compute for the artifact
    (SHA-256, SHA-384, SHA-512; a bare digest only its own algorithm) agrees, and there is at
    least one: npm provenance, for one, names its subjects by SHA-512 alone.

    sigstore-models models the envelope but not the in-toto statement inside it, so the
    statement is read here with `json`, strictly: the fields used must have the right types.

    Raises:
        VerificationError("dsse"): not an in-toto statement, or no subject matches.
    """
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationError(
            reason=Reason.DSSE,
            detail=f"envelope payload type {payload_type!r} is not {INTOTO_PAYLOAD_TYPE!r}",
        )
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise VerificationError(
            reason=Reason.DSSE, detail="envelope payload is not valid JSON"
        ) from exc
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        raise VerificationError(
            reason=Reason.DSSE, detail="envelope payload is not an in-toto statement"
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects or len(subjects) > MAX_SUBJECTS:
        raise VerificationError(
            reason=Reason.DSSE, detail="in-toto statement has no usable subject list"
        )
    computed: dict[str, str | None] = {}
    listed: list[str] = []
    for subject in subjects:
        digest = subject.get("digest") if isinstance(subject, dict) else None
        if not isinstance(digest, dict):
            continue
        compared = 0
        agrees = True
        for algorithm in DIGEST_ALGORITHMS:
            value = digest.get(algorithm)
            if not isinstance(value, str):
                continue
            listed.append(f"{algorithm}:{value.lower()}")
            if algorithm not in computed:
                ours = artifact.digest(algorithm)
                computed[algorithm] = ours.hex() if ours is not None else None
            if computed[algorithm] is not None:
                compared += 1
                agrees = agrees and computed[algorithm] == value.lower()
        if compared and agrees:
            return
    raise VerificationError(
        reason=Reason.DSSE,
        detail=f"artifact {artifact.label} is not a subject of the in-toto statement "
        f"(subjects: {', '.join(listed) or 'none with sha256, sha384 or sha512'})",
    )
