"""Identity policies: one-method objects that accept or refuse a verified signing certificate.

Regular expressions always match the whole value (`re.fullmatch`): cosign's are unanchored, so
`alice@example\\.com` there also accepts `alice@example.com.evil.org`. Here it does not.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from keyless.client.verify.certs import extension_value, remembered
from keyless.client.verify.errors import VerificationError, quoted
from keyless.core.errors import Reason
from keyless.oidc import oids

if TYPE_CHECKING:
    from cryptography import x509

MAX_PATTERN_CHARS = 1024


class Policy(Protocol):
    """Accepts a certificate or raises VerificationError naming what did not match."""

    def check(self, cert: x509.Certificate) -> None: ...


@dataclass(frozen=True)
class Identity:
    """The certificate's SAN (email, URI or Fulcio otherName) equals `value` exactly."""

    value: str

    def check(self, cert: x509.Certificate) -> None:
        names = certificate_identities(cert)
        if self.value not in names:
            raise VerificationError(
                reason=Reason.IDENTITY,
                detail=f"certificate identity {_show(names)} does not match expected "
                f"{quoted(self.value)}",
            )


@dataclass(frozen=True)
class IdentityRegexp:
    """The certificate's SAN matches `pattern` in full (anchored)."""

    pattern: str

    def __post_init__(self) -> None:
        _compile(self.pattern, "--certificate-identity-regexp")

    def check(self, cert: x509.Certificate) -> None:
        names = certificate_identities(cert)
        regexp = _compile(self.pattern, "--certificate-identity-regexp")
        if not any(regexp.fullmatch(name) for name in names):
            raise VerificationError(
                reason=Reason.IDENTITY,
                detail=f"certificate identity {_show(names)} does not match the anchored "
                f"regexp {quoted(self.pattern)}",
            )


@dataclass(frozen=True)
class Issuer:
    """The OIDC issuer extension (1.3.6.1.4.1.57264.1.8, else .1.1) equals `value`."""

    value: str

    def check(self, cert: x509.Certificate) -> None:
        issuer = certificate_issuer(cert)
        if issuer != self.value:
            raise VerificationError(
                reason=Reason.ISSUER,
                detail=f"certificate OIDC issuer {quoted(issuer)} does not match "
                f"expected {quoted(self.value)}",
            )


@dataclass(frozen=True)
class IssuerRegexp:
    """The OIDC issuer matches `pattern` in full (anchored)."""

    pattern: str

    def __post_init__(self) -> None:
        _compile(self.pattern, "--certificate-oidc-issuer-regexp")

    def check(self, cert: x509.Certificate) -> None:
        issuer = certificate_issuer(cert)
        if not _compile(self.pattern, "--certificate-oidc-issuer-regexp").fullmatch(issuer):
            raise VerificationError(
                reason=Reason.ISSUER,
                detail=f"certificate OIDC issuer {quoted(issuer)} does not match the anchored "
                f"regexp {quoted(self.pattern)}",
            )


@dataclass(frozen=True)
class ExtensionEquals:
    """A Fulcio extension (GitHub workflow claims) equals `value` exactly."""

    arc: int
    name: str
    value: str

    def check(self, cert: x509.Certificate) -> None:
        actual = fulcio_extension(cert, self.arc)
        if actual != self.value:
            shown = "absent" if actual is None else quoted(actual)
            raise VerificationError(
                reason=self.name,
                detail=f"certificate {self.name} {shown} does not match expected "
                f"{quoted(self.value)}",
            )


@dataclass(frozen=True)
class AllOf:
    """Every policy holds; refuses to be built empty (an empty AllOf would accept anything)."""

    policies: Sequence[Policy]

    def __post_init__(self) -> None:
        if not self.policies:
            raise ValueError("AllOf needs at least one policy")

    def check(self, cert: x509.Certificate) -> None:
        for policy in self.policies:
            policy.check(cert)


@dataclass(frozen=True)
class AnyOf:
    """At least one policy holds; refuses to be built empty."""

    policies: Sequence[Policy]

    def __post_init__(self) -> None:
        if not self.policies:
            raise ValueError("AnyOf needs at least one policy")

    def check(self, cert: x509.Certificate) -> None:
        failures: list[str] = []
        for policy in self.policies:
            try:
                policy.check(cert)
            except VerificationError as exc:
                failures.append(exc.detail)
            else:
                return
        raise VerificationError(
            reason=Reason.IDENTITY, detail="no accepted identity matches: " + "; ".join(failures)
        )


def certificate_identities(cert: x509.Certificate) -> list[str]:
    """Every identity the SAN carries: emails, URIs and Fulcio otherName usernames."""
    return list(remembered(cert, "identities", _identities))


def _identities(cert: x509.Certificate) -> tuple[str, ...]:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    san = extension_value(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if san is None:
        raise VerificationError(
            reason=Reason.IDENTITY, detail="the certificate has no SAN extension"
        )
    names: list[str] = []
    names.extend(san.get_values_for_type(x509.RFC822Name))
    names.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == oids.OTHERNAME_SAN_OID:
            names.append(_der_utf8(other.value))
    return tuple(names)


def certificate_issuer(cert: x509.Certificate) -> str:
    """The OIDC issuer: extension .1.8 (DER UTF8String), falling back to .1.1 (raw)."""
    return remembered(cert, "issuer", _issuer)


def _issuer(cert: x509.Certificate) -> str:
    issuer = fulcio_extension(cert, oids.ISSUER_V2)
    if issuer is None:
        issuer = fulcio_extension(cert, oids.ISSUER_V1)
    if issuer is None:
        raise VerificationError(
            reason=Reason.ISSUER, detail="the certificate has no OIDC issuer extension"
        )
    return issuer


def fulcio_extension(cert: x509.Certificate, arc: int) -> str | None:
    """The string value of Fulcio extension `arc`, or None when absent."""
    value = extension_value(cert, _fulcio_oid(arc))
    if value is None:
        return None
    try:
        return oids.decode_extension_value(arc, value.value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError(
            reason=Reason.CERTIFICATE_PROFILE,
            detail=f"extension {oids.FULCIO_ARC}.{arc} is malformed",
        ) from exc


@functools.cache
def _fulcio_oid(arc: int) -> x509.ObjectIdentifier:
    return oids.fulcio_oid(arc)


def _compile(pattern: str, flag: str) -> re.Pattern[str]:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise VerificationError(
            reason=Reason.POLICY, detail=f"{flag} is longer than {MAX_PATTERN_CHARS} characters"
        )
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise VerificationError(
            reason=Reason.POLICY, detail=f"{flag} {quoted(pattern)} is not a valid regexp: {exc}"
        ) from exc


def _der_utf8(value: bytes) -> str:
    """Decode the DER UTF8String of a Fulcio otherName SAN (short or long length form)."""
    if len(value) < 2 or value[0] != 0x0C:
        raise VerificationError(
            reason=Reason.IDENTITY, detail="otherName SAN is not a DER UTF8String"
        )
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2) or len(value) < 2 + count:
            raise VerificationError(
                reason=Reason.IDENTITY, detail="otherName SAN has a bad DER length"
            )
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    if offset + length != len(value):
        raise VerificationError(reason=Reason.IDENTITY, detail="otherName SAN has a bad DER length")
    return value[offset:].decode("utf-8", errors="strict")


def _show(names: list[str]) -> str:
    if len(names) == 1:
        return quoted(names[0])
    return "[" + ", ".join(quoted(n) for n in names) + "]"
