"""Client-side verification of Sigstore bundles: the checklist, identity policies, errors.

Needs no network and imports no server code. Build a `Verifier` once per trusted root, then call
`verify` (identity) or `verify_with_key` (managed key) per bundle. Each failure raises
`VerificationError` whose `check` names the step, in this order:

`key-material`, `log-entry` (log in the trusted root, its key valid at signing time),
`signed-entry-timestamp`, `timestamp` (RFC 3161), `time` (at least one signed time, none in the
future), `certificate-validity`, `certificate-chain`, `sct`, `certificate-profile`, the policy's
own checks (`identity`, `issuer`, `github-workflow-*`), `checkpoint`, `inclusion-proof`,
`message-digest` or `dsse` (the artifact), `signature`, `log-body`. Loading raises `bundle`,
`trust-root`, `artifact` or `key`.

Modules: `verifier` (the checklist), `policy`, `sct`, `timestamps`, `transparency` (SET,
checkpoint, inclusion), `entry` (log body consistency), `dsse`, `artifact`, `keys`, `errors`.
"""

from __future__ import annotations

from keyless.client.verify.errors import BundleError, TrustRootError, VerificationError
from keyless.client.verify.policy import (
    AllOf,
    AnyOf,
    ExtensionEquals,
    Identity,
    IdentityRegexp,
    Issuer,
    IssuerRegexp,
    Policy,
)
from keyless.client.verify.verifier import VerificationResult, Verifier

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
