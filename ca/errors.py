"""Errors of the certificate authority, carrying Fulcio's HTTP status, gRPC code and message.

Each error has `message` (Fulcio's exact client text where Fulcio fixes one), `reason` (a stable
slug for logs and the `details` of the error body), an optional `detail` (the specific cause,
never a secret) and an optional `hint`. The blueprint renders them; the CLI prints them.
"""

from __future__ import annotations

from keyless.core.errors import Error, ProblemsError, Reason, grpc_code

# Fulcio's client messages (fulcio.md §1.7). Clients and their tests match on these strings.
MSG_CSR_UNPARSEABLE = "The certificate signing request could not be parsed"
MSG_KEY_UNPARSEABLE = "The public key supplied in the request could not be parsed"
MSG_KEY_INSECURE = "The public key supplied in the request is insecure"
MSG_SIGNATURE_INVALID = "The signature supplied in the request could not be verified"
MSG_CA_BACKEND = "error communicating with CA backend"
MSG_CT_FAILED = "Error entering certificate in CTL"
MSG_TRUST_BUNDLE = "error retrieving trust bundle from CA backend"


class CAError(Error):
    """Base of every expected CA failure: `status` is the HTTP status, `code` the gRPC code
    Fulcio's gateway pairs with it."""

    status = 400
    reason = Reason.CA_ERROR

    @property
    def code(self) -> int:
        """The gRPC code of Fulcio's error body."""
        return grpc_code(self.status)


class RequestError(CAError):
    """The client's request is malformed, oversized, or fails a check (HTTP 400)."""

    reason = Reason.BAD_REQUEST


class IdentityTokenError(RequestError):
    """The identity token was refused; `detail` names the specific cause."""

    reason = Reason.TOKEN_INVALID


class BackendError(CAError):
    """The CA's own signing failed (HTTP 500); the cause is logged, not returned."""

    status = 500
    reason = Reason.CA_BACKEND_FAILED


class CTLogError(CAError):
    """The CT log refused or could not be reached: no certificate was issued (HTTP 500)."""

    status = 500
    reason = Reason.CT_LOG_FAILED


class CAConfigError(CAError, ProblemsError):
    """The CA configuration or key material is invalid; `problems` has one line each."""

    status = 500
    reason = Reason.CA_CONFIG_INVALID

    def __init__(self, source: str, problems: list[str], *, hint: str | None = None) -> None:
        super().__init__(f"{source} is invalid", problems, hint=hint)
