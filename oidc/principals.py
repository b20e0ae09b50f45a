"""Verified claims -> Principal, one function per issuer type (fulcio.md §3.5, §3.6).

Every function takes claims whose signature, issuer, audience and times were already checked.
Each raises TokenError when the claims cannot become an identity: the same refusal Fulcio gives,
with the specific reason in `detail`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from keyless.core.errors import Reason
from keyless.oidc.config import IssuerConfig, IssuerType
from keyless.oidc.errors import PrincipalError, TokenError, quote
from keyless.oidc.oids import ISSUER_V1, ISSUER_V2, TOKEN_SUBJECT
from keyless.oidc.principal import Principal, SANType
from keyless.oidc.templates import MissingKeyError

# No control character in the local part either: a NUL ("alice@example.com\x00@evil.example")
# is the classic way to make a certificate name read differently to different parsers.
_EMAIL = re.compile(r"[^@\s\"(),:;<>\[\]\\\x00-\x1f\x7f]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_MAX_EMAIL_CHARS = 254
_SPIFFE_ID = re.compile(r"spiffe://([a-z0-9._-]+)((/[A-Za-z0-9._-]+)*)")

Claims = Mapping[str, Any]


def principal_from_claims(claims: Claims, issuer: IssuerConfig) -> Principal:
    """The identity that a token of `issuer` with these verified claims proves.

    Raises:
        TokenError: the claims do not satisfy the issuer type's rules.
    """
    return _BY_TYPE.get(issuer.type, _ci_provider)(claims, issuer)


def _claim(claims: Claims, name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise TokenError(
            reason=Reason.CLAIM_MISSING,
            detail=f"token has no {quote(name)} claim (a non-empty string)",
        )
    return value


def _base_extensions(claims: Claims, issuer_value: str) -> dict[int, str]:
    extensions = {ISSUER_V1: issuer_value, ISSUER_V2: issuer_value}
    subject = claims.get("sub")
    if isinstance(subject, str) and subject:
        extensions[TOKEN_SUBJECT] = subject
    return extensions


def _email(claims: Claims, issuer: IssuerConfig) -> Principal:
    email = _claim(claims, "email")
    if len(email) > _MAX_EMAIL_CHARS or not _EMAIL.fullmatch(email):
        raise TokenError(
            reason=Reason.CLAIM_INVALID,
            detail=f"email claim {quote(email)} is not an email address",
        )
    if not issuer.skip_email_verification:
        verified = claims.get("email_verified")
        if verified is not True and verified not in ("true", "True"):
            raise TokenError(
                reason=Reason.EMAIL_UNVERIFIED,
                detail=f"email is not verified (email_verified is {quote(verified)})",
            )
    issuer_value = claims["iss"]
    if issuer.issuer_claim:
        issuer_value = _json_path(claims, issuer.issuer_claim)
    return Principal(SANType.EMAIL, email, email, _base_extensions(claims, issuer_value))


def _json_path(claims: Claims, path: str) -> str:
    node: Any = claims
    for part in path.removeprefix("$.").split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise TokenError(reason=Reason.CLAIM_MISSING, detail=f"token has no claim at {path}")
        node = node[part]
    if not isinstance(node, str) or not node:
        raise TokenError(
            reason=Reason.CLAIM_INVALID, detail=f"claim at {path} is not a non-empty string"
        )
    return node


def _username(claims: Claims, issuer: IssuerConfig) -> Principal:
    subject = _claim(claims, "sub")
    if "!" in subject:
        raise TokenError(
            reason=Reason.CLAIM_INVALID, detail=f"sub {quote(subject)} must not contain '!'"
        )
    if "@" in subject:
        raise TokenError(
            reason=Reason.CLAIM_INVALID,
            detail=f"sub {quote(subject)} must be a username, not an email",
        )
    san = f"{subject}!{issuer.subject_domain}"
    return Principal(SANType.OTHERNAME, san, subject, _base_extensions(claims, claims["iss"]))


def _uri(claims: Claims, issuer: IssuerConfig) -> Principal:
    subject = _claim(claims, "sub")
    if "@" in subject and "://" not in subject:
        raise TokenError(
            reason=Reason.CLAIM_INVALID, detail=f"sub {quote(subject)} must be a URI, not an email"
        )
    parts, allowed = urlsplit(subject), urlsplit(issuer.subject_domain or "")
    if parts.scheme != allowed.scheme or parts.hostname != allowed.hostname:
        raise TokenError(
            reason=Reason.CLAIM_INVALID,
            detail=f"sub {quote(subject)} is not under the allowed subject domain "
            f"{issuer.subject_domain}",
        )
    return Principal(SANType.URI, subject, subject, _base_extensions(claims, claims["iss"]))


def _spiffe(claims: Claims, issuer: IssuerConfig) -> Principal:
    subject = _claim(claims, "sub")
    match = _SPIFFE_ID.fullmatch(subject)
    if match is None or any(seg in (".", "..") for seg in match.group(2).split("/")[1:]):
        raise TokenError(
            reason=Reason.CLAIM_INVALID, detail=f"sub {quote(subject)} is not a SPIFFE ID"
        )
    if match.group(1) != issuer.spiffe_trust_domain:
        raise TokenError(
            reason=Reason.CLAIM_INVALID,
            detail=f"SPIFFE ID trust domain {quote(match.group(1))}"
            f" is not {quote(issuer.spiffe_trust_domain)}",
        )
    return Principal(SANType.URI, subject, subject, _base_extensions(claims, claims["iss"]))


def _kubernetes(claims: Claims, issuer: IssuerConfig) -> Principal:
    # Fulcio builds the URI even when these are missing; we refuse, since a certificate for
    # "namespaces//serviceaccounts/" names nobody.
    k8s = claims.get("kubernetes.io")
    namespace = k8s.get("namespace") if isinstance(k8s, Mapping) else None
    account = k8s.get("serviceaccount") if isinstance(k8s, Mapping) else None
    name = account.get("name") if isinstance(account, Mapping) else None
    if not isinstance(namespace, str) or not namespace or not isinstance(name, str) or not name:
        raise TokenError(
            reason=Reason.CLAIM_MISSING,
            detail="token has no kubernetes.io namespace and service account name",
        )
    san = f"https://kubernetes.io/namespaces/{namespace}/serviceaccounts/{name}"
    subject = _claim(claims, "sub")
    return Principal(SANType.URI, san, subject, _base_extensions(claims, claims["iss"]))


def _chainguard(claims: Claims, issuer: IssuerConfig) -> Principal:
    subject = _claim(claims, "sub")
    san = claims["iss"].rstrip("/") + "/" + subject.lstrip("/")
    return Principal(SANType.URI, san, subject, _base_extensions(claims, claims["iss"]))


def _ci_provider(claims: Claims, issuer: IssuerConfig) -> Principal:
    metadata = issuer.ci_provider
    if metadata is None:
        raise RuntimeError(f"issuer {issuer.url} of type {issuer.type.value} has no metadata")
    data = dict(metadata.defaults)
    data.update({key: stringify_claim(value) for key, value in claims.items()})  # claims win
    try:
        san = metadata.san.render(data)
        rendered = {arc: template.render(data) for arc, template in metadata.extensions.items()}
    except MissingKeyError as exc:
        raise PrincipalError(f"value <{exc.key}> not present in either claims or defaults") from exc
    parts = urlsplit(san)
    if not san or not parts.scheme or not parts.netloc:
        raise PrincipalError(f"subject alternative name {quote(san)} is not a URL")
    extensions = {arc: value for arc, value in rendered.items() if value}
    extensions.update(_base_extensions(claims, claims["iss"]))
    return Principal(SANType.URI, san, _claim(claims, "sub"), extensions)


def stringify_claim(value: Any) -> str:
    """A claim as Fulcio's templates see it: Go's `%v`, with whole floats as integers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return "[" + " ".join(stringify_claim(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{stringify_claim(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if value is None:
        return "<nil>"
    return str(value)


_BY_TYPE: dict[IssuerType, Callable[[Claims, IssuerConfig], Principal]] = {
    IssuerType.EMAIL: _email,
    IssuerType.USERNAME: _username,
    IssuerType.URI: _uri,
    IssuerType.SPIFFE: _spiffe,
    IssuerType.KUBERNETES: _kubernetes,
    IssuerType.CHAINGUARD: _chainguard,
}
