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
    from keyless.oidc.authenticator import Authenticator
    from keyless.oidc.config import (
        IssuerConfig,
        IssuerType,
        TrustedIssuers,
        issuers_from_document,
        load_issuers,
        parse_issuers,
    )
    from keyless.oidc.discovery import FetchLimits, JWKSCache, KeySource, StaticKeys
    from keyless.oidc.errors import TOKEN_ERROR_MESSAGE, ConfigError, PrincipalError, TokenError
    from keyless.oidc.principal import Principal, SANType
    from keyless.oidc.tokens import ALLOWED_ALGORITHMS, TokenLimits

_LAZY = {
    "Authenticator": "keyless.oidc.authenticator",
    "IssuerConfig": "keyless.oidc.config",
    "IssuerType": "keyless.oidc.config",
    "TrustedIssuers": "keyless.oidc.config",
    "issuers_from_document": "keyless.oidc.config",
    "load_issuers": "keyless.oidc.config",
    "parse_issuers": "keyless.oidc.config",
    "FetchLimits": "keyless.oidc.discovery",
    "JWKSCache": "keyless.oidc.discovery",
    "KeySource": "keyless.oidc.discovery",
    "StaticKeys": "keyless.oidc.discovery",
    "TOKEN_ERROR_MESSAGE": "keyless.oidc.errors",
    "ConfigError": "keyless.oidc.errors",
    "PrincipalError": "keyless.oidc.errors",
    "TokenError": "keyless.oidc.errors",
    "Principal": "keyless.oidc.principal",
    "SANType": "keyless.oidc.principal",
    "ALLOWED_ALGORITHMS": "keyless.oidc.tokens",
    "TokenLimits": "keyless.oidc.tokens",
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
        raise AttributeError(f"module 'keyless.oidc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
