"""The one decision behind `keyless policy check`, `keyless verify` and `keyless gate`.

`Evaluator.resolve` turns a reference into a digest (one registry round trip for a tag, none for
a digest); `Evaluator.evaluate` judges that digest against every matching ClusterImagePolicy:

1. The policies whose globs match the image's names: the digest form policy-controller's webhook
   matches (`index.docker.io/library/nginx@sha256:...`) and, when `resolve` turned a tag into
   this digest, the tag form policy-controller's tester matches
   (`index.docker.io/library/nginx:latest`). None: the no-match policy decides (`deny` fails,
   `warn` warns, `allow` passes).
2. The signatures attached to the digest are read once (referrers API, fallback tag, cosign's
   `.sig` tag), then each authority judges them: keyless authorities by identity against their
   trust root, key authorities with their key, static ones by their action.
3. Inside a policy any one authority is enough (OR); every matching policy must pass (AND). A
   failing `mode: warn` policy makes a warning, not a refusal. An authority group (Kyverno's
   attestor sets) passes when `threshold` of its members pass, tried in order until enough
   have, or until too few are left to get there.

A registry that cannot be reached, times out, refuses or answers nonsense makes the outcome
`error` ("could not decide"), never a pass. Messages say what was expected and what was found:
`policy/authority: no signature found for repo@sha256:...` is not the same line as
`policy/authority: signed by bob@example.com (https://issuer) but the policy wants ...`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from keyless.client.oci import Reference, RegistryError, find_signatures, parse_reference
from keyless.client.oci.reference import DOCKER_HUB, DOCKER_HUB_LEGACY
from keyless.client.policy.model import (
    Authority,
    AuthorityGroup,
    KeyAuthority,
    KeylessAuthority,
    Mode,
    NoMatchPolicy,
    Outcome,
    PolicyMatch,
    SignatureFormat,
    StaticAuthority,
)
from keyless.client.verify import Verifier
from keyless.client.verify.cosign_legacy import RekorEntries
from keyless.client.verify.images import (
    INVALID,
    WRONG_DIGEST,
    WRONG_IDENTITY,
    ImageVerificationError,
    check_signatures,
)

if TYPE_CHECKING:
    from keyless.client.oci import ImageSignatures, RegistryClient
    from keyless.client.policy.model import ImagePolicy, PolicySet
    from keyless.client.trust import TrustedRoot
    from keyless.client.verify.cosign_legacy import LogEntrySource
    from keyless.client.verify.images import ImageVerification

PASS, FAIL, WARN, ERROR = Outcome.PASS, Outcome.FAIL, Outcome.WARN, Outcome.ERROR


@dataclass(frozen=True)
class ResolvedImage:
    """An image pinned to a digest, with the names policy globs are matched against.

    `name` is the repository as policy-controller writes it (`index.docker.io/library/nginx`),
    `reference` the pinned form (`index.docker.io/library/nginx@sha256:...`), and `tag` the tag
    that was resolved to this digest, if any. A tag written next to a digest (`app:1.0@sha256:`)
    is not kept: nothing binds it to the digest, so it must not select policies.
    """

    name: str
    digest: str
    reference: str
    tag: str | None = None
    pinned: Reference | None = field(default=None, repr=False, compare=False)

    @property
    def match_names(self) -> tuple[str, ...]:
        """The names globs are tried against: the pinned form, then `name:tag`."""
        if self.tag is None:
            return (self.reference,)
        return (self.reference, f"{self.name}:{self.tag}")

    @classmethod
    def from_reference(cls, reference: Reference, digest: str) -> ResolvedImage:
        registry = DOCKER_HUB_LEGACY if reference.registry == DOCKER_HUB else reference.registry
        name = f"{registry}/{reference.repository}"
        return cls(
            name=name,
            digest=digest,
            reference=f"{name}@{digest}",
            tag=reference.tag if reference.digest is None else None,
            pinned=reference.with_digest(digest),
        )


@dataclass(frozen=True)
class AuthorityResult:
    """How one authority judged the image; for a pass, who signed."""

    name: str
    passed: bool
    message: str
    identity: str | None = None
    issuer: str | None = None
    # What was found: every valid signature for a pass, the refusal with its details for a fail.
    verification: ImageVerification | None = field(default=None, compare=False, repr=False)
    refusal: ImageVerificationError | None = field(default=None, compare=False, repr=False)
    # For a group: how each member that was tried judged the image.
    members: tuple[AuthorityResult, ...] = ()

    def to_json(self) -> dict[str, Any]:
        signatures = self.verification.verified if self.verification is not None else ()
        out = {
            "name": self.name,
            "passed": self.passed,
            "message": self.message,
            "identity": self.identity,
            "issuer": self.issuer,
            "signatures": [s.to_json() for s in signatures],
        }
        if self.members:
            out["authorities"] = [m.to_json() for m in self.members]
        return out


@dataclass(frozen=True)
class PolicyResult:
    """How one matching policy judged the image: passed when any authority passed."""

    name: str
    mode: Mode
    passed: bool
    authorities: tuple[AuthorityResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "passed": self.passed,
            "authorities": [a.to_json() for a in self.authorities],
        }


@dataclass(frozen=True)
class ImageVerdict:
    """The decision for one digest: `pass`, `fail`, `warn` or `error` (could not decide).

    `messages` holds every line (refusals first); `warnings` the lines from `mode: warn`
    policies and `no-match-policy: warn`, which never refuse. `enforced` and `warn_only` say
    what the matching policies' modes make of a failure, so no caller decides a mode again.
    """

    image: str
    digest: str
    policies: tuple[PolicyResult, ...]
    outcome: Outcome
    messages: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    enforced: bool = False
    warn_only: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "outcome": self.outcome,
            "messages": list(self.messages),
            "warnings": list(self.warnings),
            "policies": [p.to_json() for p in self.policies],
        }


class Evaluator:
    """Judges image digests against a loaded `PolicySet`; safe to share between threads.

    `registry` gives the `client.oci.RegistryClient` to use (credentials, insecure-registry choice
    and timeouts are the caller's); it is called once per `resolve` or `evaluate`. It may return
    one shared client or a new one each time; the evaluator never closes it. `entries` fetches
    log entries for cosign legacy signatures (default: from the log the trusted root names).
    `clock` gives the verification time. An authority stops at the first signature that passes
    unless `all_signatures` (then every valid signature is listed, as `keyless verify` does).
    """

    def __init__(
        self,
        policies: PolicySet,
        *,
        registry: Callable[[], RegistryClient],
        entries: LogEntrySource | None = None,
        clock: Callable[[], datetime] | None = None,
        all_signatures: bool = False,
    ) -> None:
        self.policies = policies
        self._registry = registry
        self._entries = entries or RekorEntries()
        self._all_signatures = all_signatures
        self._clock = clock or (lambda: datetime.now(UTC))
        self._verifiers: dict[tuple[str, str | None], tuple[Verifier, TrustedRoot]] = {}
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        """SHA-256 hex over policy content, trust material and the no-match rule."""
        return self.policies.fingerprint

    def resolve(self, image: str | Reference) -> ResolvedImage:
        """Pin `image` to a digest: a tag through the registry, a digest as given.

        Raises:
            RegistryError: the reference is invalid (`InvalidReferenceError`), or the registry
                could not resolve the tag.
        """
        reference = parse_reference(image) if isinstance(image, str) else image
        if reference.digest is not None:
            return ResolvedImage.from_reference(reference, reference.digest)
        digest = self._registry().resolve(reference).digest
        return ResolvedImage.from_reference(reference, digest)

    def match(self, image: ResolvedImage) -> PolicyMatch:
        """The policies with a glob matching one of the image's names."""
        return self.policies.match(image.match_names)

    def evaluate(self, image: ResolvedImage, match: PolicyMatch | None = None) -> ImageVerdict:
        """Judge one pinned image (against `match`, when the caller already has it); never
        raises for registry or signature problems."""
        if match is None:
            match = self.match(image)
        if not match.policies:
            return self._no_match(image)
        modes = {"enforced": match.enforced, "warn_only": match.warn_only}
        found: ImageSignatures | None = None
        if any(_checks_signatures(a) for p in match.policies for a in p.authorities):
            try:
                found = self._find(image)
            except RegistryError as exc:
                return ImageVerdict(
                    image.reference,
                    image.digest,
                    (),
                    ERROR,
                    (f"could not read the signatures of {image.reference}: {exc.message}",),
                    **modes,
                )
        now = self._clock()
        results = tuple(self._policy(policy, image, found, now) for policy in match.policies)
        refused = [r for r in results if not r.passed and r.mode == Mode.ENFORCE]
        warned = [r for r in results if not r.passed and r.mode != Mode.ENFORCE]
        refusals = [f"{r.name}/{a.name}: {a.message}" for r in refused for a in r.authorities]
        warnings = [f"{r.name}/{a.name}: {a.message}" for r in warned for a in r.authorities]
        outcome = FAIL if refused else WARN if warned else PASS
        return ImageVerdict(
            image.reference,
            image.digest,
            results,
            outcome,
            tuple(refusals + warnings),
            tuple(warnings),
            **modes,
        )

    def _no_match(self, image: ResolvedImage) -> ImageVerdict:
        rule = self.policies.no_match_policy
        if rule == NoMatchPolicy.ALLOW:
            return ImageVerdict(image.reference, image.digest, (), PASS, ())
        message = f"no matching policies for {image.reference}"
        if rule == NoMatchPolicy.WARN:
            return ImageVerdict(image.reference, image.digest, (), WARN, (message,), (message,))
        return ImageVerdict(image.reference, image.digest, (), FAIL, (message,))

    def _find(self, image: ResolvedImage) -> ImageSignatures:
        if image.pinned is None:
            raise TypeError("evaluate needs an image from resolve or ResolvedImage.from_reference")
        return find_signatures(self._registry(), image.pinned, image.digest)

    def _policy(
        self,
        policy: ImagePolicy,
        image: ResolvedImage,
        found: ImageSignatures | None,
        now: datetime,
    ) -> PolicyResult:
        results: list[AuthorityResult] = []
        for authority in policy.authorities:
            result = self._authority(authority, image, found, now)
            results.append(result)
            if result.passed:
                break
        return PolicyResult(
            policy.name, policy.mode, any(r.passed for r in results), tuple(results)
        )

    def _authority(
        self,
        authority: Authority,
        image: ResolvedImage,
        found: ImageSignatures | None,
        now: datetime,
    ) -> AuthorityResult:
        if isinstance(authority, AuthorityGroup):
            return self._group(authority, image, found, now)
        if isinstance(authority, StaticAuthority):
            if authority.passes:
                return AuthorityResult(authority.name, True, "allowed by static policy")
            return AuthorityResult(
                authority.name, False, f"disallowed by static policy: {authority.message}"
            )
        if found is None or image.pinned is None:
            raise TypeError("signatures must be read before a signing authority is judged")
        verifier, root = self._verifier(authority.trust_root, authority.tlog_url)
        if isinstance(authority, KeylessAuthority) and authority.attestations:
            return _attested(authority, image, found, verifier, now)
        try:
            outcome = check_signatures(
                image.pinned,
                found,
                verifier=verifier,
                trusted_root=root,
                now=now,
                policy=(
                    authority.identity_policy() if isinstance(authority, KeylessAuthority) else None
                ),
                keys=authority.keys if isinstance(authority, KeyAuthority) else (),
                ignore_tlog=isinstance(authority, KeyAuthority) and authority.ignore_tlog,
                bundles_only=authority.signature_format == SignatureFormat.BUNDLE,
                first_only=not self._all_signatures,
                require_timestamp=authority.require_timestamp,
                entries=self._entries,
            )
        except ImageVerificationError as exc:
            message = _refusal(authority, image, exc)
            return AuthorityResult(authority.name, False, message, refusal=exc)
        signer = outcome.verified[0]
        if isinstance(authority, KeyAuthority):
            logged = signer.log_index
            where = "no log entry checked" if logged is None else f"log index {logged}"
            message = f"signed with the policy's key, {where}"
        else:
            message = f"signed by {signer.identity} ({signer.issuer})"
        return AuthorityResult(
            authority.name, True, message, signer.identity, signer.issuer, verification=outcome
        )

    def _group(
        self,
        group: AuthorityGroup,
        image: ResolvedImage,
        found: ImageSignatures | None,
        now: datetime,
    ) -> AuthorityResult:
        """At least `threshold` members pass; members are tried in order and the rest skipped
        once enough passed, or once too few are left to reach the threshold."""
        results: list[AuthorityResult] = []
        passed = 0
        for index, member in enumerate(group.members):
            result = self._authority(member, image, found, now)
            results.append(result)
            passed += result.passed
            left = len(group.members) - index - 1
            if passed >= group.threshold or passed + left < group.threshold:
                break
        ok = passed >= group.threshold
        shown = [r for r in results if r.passed == ok]
        details = "; ".join(f"{r.name}: {r.message}" for r in shown)
        if not ok:
            details = f"needs {group.threshold} of {len(group.members)}, {passed} passed: {details}"
        first = next((r for r in results if r.passed), None)
        return AuthorityResult(
            group.name,
            ok,
            details,
            first.identity if first is not None else None,
            first.issuer if first is not None else None,
            members=tuple(results),
        )

    def _verifier(self, trust_root: str, tlog_url: str | None) -> tuple[Verifier, TrustedRoot]:
        """One Verifier per (trust root, transparency log), built on first use."""
        key = (trust_root, tlog_url)
        with self._lock:
            cached = self._verifiers.get(key)
            if cached is None:
                root = self.policies.trust[trust_root].root
                if tlog_url is not None:
                    tlogs = root.tlogs.items()
                    root = dataclasses.replace(
                        root, tlogs={k: v for k, v in tlogs if v.base_url.rstrip("/") == tlog_url}
                    )
                cached = (Verifier(root), root)
                self._verifiers[key] = cached
            return cached


def _checks_signatures(authority: Authority) -> bool:
    """Whether judging the authority needs the image's signatures (every kind but static)."""
    if isinstance(authority, AuthorityGroup):
        return any(_checks_signatures(member) for member in authority.members)
    return not isinstance(authority, StaticAuthority)


def _attested(
    authority: KeylessAuthority,
    image: ResolvedImage,
    found: ImageSignatures,
    verifier: Verifier,
    now: datetime,
) -> AuthorityResult:
    """An authority with `attestations`: every rule needs one attestation of its predicate type
    by the authority's signer that its policy allows; signatures do not count (as in
    policy-controller). A rule with `conditions` needs every such attestation to satisfy them
    (as in Kyverno)."""
    from keyless.client.attest.images import AttestationVerificationError, judge_attestations
    from keyless.client.attest.rego import PolicyError, rego_check
    from keyless.client.verify import VerificationError

    passed: list[str] = []
    signer: tuple[str | None, str | None] = (None, None)
    for rule in authority.attestations:
        try:
            verified = judge_attestations(
                found,
                image.digest,
                verifier=verifier,
                policy=authority.identity_policy(),
                predicate_type=rule.predicate_type,
                now=now,
                rego=rego_check([rule.policy] if rule.policy else []),
            )
            if rule.conditions is not None:
                for attestation in verified:
                    rule.conditions.check(attestation.statement)
        except VerificationError as exc:
            return AuthorityResult(authority.name, False, f"attestation {rule.name}: {exc.detail}")
        except (AttestationVerificationError, PolicyError) as exc:
            message = f"attestation {rule.name}: {exc.message}"
            if isinstance(exc, AttestationVerificationError) and exc.reason == "identity":
                message += f" (the policy wants {authority.describe_expected()})"
            return AuthorityResult(authority.name, False, message)
        first = verified[0]
        signer = (first.identity, first.issuer)
        passed.append(f"{rule.name} ({rule.predicate_type}) by {first.identity} ({first.issuer})")
    return AuthorityResult(
        authority.name, True, "attested: " + "; ".join(passed), signer[0], signer[1]
    )


def _refusal(
    authority: KeylessAuthority | KeyAuthority, image: ResolvedImage, exc: ImageVerificationError
) -> str:
    """What was expected and what was found, for one authority that did not pass."""
    outcome = exc.outcome
    if outcome is None:
        if exc.reason == "only-legacy-signatures":
            return (
                f"no signature found for {image.reference} (only cosign legacy signatures; "
                "the policy wants Sigstore bundles, signatureFormat: bundle)"
            )
        return f"no signature found for {image.reference}"
    wrong = [r for r in outcome.rejected if r.kind == WRONG_IDENTITY]
    if wrong and isinstance(authority, KeylessAuthority):
        signers = sorted({f"{r.identity} ({r.issuer})" for r in wrong})
        wanted = authority.describe_expected()
        return f"signed by {', '.join(signers)} but the policy wants {wanted}"
    other = [r for r in outcome.rejected if r.kind == WRONG_DIGEST]
    if other:
        return (
            f"the signatures found for {image.reference} are for a different digest "
            f"({other[0].source}: {other[0].detail})"
        )
    invalid = [r for r in outcome.rejected if r.kind == INVALID]
    what = "the policy's key" if isinstance(authority, KeyAuthority) else "a trusted signer"
    detail = f" ({invalid[0].source}: {invalid[0].detail})" if invalid else ""
    return (
        f"no valid signature by {what} for {image.reference}: "
        f"{len(invalid)} found, none verifies{detail}"
    )


__all__ = [
    "ERROR",
    "FAIL",
    "PASS",
    "WARN",
    "AuthorityResult",
    "Evaluator",
    "ImageVerdict",
    "PolicyResult",
    "ResolvedImage",
]
