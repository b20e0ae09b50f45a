"""The OIDC bridge: which issuers are trusted, token validation, and claims -> identity.

Public surface, for `ca` and `cli.serve`:
- `load_issuers(path)` / `parse_issuers(text, source=)` -> `TrustedIssuers`;
- `Authenticator(issuers, keys=KeySource)` with `authenticate(token, now=) -> Principal`
  and `configuration()` (Fulcio's /api/v2/configuration issuers);
- `JWKSCache` (discovery + JWKS over the network) and `StaticKeys` (in-process issuers);
- `Principal`, `SANType`; errors `TokenError`, `PrincipalError`, `ConfigError`.

Nothing here imports Flask; the development issuer's blueprint is `oidc.devissuer_api`.
"""

from oidc.authenticator import Authenticator
from oidc.config import IssuerConfig, IssuerType, TrustedIssuers, load_issuers, parse_issuers
from oidc.discovery import FetchLimits, JWKSCache, KeySource, StaticKeys
from oidc.errors import TOKEN_ERROR_MESSAGE, ConfigError, PrincipalError, TokenError
from oidc.principal import Principal, SANType
from oidc.tokens import ALLOWED_ALGORITHMS, TokenLimits

__all__ = [
    "ALLOWED_ALGORITHMS",
    "TOKEN_ERROR_MESSAGE",
    "Authenticator",
    "ConfigError",
    "FetchLimits",
    "IssuerConfig",
    "IssuerType",
    "JWKSCache",
    "KeySource",
    "Principal",
    "PrincipalError",
    "SANType",
    "StaticKeys",
    "TokenError",
    "TokenLimits",
    "TrustedIssuers",
    "load_issuers",
    "parse_issuers",
]
