"""Token in, Principal out: the one entry point the CA calls for every request."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from keyless.core.errors import Reason
from keyless.oidc.config import IssuerConfig, TrustedIssuers
from keyless.oidc.discovery import KeySource
from keyless.oidc.errors import TokenError, quote
from keyless.oidc.principal import Principal
from keyless.oidc.principals import principal_from_claims
from keyless.oidc.tokens import TokenLimits, check_algorithm, check_token, parse_token

log = logging.getLogger(__name__)


class Authenticator:
    """Validates identity tokens against the trusted issuers and derives their principals."""

    def __init__(
        self,
        issuers: TrustedIssuers,
        *,
        keys: KeySource,
        limits: TokenLimits | None = None,
    ) -> None:
        self.issuers = issuers
        self._exact = frozenset(issuer.url for issuer in issuers.issuers)
        self._keys = keys
        self._limits = limits or TokenLimits()

    def authenticate(self, raw: str, *, now: datetime) -> Principal:
        """The principal a token proves, checked in Fulcio's order.

        Raises:
            TokenError: the token is refused; `detail` says why, and it is logged here.
        """
        try:
            token = parse_token(raw, limits=self._limits)
            issuer = self.issuers.match(token.issuer)
            if issuer is None:
                raise TokenError(
                    reason=Reason.ISSUER_UNTRUSTED,
                    detail=f"issuer {quote(token.issuer)} is not trusted",
                )
            check_algorithm(token)
            meta = token.issuer not in self._exact
            keys = self._keys.keys(issuer, kid=token.kid, now=now, meta=meta)
            claims = check_token(
                token, issuer=issuer, keys=keys, now=now, leeway=self._limits.leeway
            )
            return principal_from_claims(claims, issuer)
        except TokenError as exc:
            log.info("token refused (%s): %s", exc.reason, exc.detail)
            raise

    def configuration(self) -> list[dict[str, Any]]:
        """The `issuers` list of Fulcio's GET /api/v2/configuration, exact issuers first."""
        return [_describe(issuer) for issuer in self.issuers.issuers + self.issuers.meta_issuers]


def _describe(issuer: IssuerConfig) -> dict[str, Any]:
    location = {"issuerUrl": issuer.url} if issuer.url else {"wildcardIssuerUrl": issuer.pattern}
    return {
        **location,
        "audience": issuer.client_id,
        "challengeClaim": issuer.effective_challenge_claim,
        "spiffeTrustDomain": issuer.spiffe_trust_domain or "",
        "issuerType": issuer.type.value,
        "subjectDomain": issuer.subject_domain or "",
        "skipEmailVerification": issuer.skip_email_verification,
    }
