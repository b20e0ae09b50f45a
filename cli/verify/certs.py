"""Looking up one extension of a certificate without exceptions for the common absence.

A Fulcio leaf carries some thirty extensions and verification asks for about ten of them
(basic constraints, SCTs, key usages, SAN, issuer and workflow claims). cryptography finds
each by a linear scan over Python extension objects, which cost a measurable share of each
bundle's verification (bench/verify.py); so each certificate's extensions are indexed by OID
once, and lookups reuse that table.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509

# Certificates whose extension tables are kept: a verification looks its leaf up several
# times in a row, so a few recent ones are all that pays.
MAX_INDEXED_CERTIFICATES = 64
# Keyed by id(): a cryptography Certificate hashes by re-hashing its DER, which costs more
# than the scan it would save. Each entry holds its certificate, so that id cannot be reused
# by another object while the entry exists; a hit is confirmed by identity.
_indexed: dict[int, tuple[x509.Certificate, dict[x509.ObjectIdentifier, x509.Extension[Any]]]]
_indexed = {}
_lock = threading.Lock()


def extensions_by_oid(
    cert: x509.Certificate,
) -> dict[x509.ObjectIdentifier, x509.Extension[Any]]:
    """The certificate's extensions by OID (do not modify the dict).

    Raises what `cert.extensions` raises for a malformed certificate (ValueError,
    DuplicateExtension, UnsupportedGeneralNameType), every time it is asked.
    """
    hit = _indexed.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1]
    table = {extension.oid: extension for extension in cert.extensions}
    with _lock:
        while len(_indexed) >= MAX_INDEXED_CERTIFICATES:
            del _indexed[next(iter(_indexed))]
        _indexed[id(cert)] = (cert, table)
    return table


def extension_value(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> Any:
    """The parsed value of the extension `oid`, or None when the certificate lacks it."""
    extension = extensions_by_oid(cert).get(oid)
    return None if extension is None else extension.value
