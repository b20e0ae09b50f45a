"""A Kyverno `keyless` attestor's identity check, read as Kyverno's cosign verifier reads it.

`pkg/image/verifiers/cpol/cosign/cosign.go` (`matchCertificateData`, `matchExtensions`):

- `subject` (a `*`/`?` wildcard) or `subjectRegExp`: one of the certificate's SANs (DNS names,
  emails, IP addresses, URIs, then Fulcio's otherName) must match; either of the two is enough;
- `issuer` (a wildcard) and `issuerRegExp`: both, when given, must match the OIDC issuer as
  cosign's `CertExtensions.GetIssuer` reads it: the raw value of extension 1.3.6.1.4.1.57264.1.1
  (the newer 1.8 is not read);
- `additionalExtensions`: each named extension (the GitHub workflow ones, 1.1 to 1.6, by name or
  OID; absent reads as "") must match its wildcard.

Two differences, both stricter: a regexp must match the WHOLE value here (Kyverno's Go regexps
match anywhere unless written `^...$`; `check_anchoring` says where that changes what a pattern
accepts), and a certificate without SANs fails a subject check (Kyverno skips the check).
Regexps are compiled with ASCII classes, as Go's are (`\\d` is 0-9 only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keyless.client.policy.wildcard import match_wildcard
from keyless.client.verify import VerificationError
from keyless.client.verify.policy import certificate_identities, fulcio_extension
from keyless.core.errors import Reason
from keyless.oidc import oids

if TYPE_CHECKING:
    from cryptography import x509

MAX_REGEXP_CHARS = 1024
# Names Kyverno accepts for `additionalExtensions` keys (cosign's CertExtensionMap), and OIDs.
EXTENSIONS = {
    "oidcIssuer": oids.ISSUER_V1,
    "githubWorkflowTrigger": oids.GITHUB_WORKFLOW_TRIGGER,
    "githubWorkflowSha": oids.GITHUB_WORKFLOW_SHA,
    "githubWorkflowName": oids.GITHUB_WORKFLOW_NAME,
    "githubWorkflowRepository": oids.GITHUB_WORKFLOW_REPOSITORY,
    "githubWorkflowRef": oids.GITHUB_WORKFLOW_REF,
} | {f"{oids.FULCIO_ARC}.{arc}": arc for arc in range(1, 7)}
# Syntax Python's re accepts and Go's RE2 does not: a pattern Kyverno cannot compile.
_NOT_RE2 = re.compile(r"\(\?(=|!|<=|<!|>|P=|\(|#)|\\[1-9Z]|[*+?}][+]|\(\?[imsU]*-?[imsU]*[aLux]")


class IdentityPatternError(ValueError):
    """A regexp that is too long, invalid, or not RE2 (Go) syntax."""


@dataclass(frozen=True)
class KyvernoIdentity:
    """The identity check of one `keyless` attestor; `check(cert)` raises VerificationError."""

    subject: str = ""
    subject_regexp: str = ""
    issuer: str = ""
    issuer_regexp: str = ""
    extensions: tuple[tuple[str, str], ...] = ()
    _subject_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    _issuer_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for attribute, pattern in (
            ("_subject_re", self.subject_regexp),
            ("_issuer_re", self.issuer_regexp),
        ):
            if pattern:
                object.__setattr__(self, attribute, compile_regexp(pattern))

    @property
    def checks_nothing(self) -> bool:
        """No subject, issuer or extension is named: any certificate of the trusted CAs
        passes (Kyverno's `matchSignatures` returns at once)."""
        return not (
            self.subject
            or self.subject_regexp
            or self.issuer
            or self.issuer_regexp
            or self.extensions
        )

    def check(self, cert: x509.Certificate) -> None:
        if self.subject or self._subject_re is not None:
            sans = subject_alternative_names(cert)
            by_wildcard = bool(self.subject) and any(match_wildcard(self.subject, s) for s in sans)
            regexp = self._subject_re
            if not by_wildcard and not (regexp and any(regexp.fullmatch(s) for s in sans)):
                expected = self.subject or self.subject_regexp
                raise VerificationError(
                    reason=Reason.IDENTITY,
                    detail=f"subject mismatch: expected {expected}, received {', '.join(sans)}",
                )
        issuer = _extension(cert, oids.ISSUER_V1)
        if self.issuer and not match_wildcard(self.issuer, issuer):
            raise VerificationError(
                reason=Reason.ISSUER,
                detail=f"issuer mismatch: expected {self.issuer}, received {issuer}",
            )
        if self._issuer_re is not None and not self._issuer_re.fullmatch(issuer):
            raise VerificationError(
                reason=Reason.ISSUER,
                detail=f"issuer mismatch: expected {self.issuer_regexp}, received {issuer}",
            )
        for key, wanted in self.extensions:
            value = _extension(cert, EXTENSIONS[key])
            if not match_wildcard(wanted, value):
                raise VerificationError(
                    reason=Reason.EXTENSION,
                    detail=f"extension mismatch: expected {wanted} for key {key}, received {value}",
                )

    def describe(self) -> str:
        """What the check wants, in words, for refusal messages."""
        parts = []
        if self.subject or self.subject_regexp:
            subjects = [s for s in (self.subject, _slashed(self.subject_regexp)) if s]
            parts.append("subject " + " or ".join(subjects))
        if self.issuer:
            parts.append(f"issuer {self.issuer}")
        if self.issuer_regexp:
            parts.append(f"issuer {_slashed(self.issuer_regexp)}")
        parts += [f"{key} {value}" for key, value in self.extensions]
        return ", ".join(parts) or "any identity of the trusted CAs"


def compile_regexp(pattern: str) -> re.Pattern[str]:
    """A Kyverno regexp as keyless matches it: anchored (`fullmatch`), ASCII classes.

    Raises:
        IdentityPatternError: too long, invalid, or not RE2 syntax.
    """
    if len(pattern) > MAX_REGEXP_CHARS:
        raise IdentityPatternError(f"longer than {MAX_REGEXP_CHARS} characters")
    if _NOT_RE2.search(pattern):
        raise IdentityPatternError(
            f"{pattern!r} uses syntax Go regexps (and so Kyverno) do not have: lookaround, "
            "backreferences, possessive quantifiers, comments, \\Z or the a, L, u, x flags"
        )
    try:
        return re.compile(pattern, re.ASCII)
    except re.error as exc:
        raise IdentityPatternError(f"{pattern!r} is not a valid regexp: {exc}") from None


def anchoring_changes(pattern: str) -> bool:
    """Whether matching the whole value (keyless) can accept less than matching anywhere
    (Kyverno): false only when the pattern is anchored at both ends, `^...$` with no
    top-level alternation, or opens and closes with `.*`."""
    if pattern.startswith(".*") and pattern.endswith(".*") and not _escaped_end(pattern, 2):
        return _top_level_alternation(pattern)
    if not (pattern.startswith("^") and pattern.endswith("$") and not _escaped_end(pattern, 1)):
        return True
    return _top_level_alternation(pattern)


def _escaped_end(pattern: str, width: int) -> bool:
    """Whether the last `width` characters are preceded by an odd number of backslashes."""
    body = pattern[:-width]
    return (len(body) - len(body.rstrip("\\"))) % 2 == 1


def _top_level_alternation(pattern: str) -> bool:
    depth, index, in_class = 0, 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1 : index + 2] == "]":
                index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        index += 1
    return False


def subject_alternative_names(cert: x509.Certificate) -> list[str]:
    """sigstore's `cryptoutils.GetSubjectAlternateNames`: DNS names, emails, IP addresses,
    URIs, then the Fulcio otherName."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise VerificationError(
            reason=Reason.IDENTITY, detail="the certificate has no SAN extension"
        ) from None
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += san.get_values_for_type(x509.RFC822Name)
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    names += san.get_values_for_type(x509.UniformResourceIdentifier)
    names += [n for n in certificate_identities(cert) if n not in names]
    return names


def _extension(cert: x509.Certificate, arc: int) -> str:
    return fulcio_extension(cert, arc) or ""


def _slashed(pattern: str) -> str:
    return f"/{pattern}/" if pattern else ""
