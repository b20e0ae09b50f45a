"""The policy model the evaluator judges: what every dialect is parsed into.

ClusterImagePolicy files (`cip`) and Kyverno ClusterPolicies (`kyverno`) are parsed at load into
these frozen types, so the evaluator, `keyless policy check`, `keyless verify` and the gate have
one model to judge and no second path. One type per authority kind: a keyless identity, a public
key, a static verdict, or a group of authorities of which a number must pass (Kyverno's attestor
sets); modes, outcomes and the no-match rule are `StrEnum`s, equal to the strings policy files
and JSON output spell them with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from keyless.client.policy.trustroots import DEFAULT_TRUST_ROOT, TrustMaterial
from keyless.client.verify import AllOf, AnyOf, Identity, IdentityRegexp, Issuer, IssuerRegexp

if TYPE_CHECKING:
    from keyless.client.attest.rego import RegoPolicy
    from keyless.client.keys import VerifierKey
    from keyless.client.policy.glob import GlobPattern
    from keyless.client.policy.wildcard import WildcardPattern
    from keyless.client.verify import Policy


class Mode(StrEnum):
    """What a failing policy does: refuse (`enforce`) or only warn (`warn`)."""

    ENFORCE = "enforce"
    WARN = "warn"


class NoMatchPolicy(StrEnum):
    """What happens to an image no policy matches."""

    DENY = "deny"
    WARN = "warn"
    ALLOW = "allow"


class Outcome(StrEnum):
    """A verdict: `error` is "could not decide", never a pass."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    ERROR = "error"


class AuthorityKind(StrEnum):
    KEYLESS = "keyless"
    KEY = "key"
    STATIC = "static"
    GROUP = "group"


class SignatureFormat(StrEnum):
    """Which signatures count: any (`legacy`, cosign's `.sig` tags too) or bundles only."""

    LEGACY = "legacy"
    BUNDLE = "bundle"


@dataclass(frozen=True)
class KeylessIdentity:
    """One accepted signer: an issuer and a subject, each exact or an anchored regexp."""

    issuer: str | None = None
    issuer_regexp: str | None = None
    subject: str | None = None
    subject_regexp: str | None = None

    def policy(self) -> Policy:
        return AllOf(
            [
                Identity(self.subject)
                if self.subject is not None
                else IdentityRegexp(self.subject_regexp or ""),
                Issuer(self.issuer)
                if self.issuer is not None
                else IssuerRegexp(self.issuer_regexp or ""),
            ]
        )

    def describe(self) -> str:
        subject = self.subject or f"/{self.subject_regexp}/"
        issuer = self.issuer or f"/{self.issuer_regexp}/"
        return f"{subject} ({issuer})"


