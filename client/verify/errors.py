"""Errors of client-side verification: one line for the user, naming the check that failed."""

from __future__ import annotations

from keyless.core.encoding import format_rfc3339
from keyless.core.errors import Error, Reason


class VerificationError(Error):
    """A bundle, trust root or artifact failed one named check of verification.

    `reason` is a stable slug naming the check (`sct`, `inclusion-proof`, `identity`, ...),
    also kept as `check`; `detail` says what is wrong, and `message`, the one line
    `keyless verify` prints, is built from the two.
    """

    def __init__(self, *, reason: str, detail: str, hint: str | None = None) -> None:
        super().__init__(
            f"verification failed ({reason}): {detail}", reason=reason, detail=detail, hint=hint
        )
        self.check = reason

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


class BundleError(VerificationError):
    """The bundle is malformed or breaks the rules of its media type."""

    def __init__(self, *, detail: str, hint: str | None = None) -> None:
        super().__init__(reason=Reason.BUNDLE, detail=detail, hint=hint)


class TrustRootError(VerificationError):
    """The trusted root is malformed, unreadable or unusable."""

    def __init__(self, *, detail: str, hint: str | None = None) -> None:
        super().__init__(reason=Reason.TRUST_ROOT, detail=detail, hint=hint)


def quoted(value: str) -> str:
    """`value` in double quotes with JSON escapes, so a message shows it unambiguously."""
    import json

    return json.dumps(value, ensure_ascii=False)


# This module's copy was `iso`; client/trust.py still imports it by that name.
iso = format_rfc3339
