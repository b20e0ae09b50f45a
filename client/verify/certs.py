"""Looking up one extension of a certificate without exceptions for the common absence.

A Fulcio leaf carries some thirty extensions and verification asks for about ten of them
(basic constraints, SCTs, key usages, SAN, issuer and workflow claims). cryptography finds
each by a linear scan over Python extension objects, which cost a measurable share of each
bundle's verification (bench/verify.py); so each certificate's extensions are indexed by OID
once, and lookups reuse that table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from cryptography import x509

T = TypeVar("T")

# Certificates whose extension tables are kept: a verification looks its leaf up several
# times in a row, so a few recent ones are all that pays.
MAX_INDEXED_CERTIFICATES = 64
# Keyed by id(): a cryptography Certificate hashes by re-hashing its DER, which costs more
# than the scan it would save. Each entry holds its certificate, so that id cannot be reused
# by another object while the entry exists; a hit is confirmed by identity. With the table,
# values derived from the extensions (see `remembered`).
_indexed: dict[
    int, tuple[x509.Certificate, dict[x509.ObjectIdentifier, x509.Extension[Any]], dict[str, Any]]
]
_indexed = {}
_lock = threading.Lock()


def _entry(
    cert: x509.Certificate,
) -> tuple[x509.Certificate, dict[x509.ObjectIdentifier, x509.Extension[Any]], dict[str, Any]]:
    hit = _indexed.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit
    entry = (cert, {extension.oid: extension for extension in cert.extensions}, {})
    with _lock:
        while len(_indexed) >= MAX_INDEXED_CERTIFICATES:
            del _indexed[next(iter(_indexed))]
        _indexed[id(cert)] = entry
    return entry


def extensions_by_oid(
    cert: x509.Certificate,
) -> dict[x509.ObjectIdentifier, x509.Extension[Any]]:
    """The certificate's extensions by OID (do not modify the dict).

    Raises what `cert.extensions` raises for a malformed certificate (ValueError,
    DuplicateExtension, UnsupportedGeneralNameType), every time it is asked.
    """
    return _entry(cert)[1]


def extension_value(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> Any:
    """The parsed value of the extension `oid`, or None when the certificate lacks it."""
    extension = _entry(cert)[1].get(oid)
    return None if extension is None else extension.value


def remembered(cert: x509.Certificate, name: str, compute: Callable[[x509.Certificate], T]) -> T:
    """`compute(cert)`, worked out once per certificate and `name` (a verification asks for
    the identities and the issuer twice: for the policy and for the result). An exception is
    not remembered: it is raised again on the next call."""
    memo = _entry(cert)[2]
    if name not in memo:
        memo[name] = compute(cert)
    return memo[name]  # type: ignore[no-any-return]
