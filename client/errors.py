"""Errors of the client library: one line a user can act on, an optional hint, the cause chained."""

from __future__ import annotations

from keyless.core.errors import Error, Reason


class ClientError(Error):
    """Base of client-side failures that `keyless` reports as `error: <message>`."""

    reason = Reason.CLIENT_ERROR


class NetworkError(ClientError):
    """A server could not be reached or answered nonsense."""


class ServiceRefusedError(ClientError):
    """A server (CA, log) refused the request; the message quotes its reason."""
