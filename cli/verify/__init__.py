"""Client-side verification of Sigstore bundles: the checklist, identity policies, errors.

Needs no network and imports no server code. Build a `Verifier` once per trusted root, then call
`verify` (identity) or `verify_with_key` (managed key) per bundle.
"""

from __future__ import annotations

from cli.verify.errors import BundleError, TrustRootError, VerificationError
from cli.verify.policy import (
    AllOf,
    AnyOf,
    ExtensionEquals,
    Identity,
    IdentityRegexp,
    Issuer,
    IssuerRegexp,
    Policy,
)
from cli.verify.verifier import VerificationResult, Verifier

__all__ = [
    "AllOf",
    "AnyOf",
    "BundleError",
    "ExtensionEquals",
    "Identity",
    "IdentityRegexp",
    "Issuer",
    "IssuerRegexp",
    "Policy",
    "TrustRootError",
    "VerificationError",
    "VerificationResult",
    "Verifier",
]
