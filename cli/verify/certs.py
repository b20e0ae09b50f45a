"""Looking up one extension of a certificate without exceptions for the common absence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509


def extension_value(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> Any:
    """The parsed value of the extension `oid`, or None when the certificate lacks it."""
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
