"""Errors of the OCI registry client: one line a user can act on, a stable reason slug, a hint."""

from __future__ import annotations


class RegistryError(Exception):
    """A registry operation failed for a reason the user can act on.

    Attributes:
        message: one line for the user; names the registry, repository or digest involved.
        reason: a stable slug such as `auth-required`, for logs and machine readers.
        hint: an optional remedy.
    """

    user_facing = True
    reason = "registry-error"

    def __init__(self, message: str, *, hint: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if reason is not None:
            self.reason = reason


class InvalidReferenceError(RegistryError):
    """An image reference does not follow the docker/distribution grammar."""

    reason = "invalid-reference"


class InvalidDigestError(RegistryError):
    """A digest is malformed or uses an algorithm this client does not support."""

    reason = "invalid-digest"


class AuthRequiredError(RegistryError):
    """The registry needs credentials and none were available."""

    reason = "auth-required"


class UnauthorizedError(RegistryError):
    """The registry refused the credentials given, or refused access with them."""

    reason = "unauthorized"


class NotFoundError(RegistryError):
    """The repository, manifest, blob or tag does not exist."""

    reason = "not-found"


class DigestMismatchError(RegistryError):
    """Content fetched by digest, or announced with a digest, hashes to something else."""

    reason = "digest-mismatch"


class TooLargeError(RegistryError):
    """A manifest, blob, bundle, annotation or token response is larger than its bound."""

    reason = "too-large"


class RegistryProtocolError(RegistryError):
    """The registry answered with something this client cannot accept."""

    reason = "protocol"


class RegistryConnectionError(RegistryError):
    """The registry could not be reached, timed out, or reset the connection twice."""

    reason = "connection"


class InsecureRegistryError(RegistryError):
    """Plain HTTP, or an HTTP token realm, was needed but not allowed."""

    reason = "insecure-registry"


class CredentialsError(RegistryError):
    """The docker config or a credential helper could not be read."""

    reason = "credentials"
