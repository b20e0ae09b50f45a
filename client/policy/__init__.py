"""Image policies for deploy gates: policy-controller's ClusterImagePolicy and Kyverno's
ClusterPolicy, judged by one evaluator.

`keyless policy check` (CD pipelines), `keyless verify` and `keyless gate` (the admission
webhook) all decide through `Evaluator`, so a pipeline and a cluster cannot disagree.

Modules: `model` (the policy model every dialect is parsed into), `glob` (policy-controller's
image globs), `wildcard` (Kyverno's image patterns), `cip` (ClusterImagePolicy files parsed into
the model, and the one loader of policy files), `kyverno` (Kyverno ClusterPolicies parsed into
the model, with `kyverno_identity` and `kyverno_conditions`), `documents` (what the parsers
share),
`trustroots` (named trust material: trusted_root.json files and TrustRoot documents),
`evaluator` (the decision), `errors`. `workloads` (the images of Kubernetes objects) belongs to
the gate.
"""

from __future__ import annotations

from keyless.client.policy.cip import load_policy_set
from keyless.client.policy.errors import PolicyFileError
from keyless.client.policy.evaluator import (
    AuthorityResult,
    Evaluator,
    ImageVerdict,
    PolicyResult,
    ResolvedImage,
)
from keyless.client.policy.glob import GlobError, compile_glob, match_glob
from keyless.client.policy.model import (
    AttestationRule,
    Authority,
    AuthorityGroup,
    AuthorityKind,
    ImagePolicy,
    KeyAuthority,
    KeylessAuthority,
    KeylessIdentity,
    Mode,
    NoMatchPolicy,
    Outcome,
    PolicyMatch,
    PolicySet,
    SignatureFormat,
    StaticAuthority,
)
from keyless.client.policy.trustroots import TrustMaterial, load_trust_file, production_trust

__all__ = [
    "AttestationRule",
    "Authority",
    "AuthorityGroup",
    "AuthorityKind",
    "AuthorityResult",
    "Evaluator",
    "GlobError",
    "ImagePolicy",
    "ImageVerdict",
    "KeyAuthority",
    "KeylessAuthority",
    "KeylessIdentity",
    "Mode",
    "NoMatchPolicy",
    "Outcome",
    "PolicyFileError",
    "PolicyMatch",
    "PolicyResult",
    "PolicySet",
    "ResolvedImage",
    "SignatureFormat",
    "StaticAuthority",
    "TrustMaterial",
    "compile_glob",
    "load_policy_set",
    "load_trust_file",
    "match_glob",
    "production_trust",
]
