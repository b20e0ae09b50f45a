"""Errors of the client library: one line a user can act on, an optional hint, the cause chained."""

from __future__ import annotations


class ClientError(Exception):
    """Base of client-side failures that `keyless` reports as `error: <message>`."""

    user_facing = True

    def __init__(
        self, message: str, *, reason: str = "client-error", hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.hint = hint


class NetworkError(ClientError):
    """A server could not be reached or answered nonsense."""


class ServiceRefusedError(ClientError):
    """A server (CA, log) refused the request; the message quotes its reason."""
