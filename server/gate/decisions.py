"""The decision log: one JSON line per admission decision, the auditor's answer to "how do you
know that what runs is what you built?".

Each line says when, which request (uid, operation, object, the requesting user), each image as
written and the digest judged, the policies and the authority that decided, the signer, the
verdict, whether it came from the cache, and how long the answer took. It never holds the
object itself, a token or a credential: only names, digests and verdicts.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyless.client.policy import ImageVerdict

STDOUT = "-"


class DecisionLog:
    """JSON lines on a text stream, one write per decision (whole lines, never interleaved)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    @classmethod
    def open(cls, target: str) -> DecisionLog:
        """Standard output for `-`, else the file `target`, appended to."""
        if target == STDOUT:
            return cls(sys.stdout)
        return cls(open(target, "a", encoding="utf-8", buffering=1))

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


def now() -> str:
    """RFC 3339 UTC with milliseconds, as decision lines carry it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def verdict_policies(verdict: ImageVerdict | None) -> list[dict[str, Any]]:
    """Per matching policy: its mode, whether it passed, and the authority and signer that
    passed it (or the first refusal's authority when none did)."""
    if verdict is None:
        return []
    out = []
    for policy in verdict.policies:
        decided = next((a for a in policy.authorities if a.passed), None)
        shown = decided or (policy.authorities[0] if policy.authorities else None)
        out.append(
            {
                "name": policy.name,
                "mode": policy.mode,
                "passed": policy.passed,
                "authority": shown.name if shown is not None else None,
                "signer": decided.identity if decided is not None else None,
                "issuer": decided.issuer if decided is not None else None,
            }
        )
    return out
