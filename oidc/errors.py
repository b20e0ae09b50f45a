"""Errors of the OIDC bridge: a Fulcio-compatible message, a stable reason slug, and a detail."""

from __future__ import annotations

import json
from typing import Any

from keyless.core.errors import Error, ProblemsError, Reason

# Fulcio answers every token problem with this exact text (fulcio.md §1.7, row 1); clients and
# their tests match on it, so it never changes. The specific cause goes in `detail`.
TOKEN_ERROR_MESSAGE = "There was an error processing the identity token"


class TokenError(Error):
    """A token was refused (HTTP 400).

    Attributes:
        message: what the CA returns to the client (Fulcio's wording).
        reason: a stable slug such as `token-expired`, for logs and machine readers.
        detail: one line naming the specific cause; never contains the token or a secret.
    """

    status = 400
    reason = Reason.TOKEN_INVALID

    def __init__(
        self,
        message: str = TOKEN_ERROR_MESSAGE,
        *,
        reason: str | None = None,
        detail: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason, detail=detail, hint=hint)


class PrincipalError(TokenError):
    """The token verified, but its claims cannot become a certificate identity.

    Fulcio returns the principal's own error text for these (fulcio.md §1.7, row 5), so the
    message is also the detail.
    """

    reason = Reason.CLAIMS_INVALID

    def __init__(self, message: str) -> None:
        super().__init__(message, detail=message)


class ConfigError(ProblemsError):
    """An issuer configuration is invalid; `problems` holds one line per problem."""

    reason = Reason.ISSUER_CONFIG_INVALID

    def __init__(self, source: str, problems: list[str]) -> None:
        where = f" in {source}" if source else ""
        super().__init__(f"invalid issuer configuration{where}", problems)


def quote(value: Any) -> str:
    """A value as it appears in a detail: JSON-quoted, so odd characters stay visible."""
    return json.dumps(value)
