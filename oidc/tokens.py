"""Pure OIDC token checks: structure, algorithm allow-list, signature, audience and times.

No network, disk or clock: keys and `now` are inputs, so every refusal is testable exactly.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, overload

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless import strictjson
from keyless.core.errors import Reason
from keyless.oidc.config import IssuerConfig
from keyless.oidc.errors import TokenError, quote

# Asymmetric algorithms only: `none` and every HMAC algorithm are refused, so a public key can
# never be used as a shared secret (the classic alg-confusion attack).
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_KTY_FOR_ALG = {alg: "RSA" for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")}
_KTY_FOR_ALG.update({"ES256": "EC", "ES384": "EC", "ES512": "EC", "EdDSA": "OKP"})
_CURVE_FOR_ALG = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "EdDSA": "Ed25519"}
_MIN_RSA_BITS = 2048
_Ed25519 = ed25519.Ed25519PublicKey

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

DEFAULT_MAX_TOKEN_BYTES = 32 * 1024
DEFAULT_LEEWAY = timedelta(seconds=60)


@dataclass(frozen=True)
class TokenLimits:
    """Bounds applied to every token."""

    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    leeway: timedelta = DEFAULT_LEEWAY


@dataclass(frozen=True)
class VerificationKey:
    """One parsed JWKS key, checked for type and size when it was loaded."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

    def fits(self, alg: str) -> bool:
        """Whether this key may verify a signature made with `alg`."""
        if self.alg is not None and self.alg != alg:
            return False
        if _KTY_FOR_ALG.get(alg) != self.kty:
            return False
        return alg not in _CURVE_FOR_ALG or _CURVE_FOR_ALG[alg] == self.crv


@dataclass(frozen=True)
class UnverifiedToken:
    """A structurally valid JWT whose claims are not yet trusted."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes

    # `parse_token` checked these are strings before the token exists.

    @property
    def issuer(self) -> str:
        issuer: str = self.claims["iss"]
        return issuer

    @property
    def alg(self) -> str:
        alg: str = self.header["alg"]
        return alg

    @property
    def kid(self) -> str | None:
        kid: str | None = self.header.get("kid")
        return kid


def parse_jwks(document: Any) -> tuple[VerificationKey, ...]:
    """The usable signing keys of a JWKS document; unusable keys are skipped, not trusted."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no keys list")
    keys = []
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping) or jwk.get("use", "sig") != "sig":
            continue
        kty = jwk.get("kty")
        if not isinstance(kty, str):
            continue
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=_default_alg(jwk)).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
            continue
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | _Ed25519):
            continue
        keys.append(VerificationKey(jwk.get("kid"), kty, jwk.get("crv"), jwk.get("alg"), key))
    return tuple(keys)


def _default_alg(jwk: Mapping[str, Any]) -> str:
    alg = jwk.get("alg")
    if isinstance(alg, str) and alg in ALLOWED_ALGORITHMS:
        return alg
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[str(crv)]
    if kty == "OKP":
        return "EdDSA"
    if kty == "RSA":
        return "RS256"
    raise ValueError(f"unsupported key type {quote(kty)}")


