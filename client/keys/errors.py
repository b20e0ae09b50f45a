"""Errors of long-lived keys: one line naming the key and what is wrong with it."""

from __future__ import annotations

from keyless.client.errors import ClientError


class KeyFileError(ClientError):
    """A key's content cannot be used: unreadable, not a key, a wrong password, a key type
    or size that is not allowed. Nothing was signed with it."""

    def __init__(self, message: str, *, reason: str = "key-file", hint: str | None = None) -> None:
        super().__init__(message, reason=reason, hint=hint)


class KeyReferenceError(ClientError):
    """A key reference names nothing usable here (a bad or unsupported reference, a missing
    file or environment variable): a usage error, exit 2 on the command line."""

    def __init__(
        self, message: str, *, reason: str = "key-reference", hint: str | None = None
    ) -> None:
        super().__init__(message, reason=reason, hint=hint)
