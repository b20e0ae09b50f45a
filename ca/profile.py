"""The leaf certificate profile: what the CA writes into every certificate, and nothing else.

Fulcio's profile (fulcio.md §4.1) with a configurable validity: empty subject, one critical SAN,
KeyUsage digitalSignature (critical), EKU codeSigning, SKI, AKI = issuer SKI, a random positive
serial of at most 20 octets, no BasicConstraints, then every Fulcio extension the principal
carries, in ascending arc order. Anything a CSR asks for is ignored.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from keyless.ca.errors import RequestError
from keyless.core.errors import Reason
from keyless.oidc.oids import ISSUER_V2, OTHERNAME_SAN_OID, encode_extension_value, fulcio_oid
from keyless.oidc.principal import Principal, SANType

DEFAULT_VALIDITY = timedelta(minutes=15)
MAX_VALIDITY = timedelta(hours=24)
# What the claims may add to a certificate (SAN value plus Fulcio extension values). A token may
# be 32 KiB, enough for claims that make a certificate larger than a CT log takes (32 KiB per
# certificate here, and Fulcio-sized identities are well under 2 KiB): refuse those as the
# client's problem (400) before anything is logged, not as a CT failure (500).
MAX_IDENTITY_BYTES = 16 * 1024

_EMPTY_NAME = x509.Name([])
_KEY_USAGE_VALUE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_KEY_USAGE = x509.Extension(ExtensionOID.KEY_USAGE, True, _KEY_USAGE_VALUE)
_EXTENDED_KEY_USAGE = x509.Extension(
    ExtensionOID.EXTENDED_KEY_USAGE,
    False,
    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
)


def build_leaf(
    principal: Principal,
    *,
    public_key: CertificatePublicKeyTypes,
    issuer: x509.Certificate,
    serial: int,
    now: datetime,
    validity: timedelta = DEFAULT_VALIDITY,
) -> x509.CertificateBuilder:
    """The unsigned leaf for `principal`'s key, valid from `now` (to the second) for `validity`.

    The builder holds every final extension except the SCT list, so the precertificate
    (plus poison) and the final certificate (plus SCTs) share one TBS prefix.

    Raises:
        RequestError: the identity cannot be encoded into a certificate.
        ValueError: caller misuse (a naive `now`, a bad serial or validity).
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if not timedelta(seconds=1) <= validity <= MAX_VALIDITY:
        raise ValueError(f"validity {validity} is out of range")
    if not 0 < serial < 2**159:
        raise ValueError("the serial must be positive and fit in 20 octets")
    not_before = now.replace(microsecond=0)
    extensions = [
        _KEY_USAGE,
        _EXTENDED_KEY_USAGE,
        x509.Extension(
            ExtensionOID.SUBJECT_KEY_IDENTIFIER,
            False,
            x509.SubjectKeyIdentifier.from_public_key(public_key),
        ),
        _authority_key_identifier(issuer),
        x509.Extension(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
            True,
            x509.SubjectAlternativeName([_san(principal)]),
        ),
    ]
    sizes = {"the SAN": len(principal.san_value.encode())}
    for arc, value in sorted(principal.extensions.items()):
        oid = fulcio_oid(arc)
        value_der = encode_extension_value(arc, value)
        sizes[f"extension {oid.dotted_string}"] = len(value_der)
        extensions.append(x509.Extension(oid, False, x509.UnrecognizedExtension(oid, value_der)))
    _check_identity_size(sizes)
    # One constructor call instead of one copy of the builder per extension: this is the
    # hot path, and every extension here is distinct by construction.
    return x509.CertificateBuilder(
        issuer_name=issuer.subject,
        subject_name=_EMPTY_NAME,
        public_key=public_key,
        serial_number=serial,
        not_valid_before=not_before,
        not_valid_after=not_before + validity,
        extensions=extensions,
    )


@functools.lru_cache(maxsize=16)
def _authority_key_identifier(issuer: x509.Certificate) -> x509.Extension[x509.ExtensionType]:
    """AKI = the issuer's SKI (key identifier only), computed once per issuing certificate."""
    try:
        issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound as exc:
        raise ValueError("the issuing CA certificate has no SubjectKeyIdentifier") from exc
    value = x509.AuthorityKeyIdentifier(issuer_ski.digest, None, None)
    return x509.Extension(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, value)


_PRINTABLE = re.compile(r"[\x21-\x7e]*")


def _check_identity_size(sizes: dict[str, int]) -> None:
    total = sum(sizes.values())
    if total > MAX_IDENTITY_BYTES:
        largest = max(sizes, key=lambda name: sizes[name])
        raise RequestError(
            f"the identity is too large for a certificate: its SAN and extensions take {total}"
            f" bytes, over the {MAX_IDENTITY_BYTES}-byte limit (the largest is {largest},"
            f" {sizes[largest]} bytes)",
            reason=Reason.IDENTITY_TOO_LARGE,
        )


def _san(principal: Principal) -> x509.GeneralName:
    """The one SubjectAlternativeName entry for the principal's identity."""
    value = principal.san_value
    if principal.san_type in (SANType.EMAIL, SANType.URI) and not _PRINTABLE.fullmatch(value):
        # IA5String allows controls and spaces, but no email address or URI holds one: a NUL or
        # CR/LF in a SAN is how names are made to read differently to different parsers.
        raise RequestError(
            f"the identity {value!r} cannot be encoded as a {principal.san_type.value} SAN:"
            " it has a space or control character",
            reason=Reason.SAN_UNENCODABLE,
        )
    try:
        if principal.san_type is SANType.EMAIL:
            value.encode("ascii")
            return x509.RFC822Name(value)
        if principal.san_type is SANType.URI:
            value.encode("ascii")
            return x509.UniformResourceIdentifier(value)
        # The OtherName value is a DER UTF8String, the encoding of every DER-valued arc.
        return x509.OtherName(OTHERNAME_SAN_OID, encode_extension_value(ISSUER_V2, value))
    except (UnicodeEncodeError, ValueError) as exc:
        raise RequestError(
            f"the identity {value!r} cannot be encoded as a {principal.san_type.value} SAN",
            reason=Reason.SAN_UNENCODABLE,
        ) from exc
