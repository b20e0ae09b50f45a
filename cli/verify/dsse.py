"""DSSE envelopes: the pre-authentication encoding, and in-toto subjects as the artifact."""

from __future__ import annotations

import json

from cli.verify.errors import VerificationError

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"}
)
MAX_SUBJECTS = 4096


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the envelope signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def check_subject(payload_type: str, payload: bytes, *, sha256_hex: str) -> None:
    """Check that an in-toto statement names the artifact (by SHA-256) as a subject.

    sigstore-models models the envelope but not the in-toto statement inside it, so the
    statement is read here with `json`, strictly: the fields used must have the right types.

    Raises:
        VerificationError("dsse"): not an in-toto statement, or no subject matches.
    """
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationError(
            "dsse", f"envelope payload type {payload_type!r} is not {INTOTO_PAYLOAD_TYPE!r}"
        )
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise VerificationError("dsse", "envelope payload is not valid JSON") from exc
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        raise VerificationError("dsse", "envelope payload is not an in-toto statement")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects or len(subjects) > MAX_SUBJECTS:
        raise VerificationError("dsse", "in-toto statement has no usable subject list")
    digests: list[str] = []
    for subject in subjects:
        digest = subject.get("digest") if isinstance(subject, dict) else None
        value = digest.get("sha256") if isinstance(digest, dict) else None
        if isinstance(value, str):
            digests.append(value.lower())
    if sha256_hex not in digests:
        raise VerificationError(
            "dsse",
            f"artifact sha256:{sha256_hex} is not a subject of the in-toto statement "
            f"(subjects: {', '.join('sha256:' + d for d in digests) or 'none with sha256'})",
        )