def parse_token(raw: str, *, limits: TokenLimits) -> UnverifiedToken:
    """Split and decode a compact JWS, refusing anything oversized or malformed.

    Raises:
        TokenError: the token is too large, not three parts, or not base64url JSON.
    """
    if len(raw) > limits.max_token_bytes:
        raise TokenError(
            reason=Reason.TOKEN_TOO_LARGE,
            detail=f"token is {len(raw)} bytes, over the {limits.max_token_bytes}-byte limit",
        )
    parts = raw.split(".")
    if len(parts) != 3:
        raise TokenError(
            reason=Reason.TOKEN_MALFORMED,
            detail=f"token must have 3 dot-separated parts, it has {len(parts)}",
        )
    header = _decode_json(parts[0], "header")
    claims = _decode_json(parts[1], "payload")
    signature = _b64url(parts[2], "signature")
    if not isinstance(header.get("alg"), str):
        raise TokenError(reason=Reason.TOKEN_MALFORMED, detail="token header has no alg")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenError(reason=Reason.TOKEN_MALFORMED, detail="token header kid is not a string")
    if "crit" in header:
        _refuse_critical(header["crit"])
    if not isinstance(claims.get("iss"), str) or not claims["iss"]:
        raise TokenError(reason=Reason.TOKEN_MALFORMED, detail="token has no iss claim")
    return UnverifiedToken(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def _refuse_critical(crit: object) -> None:
    """RFC 7515 §4.1.11: a JWS whose `crit` names an extension the recipient does not
    understand must be refused. We implement no JWS extension, so any `crit` is refused; a
    malformed one (not a non-empty list of strings) is refused as malformed."""
    if not isinstance(crit, list) or not crit or not all(isinstance(n, str) for n in crit):
        raise TokenError(
            reason=Reason.TOKEN_MALFORMED,
            detail="token header crit must be a non-empty list of strings",
        )
    names = json.dumps(crit[:8])
    raise TokenError(
        reason=Reason.TOKEN_MALFORMED,
        detail=f"token header crit names parameters this server does not understand: {names}",
    )


def _b64url(part: str, what: str) -> bytes:
    """Unpadded base64url (RFC 7515 §2), canonical only: a length of 1 mod 4 encodes no
    bytes, and unused low bits set would give one signature several spellings."""
    if not _BASE64URL.fullmatch(part) or len(part) % 4 == 1:
        raise TokenError(reason=Reason.TOKEN_MALFORMED, detail=f"token {what} is not base64url")
    data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=") != part.encode():
        raise TokenError(
            reason=Reason.TOKEN_MALFORMED, detail=f"token {what} is not canonical base64url"
        )
    return data


def _decode_json(part: str, what: str) -> dict[str, Any]:
    """Strict JSON (`strictjson`): a token with duplicate keys means different things to
    different readers (which `alg`, `iss` or `email` wins), and a deeply nested one must be
    refused before any signature check can be reached."""
    try:
        value = strictjson.loads(_b64url(part, what), what=f"token {what}")
    except strictjson.JSONError as exc:
        raise TokenError(reason=Reason.TOKEN_MALFORMED, detail=str(exc)) from exc
    if not isinstance(value, dict):
        raise TokenError(reason=Reason.TOKEN_MALFORMED, detail=f"token {what} is not a JSON object")
    return value


def check_algorithm(token: UnverifiedToken) -> None:
    """Raises TokenError unless the token's alg is on the asymmetric allow-list."""
    if token.alg not in ALLOWED_ALGORITHMS:
        raise TokenError(
            reason=Reason.ALG_NOT_ALLOWED,
            detail=f"signing algorithm {quote(token.alg)} is not allowed",
        )


def check_signature(token: UnverifiedToken, keys: Iterable[VerificationKey]) -> None:
    """Raises TokenError unless a key that fits the token's alg verifies its signature."""
    algorithm = jwt.get_algorithm_by_name(token.alg)
    candidates = [key for key in keys if key.fits(token.alg)]
    if not candidates:
        raise TokenError(
            reason=Reason.KEY_MISMATCH,
            detail=f"the issuer has no {token.alg} key for kid {quote(token.kid)}",
        )
    for key in candidates:
        try:
            if algorithm.verify(token.signing_input, key.key, token.signature):
                return
        except (InvalidSignature, ValueError, TypeError):
            continue
    raise TokenError(
        reason=Reason.SIGNATURE_INVALID,
        detail="token signature does not verify with the issuer's keys",
    )


def check_claims(
    claims: Mapping[str, Any], *, issuer: IssuerConfig, now: datetime, leeway: timedelta
) -> None:
    """Audience, expiry, not-before and issued-at, in that order.

    Raises:
        TokenError: naming the failed check and the values involved.
    """
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or issuer.client_id not in audiences:
        raise TokenError(
            reason=Reason.AUD_MISMATCH,
            detail=f"audience {json.dumps(audience)} does not include {quote(issuer.client_id)}",
        )
    expires_at = _time_claim(claims, "exp", required=True)
    if now >= expires_at + leeway:
        raise TokenError(reason=Reason.TOKEN_EXPIRED, detail=f"token expired at {_iso(expires_at)}")
    not_before = _time_claim(claims, "nbf", required=False)
    if not_before is not None and now + leeway < not_before:
        raise TokenError(
            reason=Reason.TOKEN_NOT_YET_VALID,
            detail=f"token is not valid before {_iso(not_before)}",
        )
    issued_at = _time_claim(claims, "iat", required=False)
    if issued_at is not None and now + leeway < issued_at:
        raise TokenError(
            reason=Reason.TOKEN_ISSUED_IN_FUTURE,
            detail=f"token is issued in the future, at {_iso(issued_at)}",
        )


@overload
def _time_claim(claims: Mapping[str, Any], name: str, *, required: Literal[True]) -> datetime: ...


@overload
def _time_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> datetime | None: ...


def _time_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> datetime | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(
            reason=Reason.TOKEN_MALFORMED, detail=f"token {name} claim is missing or not a number"
        )
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise TokenError(
            reason=Reason.TOKEN_MALFORMED, detail=f"token {name} claim is out of range"
        ) from exc


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_token(
    token: UnverifiedToken,
    *,
    issuer: IssuerConfig,
    keys: Sequence[VerificationKey],
    now: datetime,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> Mapping[str, Any]:
    """Fully check a parsed token against its issuer's keys; returns the verified claims.

    Raises:
        TokenError: for the first check that fails, in Fulcio's order: issuer, algorithm,
            signature, audience, expiry, not-before, issued-at.
    """
    if not issuer.matches(token.issuer):
        raise TokenError(
            reason=Reason.ISSUER_UNTRUSTED, detail=f"issuer {quote(token.issuer)} is not trusted"
        )
    check_algorithm(token)
    check_signature(token, keys)
    check_claims(token.claims, issuer=issuer, now=now, leeway=leeway)
    return token.claims
