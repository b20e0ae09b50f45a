"""Errors of the OCI registry client: one line a user can act on, a stable reason slug, a hint."""

from __future__ import annotations

from keyless.core.errors import Error, Reason


class RegistryError(Error):
    """A registry operation failed for a reason the user can act on.

    Attributes:
        message: one line for the user; names the registry, repository or digest involved.
        reason: a stable slug such as `auth-required`, for logs and machine readers.
        hint: an optional remedy.
    """

    reason = Reason.REGISTRY_ERROR


class InvalidReferenceError(RegistryError):
    """An image reference does not follow the docker/distribution grammar."""

    reason = Reason.INVALID_REFERENCE


class InvalidDigestError(RegistryError):
    """A digest is malformed or uses an algorithm this client does not support."""

    reason = Reason.INVALID_DIGEST


class AuthRequiredError(RegistryError):
    """The registry needs credentials and none were available."""

    reason = Reason.AUTH_REQUIRED


class UnauthorizedError(RegistryError):
    """The registry refused the credentials given, or refused access with them."""

    reason = Reason.UNAUTHORIZED


class NotFoundError(RegistryError):
    """The repository, manifest, blob or tag does not exist."""

    reason = Reason.NOT_FOUND


class DigestMismatchError(RegistryError):
    """Content fetched by digest, or announced with a digest, hashes to something else."""

    reason = Reason.DIGEST_MISMATCH


class TooLargeError(RegistryError):
    """A manifest, blob, bundle, annotation or token response is larger than its bound."""

    reason = Reason.TOO_LARGE


class RegistryProtocolError(RegistryError):
    """The registry answered with something this client cannot accept."""

    reason = Reason.PROTOCOL


class RegistryConnectionError(RegistryError):
    """The registry could not be reached, timed out, or reset the connection twice."""

    reason = Reason.CONNECTION


class InsecureRegistryError(RegistryError):
    """Plain HTTP, or an HTTP token realm, was needed but not allowed."""

    reason = Reason.INSECURE_REGISTRY


class CredentialsError(RegistryError):
    """The docker config or a credential helper could not be read."""

    reason = Reason.CREDENTIALS
