"""The OIDC bridge: which issuers are trusted, token validation, and claims -> identity.

Public surface, for `ca` and `server.app`:
- `load_issuers(path)` / `parse_issuers(text, source=)` / `issuers_from_document(data, source=)`
  -> `TrustedIssuers`;
- `Authenticator(issuers, keys=KeySource)` with `authenticate(token, now=) -> Principal`
  and `configuration()` (Fulcio's /api/v2/configuration issuers);
- `JWKSCache` (discovery + JWKS over the network) and `StaticKeys` (in-process issuers);
- `Principal`, `SANType`; errors `TokenError`, `PrincipalError`, `ConfigError`.

Names load on first use, so a client importing `oidc.oids` (to check certificates) does not pay
for requests, PyYAML and PyJWT. Nothing here imports Flask; the development issuer's blueprint is
`oidc.devissuer_api`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oidc.authenticator import Authenticator
    from oidc.config import (
        IssuerConfig,
        IssuerType,
        TrustedIssuers,
        issuers_from_document,
        load_issuers,
        parse_issuers,
    )
    from oidc.discovery import FetchLimits, JWKSCache, KeySource, StaticKeys
    from oidc.errors import TOKEN_ERROR_MESSAGE, ConfigError, PrincipalError, TokenError
    from oidc.principal import Principal, SANType
    from oidc.tokens import ALLOWED_ALGORITHMS, TokenLimits

_LAZY = {
    "Authenticator": "oidc.authenticator",
    "IssuerConfig": "oidc.config",
    "IssuerType": "oidc.config",
    "TrustedIssuers": "oidc.config",
    "issuers_from_document": "oidc.config",
    "load_issuers": "oidc.config",
    "parse_issuers": "oidc.config",
    "FetchLimits": "oidc.discovery",
    "JWKSCache": "oidc.discovery",
    "KeySource": "oidc.discovery",
    "StaticKeys": "oidc.discovery",
    "TOKEN_ERROR_MESSAGE": "oidc.errors",
    "ConfigError": "oidc.errors",
    "PrincipalError": "oidc.errors",
    "TokenError": "oidc.errors",
    "Principal": "oidc.principal",
    "SANType": "oidc.principal",
    "ALLOWED_ALGORITHMS": "oidc.tokens",
    "TokenLimits": "oidc.tokens",
}

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
    "issuers_from_document",
    "load_issuers",
    "parse_issuers",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oidc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