class StatementCheck(Protocol):
    """A check over a verified in-toto statement; raises VerificationError("policy") naming
    what did not hold."""

    def check(self, statement: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class AttestationRule:
    """An authority's `attestations[]` entry: an attestation of this predicate type must be
    there, by the authority's signer, and allowed by the Rego policy if one is given (one
    allowed attestation is enough, as in policy-controller). With `conditions`, EVERY
    attestation of the type by the signer must satisfy them (as in Kyverno)."""

    name: str
    predicate_type: str  # a URI (policy-controller's short names are mapped)
    policy: RegoPolicy | None = field(default=None, compare=False)
    conditions: StatementCheck | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class SigningAuthority:
    """What every authority that checks signatures shares: the trust root its signatures are
    verified under, the transparency log it selects, which signature forms count, and whether a
    trusted timestamp is required."""

    name: str
    trust_root: str = DEFAULT_TRUST_ROOT
    tlog_url: str | None = None
    signature_format: SignatureFormat = SignatureFormat.LEGACY
    require_timestamp: bool = False  # `rfc3161timestamp`: a trusted TSA's timestamp is required


@dataclass(frozen=True, kw_only=True)
class KeylessAuthority(SigningAuthority):
    """Signatures by a certificate for an accepted identity: any one of `identities`, as a
    policy lists them, or the check `identity` with `expected` saying it in words (what
    `keyless verify` builds from its flags). With `attestations`, only attestations count, each
    rule needing one (policy-controller)."""

    identities: tuple[KeylessIdentity, ...] = ()
    identity: Policy | None = None
    expected: str = ""
    attestations: tuple[AttestationRule, ...] = ()
    kind: ClassVar[AuthorityKind] = AuthorityKind.KEYLESS

    def identity_policy(self) -> Policy:
        """The check a signing certificate must pass."""
        if self.identity is not None:
            return self.identity
        return AnyOf([identity.policy() for identity in self.identities])

    def describe_expected(self) -> str:
        if self.identity is not None:
            return self.expected
        return " or ".join(identity.describe() for identity in self.identities)


@dataclass(frozen=True, kw_only=True)
class KeyAuthority(SigningAuthority):
    """Signatures made with a public key: any one of `keys` (a rotation window). With
    `ignore_tlog`, a signature that verifies with the key counts whether or not it was logged
    (policy-controller's IgnoreTlog for a key authority without `ctlog`; cosign's
    --insecure-ignore-tlog)."""

    keys: tuple[VerifierKey, ...]
    ignore_tlog: bool = False
    kind: ClassVar[AuthorityKind] = AuthorityKind.KEY


@dataclass(frozen=True, kw_only=True)
class StaticAuthority:
    """A verdict that needs no signature: `action: pass` or `action: fail` with a message."""

    name: str
    passes: bool
    message: str = ""
    kind: ClassVar[AuthorityKind] = AuthorityKind.STATIC


@dataclass(frozen=True, kw_only=True)
class AuthorityGroup:
    """Authorities of which at least `threshold` must pass, tried in order until enough have.

    Kyverno's attestor sets (`count`; absent, every entry must pass), its nested attestors, and
    a rule's attestor sets and attestations together (all must pass). A policy's own
    authorities stay "any one passes"; a group is one of them.
    """

    name: str
    members: tuple[Authority, ...]
    threshold: int
    kind: ClassVar[AuthorityKind] = AuthorityKind.GROUP

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an authority group needs at least one member")
        if not 1 <= self.threshold <= len(self.members):
            raise ValueError(
                f"an authority group of {len(self.members)} needs a threshold between 1 and "
                f"{len(self.members)}, not {self.threshold}"
            )


Authority = KeylessAuthority | KeyAuthority | StaticAuthority | AuthorityGroup


@dataclass(frozen=True)
class ImagePolicy:
    """One policy: its image patterns, mode and authorities, and where it was read.

    `patterns` are policy-controller globs or Kyverno wildcards; each reads the evaluator's
    match names its own way (`spellings`). `skip_patterns` (Kyverno's `skipImageReferences`)
    take a spelling out again. `mutate_digest` and `verify_digest` are Kyverno's (both true for
    a ClusterImagePolicy): the gate pins a tag only for an enforcing policy with
    `mutate_digest`, and refuses a tag only for one with `verify_digest`. `undecided_refuses`
    says that an image the policy could not judge is refused even in `mode: warn` (Kyverno's
    `failurePolicy: Fail` blocks a rule error under Audit too).
    """

    name: str
    globs: tuple[str, ...]
    mode: Mode
    authorities: tuple[Authority, ...]
    source: str
    content_sha256: str
    patterns: tuple[GlobPattern | WildcardPattern, ...] = field(
        repr=False, compare=False, default=()
    )
    skip_patterns: tuple[WildcardPattern, ...] = field(repr=False, compare=False, default=())
    mutate_digest: bool = True
    verify_digest: bool = True
    undecided_refuses: bool = False

    def matches(self, names: tuple[str, ...]) -> bool:
        return any(
            pattern.fullmatch(spelled) and not self._skipped(spelled)
            for pattern in self.patterns
            for name in names
            for spelled in pattern.spellings(name)
        )

    def _skipped(self, name: str) -> bool:
        return any(skip.fullmatch(name) for skip in self.skip_patterns)


@dataclass(frozen=True)
class PolicyMatch:
    """The policies whose globs match one image, and what their modes make of a failure."""

    policies: tuple[ImagePolicy, ...]

    @property
    def enforced(self) -> bool:
        """Some `mode: enforce` policy matches: a failure refuses."""
        return any(policy.mode == Mode.ENFORCE for policy in self.policies)

    @property
    def warn_only(self) -> bool:
        """Policies match, and every one is `mode: warn`: a failure only warns."""
        return bool(self.policies) and not self.enforced

    @property
    def undecided_warns(self) -> bool:
        """Only warn-mode policies match, and none refuses what it could not judge: an image
        that could not be judged is admitted with a warning."""
        return self.warn_only and not any(p.undecided_refuses for p in self.policies)

    @property
    def pins(self) -> bool:
        """An enforcing policy wants a tag pinned to its digest (the mutating webhook)."""
        return any(p.mode == Mode.ENFORCE and p.mutate_digest for p in self.policies)

    @property
    def needs_digest(self) -> bool:
        """An enforcing policy refuses a tag: only a digest pins what was judged."""
        return any(p.mode == Mode.ENFORCE and p.verify_digest for p in self.policies)


@dataclass(frozen=True)
class PolicySet:
    """Everything a verdict depends on: policies, trust material, and the no-match rule."""

    policies: tuple[ImagePolicy, ...]
    trust: dict[str, TrustMaterial]
    no_match_policy: NoMatchPolicy = NoMatchPolicy.DENY
    # Lines to show when the set is loaded: where keyless reads a policy more strictly than
    # its dialect does (Kyverno's unanchored regexps).
    warnings: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        """SHA-256 hex over the policies' content, the trust material and the no-match rule."""
        summary = {
            "policies": sorted((p.name, p.content_sha256) for p in self.policies),
            "trust": sorted((name, t.sha256) for name, t in self.trust.items()),
            "no-match-policy": self.no_match_policy,
        }
        return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()

    def match(self, names: tuple[str, ...]) -> PolicyMatch:
        """The policies with a glob matching one of `names`."""
        return PolicyMatch(tuple(p for p in self.policies if p.matches(names)))
