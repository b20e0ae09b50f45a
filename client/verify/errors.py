"""Errors of client-side verification: one line for the user, naming the check that failed."""

from __future__ import annotations

from keyless.core.encoding import format_rfc3339


class VerificationError(Exception):
    """A bundle, trust root or artifact failed one named check of verification.

    `check` is a stable slug naming the check (`sct`, `inclusion-proof`, `identity`, ...); it is
    also the `reason`. `message` is the one line `keyless verify` prints.
    """

    user_facing = True

    def __init__(self, check: str, detail: str, *, hint: str | None = None) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.reason = check
        self.detail = detail
        self.message = f"verification failed ({check}): {detail}"
        self.hint = hint


class BundleError(VerificationError):
    """The bundle is malformed or breaks the rules of its media type."""

    def __init__(self, detail: str, *, hint: str | None = None) -> None:
        super().__init__("bundle", detail, hint=hint)


class TrustRootError(VerificationError):
    """The trusted root is malformed, unreadable or unusable."""

    def __init__(self, detail: str, *, hint: str | None = None) -> None:
        super().__init__("trust-root", detail, hint=hint)


def quoted(value: str) -> str:
    """`value` in double quotes with JSON escapes, so a message shows it unambiguously."""
    import json

    return json.dumps(value, ensure_ascii=False)


# This module's copy was `iso`; client/trust.py still imports it by that name.
iso = format_rfc3339
