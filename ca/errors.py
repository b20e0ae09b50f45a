"""Errors of the certificate authority, carrying Fulcio's gRPC code, HTTP status and message.

Each error has `message` (Fulcio's exact client text where Fulcio fixes one), `reason` (a stable
slug for logs and the `details` of the error body), an optional `detail` (the specific cause,
never a secret) and an optional `hint`. The blueprint renders them; the CLI prints them.
"""

from __future__ import annotations

# Fulcio's client messages (fulcio.md §1.7). Clients and their tests match on these strings.
MSG_CSR_UNPARSEABLE = "The certificate signing request could not be parsed"
MSG_KEY_UNPARSEABLE = "The public key supplied in the request could not be parsed"
MSG_KEY_INSECURE = "The public key supplied in the request is insecure"
MSG_SIGNATURE_INVALID = "The signature supplied in the request could not be verified"
MSG_CA_BACKEND = "error communicating with CA backend"
MSG_CT_FAILED = "Error entering certificate in CTL"
MSG_TRUST_BUNDLE = "error retrieving trust bundle from CA backend"

# gRPC status codes used by Fulcio's gateway, and the HTTP status each maps to.
INVALID_ARGUMENT = 3
NOT_FOUND = 5
INTERNAL = 13
HTTP_STATUS = {INVALID_ARGUMENT: 400, NOT_FOUND: 404, INTERNAL: 500}


class CAError(Exception):
    """Base of every expected CA failure; `code` is the gRPC code, `status` the HTTP one."""

    user_facing = True
    code = INVALID_ARGUMENT
    reason = "ca-error"
    hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        detail: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{message}: {detail}" if detail else message)
        self.message = message
        self.detail = detail
        if reason is not None:
            self.reason = reason
        if hint is not None:
            self.hint = hint

    @property
    def status(self) -> int:
        """The HTTP status Fulcio's gateway answers with for this error's gRPC code."""
        return HTTP_STATUS[self.code]


class RequestError(CAError):
    """The client's request is malformed, oversized, or fails a check (HTTP 400)."""

    reason = "bad-request"


class IdentityTokenError(RequestError):
    """The identity token was refused; `detail` names the specific cause."""

    reason = "token-invalid"


class BackendError(CAError):
    """The CA's own signing failed (HTTP 500); the cause is logged, not returned."""

    code = INTERNAL
    reason = "ca-backend-failed"


class CTLogError(CAError):
    """The CT log refused or could not be reached: no certificate was issued (HTTP 500)."""

    code = INTERNAL
    reason = "ct-log-failed"


class CAConfigError(CAError):
    """The CA configuration or key material is invalid; `problems` has one line each."""

    code = INTERNAL
    reason = "ca-config-invalid"

    def __init__(self, source: str, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        text = f"{source} is invalid:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text, hint=hint)
