"""Errors of long-lived keys: one line naming the key and what is wrong with it."""

from __future__ import annotations

from keyless.client.errors import ClientError
from keyless.core.errors import Reason


class KeyFileError(ClientError):
    """A key's content cannot be used: unreadable, not a key, a wrong password, a key type
    or size that is not allowed. Nothing was signed with it."""

    reason = Reason.KEY_FILE


class KeyReferenceError(ClientError):
    """A key reference names nothing usable here (a bad or unsupported reference, a missing
    file or environment variable): a usage error, exit 2 on the command line."""

    reason = Reason.KEY_REFERENCE
