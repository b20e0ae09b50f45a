"""Errors of the OIDC bridge: a Fulcio-compatible message, a stable reason slug, and a detail."""

from __future__ import annotations

import json
from typing import Any

# Fulcio answers every token problem with this exact text (fulcio.md §1.7, row 1); clients and
# their tests match on it, so it never changes. The specific cause goes in `detail`.
TOKEN_ERROR_MESSAGE = "There was an error processing the identity token"


class TokenError(Exception):
    """A token was refused.

    Attributes:
        message: what the CA returns to the client (Fulcio's wording).
        reason: a stable slug such as `token-expired`, for logs and machine readers.
        detail: one line naming the specific cause; never contains the token or a secret.
    """

    user_facing = True

    def __init__(self, reason: str, detail: str, *, message: str = TOKEN_ERROR_MESSAGE) -> None:
        super().__init__(f"{message}: {detail}")
        self.message = message
        self.reason = reason
        self.detail = detail


class PrincipalError(TokenError):
    """The token verified, but its claims cannot become a certificate identity.

    Fulcio returns the principal's own error text for these (fulcio.md §1.7, row 5), so the
    detail is also the message.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("claims-invalid", detail, message=detail)


class ConfigError(Exception):
    """An issuer configuration is invalid; `problems` holds one line per problem."""

    user_facing = True

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        where = f" in {source}" if source else ""
        self.message = f"invalid issuer configuration{where}:\n" + "\n".join(
            f"  - {problem}" for problem in problems
        )
        self.hint = None
        super().__init__(self.message)


def quote(value: Any) -> str:
    """A value as it appears in a detail: JSON-quoted, so odd characters stay visible."""
    return json.dumps(value)
