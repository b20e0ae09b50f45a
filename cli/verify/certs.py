"""A certificate's extensions by OID, looked up once per certificate.

cryptography's `get_extension_for_class` walks every extension with an ABC `isinstance` per
step; a Fulcio leaf has some thirty extensions and verification looks several of them up, which
showed as a measurable share of a verification in bench/verify.py. The map is cached per
certificate (certificates hash and compare by their DER, so equal certificates share it).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509


@functools.lru_cache(maxsize=256)
def extensions_by_oid(cert: x509.Certificate) -> Mapping[x509.ObjectIdentifier, Any]:
    """The certificate's extensions keyed by OID (duplicates were refused when parsing).

    Raises:
        ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType: the extensions
            are malformed (as `cert.extensions` raises them).
    """
    return {extension.oid: extension for extension in cert.extensions}


def extension_value(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> Any:
    """The parsed value of the extension `oid`, or None when the certificate lacks it."""
    extension = extensions_by_oid(cert).get(oid)
    return None if extension is None else extension.value
