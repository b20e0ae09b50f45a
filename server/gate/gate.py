"""The gate's two decisions over one `client.policy.Evaluator`: pin tags, then judge digests.

`Gate.mutate` (the mutating webhook) resolves each tag an `enforce` policy cares about and
patches it to `name:tag@sha256:...`, keeping the tag as policy-controller does, so the kubelet
pulls exactly the digest that was judged. Tags that only `mode: warn` policies (or no policy)
match are left alone: warn mode must not change what runs; so are tags whose enforcing
policies all say `mutateDigest: false` (Kyverno). A tag that cannot be resolved is left as it
is; the validating webhook then refuses it.

`Gate.validate` (the validating webhook) judges every image of the object: all matching
policies must pass, any one authority is enough (the evaluator's rules). A tag that an
`enforce` policy matches is refused even when its digest passes: what runs must be what was
judged, and only a digest says that (unless every enforcing policy that matches says
`verifyDigest: false`: Kyverno's way to judge a tag's current digest and admit the tag).
Failing `mode: warn` policies give warnings. An image that could not be judged before the
deadline (a registry that hangs, a verification that takes too long) is refused, with the
reason; it is never admitted for want of an answer, except with a warning when only `mode:
warn` policies match its digest (and none of them is a Kyverno policy, whose `failurePolicy:
Fail` refuses what its Audit rules could not judge). An UPDATE of an object being deleted
whose images do not change is allowed untouched (finalizers must not hang on a registry).
Digests already in the cache are answered in the request's own thread.

Each distinct image string of a request is resolved and judged once, in a thread pool, and
the answer is assembled when all are done or the deadline passes, whichever comes first.
Verdicts go through `VerdictCache` keyed by (the evaluator's fingerprint, the names the image
is matched under: not the digest alone, since the same digest under another repository or
tag can match other policies), so identical images are verified once per TTL and concurrent
admissions of one image share one verification.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keyless.client.oci import RegistryError
from keyless.client.oci.errors import InvalidReferenceError
from keyless.client.policy.evaluator import (
    ERROR,
    FAIL,
    PASS,
    WARN,
    Evaluator,
    ImageVerdict,
    ResolvedImage,
)
from keyless.client.policy.model import Outcome, PolicyMatch
from keyless.client.policy.workloads import (
    POD_SPEC_PATHS,
    WorkloadError,
    pod_spec_path,
    workload_images,
)
from keyless.server.gate.admission import AdmissionRequest, RequestError, response
from keyless.server.gate.cache import Undecided, VerdictCache
from keyless.server.gate.decisions import now as decisions_now
from keyless.server.gate.decisions import verdict_policies

if TYPE_CHECKING:
    from keyless.client.oci import RegistryClient
    from keyless.client.policy.workloads import WorkloadImage
    from keyless.server.gate.decisions import DecisionLog
    from keyless.server.gate.metrics import GateMetrics

log = logging.getLogger("keyless.gate")

# The part of the deadline kept for assembling and sending the answer.
ANSWER_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class GateSettings:
    """Limits and cache settings; `timeout` caps every answer, below the webhook's
    `timeoutSeconds` (the API server's `?timeout=` lowers it further)."""

    timeout: float = 20.0
    cache_size: int = 1000
    cache_ttl: float = 600.0
    negative_ttl: float = 0.0
    workers: int = 32
    # Gatekeeper gives a provider `spec.timeout` (the manifests print 3 s) and drops a late
    # answer: answer well inside it.
    external_data_timeout: float = 2.5


@dataclass(frozen=True)
class Policies:
    """The policy set a request is judged by: its evaluator, and its fingerprint (hashed once
    per set, not per request)."""

    evaluator: Evaluator
    fingerprint: str

    def pin(self, image: ResolvedImage) -> Pinned:
        return Pinned(image, self.evaluator.match(image), self.fingerprint)


@dataclass(frozen=True)
class Pinned:
    """An image pinned to a digest and the policies that match it: worked out once a request."""

    image: ResolvedImage
    match: PolicyMatch
    fingerprint: str

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """The verdict cache's key. Not the digest alone: the same digest under another name
        or tag can match other policies, and another policy set judges it anew."""
        return (self.fingerprint, self.image.match_names)


def _pinned(image: str, current: Policies) -> Pinned | None:
    """A digest reference with the policies that match it, or None for a tag (or a reference
    that does not parse: the task reports it)."""
    if "@" not in image:
        return None
    try:
        resolved = current.evaluator.resolve(image)
    except RegistryError:
        return None
    return current.pin(resolved)


@dataclass(frozen=True)
class Judgement:
    """What the gate knows about one image string of a request."""

    outcome: Outcome
    messages: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    resolved: ResolvedImage | None = None
    enforced: bool = False  # some enforce policy matches the image
    verdict: ImageVerdict | None = None
    cached: bool = False
    pins: bool = False  # an enforce policy wants the tag pinned (PolicyMatch.pins)
    needs_digest: bool = False  # an enforce policy refuses a tag (PolicyMatch.needs_digest)


def per_thread(factory: Callable[[], RegistryClient]) -> Callable[[], RegistryClient]:
    """One registry client per thread: connections and tokens are reused, never shared."""
    local = threading.local()

    def client() -> RegistryClient:
        found = getattr(local, "client", None)
        if found is None:
            found = local.client = factory()
        return found

    return client


class Gate:
    """Answers AdmissionReview requests; safe to share between threads."""

    def __init__(
        self,
        evaluator: Evaluator,
        settings: GateSettings,
        metrics: GateMetrics,
        decisions: DecisionLog | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.decisions = decisions
        self._current = Policies(evaluator, evaluator.fingerprint)
        self.cache: VerdictCache[ImageVerdict] = VerdictCache(
            size=settings.cache_size, keep=self._keep
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="keyless-gate"
        )

    @property
    def evaluator(self) -> Evaluator:
        return self._current.evaluator

    def swap(self, evaluator: Evaluator) -> None:
        """Judge with `evaluator` from now on (a reloaded policy set). Requests under way
        finish with the policies they started with; verdicts are cached per fingerprint, so
        no verdict crosses from one set to the other."""
        self._current = Policies(evaluator, evaluator.fingerprint)

    def budget(self, requested: float | None) -> float:
        """Seconds this answer may take: the gate's limit or the API server's, the lower."""
        limit = (
            self.settings.timeout if requested is None else min(requested, self.settings.timeout)
        )
        return max(limit - ANSWER_MARGIN_SECONDS, limit / 2)

    # The two webhooks.

    def mutate(self, request: AdmissionRequest, budget: float) -> dict[str, Any]:
        fields = self._fields(request)
        if isinstance(fields, dict):
            self.metrics.admission("mutations", "skipped")
            return fields
        started = time.monotonic()
        deadline = started + budget
        tags = [f for f in fields if _is_tag(f.image)]
        resolved = self._run({f.image for f in tags}, self._pin, deadline, budget)
        patch = []
        for item in tags:
            judged = resolved[item.image]
            if judged.resolved is None or not judged.pins:
                continue
            image = judged.resolved
            value = f"{image.name}:{image.tag}@{image.digest}"
            patch.append({"op": "replace", "path": item.pointer, "value": value})
        self.metrics.admission("mutations", "patched" if patch else "allowed")
        self._decide("mutations", request, tags, resolved, True, started)
        return response(request.uid, True, patch=patch)

    def validate(self, request: AdmissionRequest, budget: float) -> dict[str, Any]:
        fields = self._fields(request)
        if isinstance(fields, dict):
            self.metrics.admission("validations", "skipped")
            return fields
        started = time.monotonic()
        deadline = started + budget
        judged = self._run({f.image for f in fields}, self._judge, deadline, budget)
        refusals: list[str] = []
        warnings: list[str] = []
        for item in fields:
            result = judged[item.image]
            lines = [_line(item, result, m) for m in result.messages if m not in result.warnings]
            warnings += [_line(item, result, m) for m in result.warnings]
            if result.outcome in (FAIL, ERROR):
                refusals += lines
            elif result.needs_digest and result.resolved is not None and result.resolved.tag:
                refusals.append(
                    f"{item.field}: {item.image} must be an image digest: an enforce policy "
                    "matches it, and only a digest pins what was judged (the mutating webhook "
                    f"pins it: {result.resolved.name}:{result.resolved.tag}@"
                    f"{result.resolved.digest})"
                )
        if refusals or warnings:
            _log(request, "denied" if refusals else "admitted with warnings", refusals + warnings)
        self._decide("validations", request, fields, judged, not refusals, started)
        if refusals:
            self.metrics.admission("validations", "denied")
            return response(
                request.uid, False, code=403, message="\n".join(refusals), warnings=warnings
            )
        self.metrics.admission("validations", "warned" if warnings else "allowed")
        return response(request.uid, True, warnings=warnings)

    # Gatekeeper's external data: the same judgements, for image references without an object.

    def judge(self, images: list[str], budget: float) -> dict[str, Judgement]:
        """Each image judged as the validating webhook judges it, within `budget` seconds."""
        return self._run(set(images), self._judge, time.monotonic() + budget, budget)

    def pin(self, images: list[str], budget: float) -> dict[str, Judgement]:
        """Each image pinned to a digest as the mutating webhook pins it."""
        return self._run(set(images), self._pin, time.monotonic() + budget, budget)

    def log_lookup(
        self, provider: str, images: list[str], judged: dict[str, Judgement], started: float
    ) -> None:
        """A decision-log line for an external-data request (no object: the keys alone)."""
        if self.decisions is None:
            return
        self.decisions.write(
            {
                "time": decisions_now(),
                "webhook": provider,
                "images": [_image_record("request.keys", i, judged[i]) for i in images],
                "ms": round((time.monotonic() - started) * 1000, 3),
            }
        )

    # Steps.

    def _fields(self, request: AdmissionRequest) -> list[WorkloadImage] | dict[str, Any]:
        """The images to look at, or the answer when there is nothing to judge."""
        if not request.judged:
            return response(request.uid, True)
        path = pod_spec_path(request.group, request.kind)
        if path is None:
            kinds = ", ".join(f"{g or 'core'}/{k}" for g, k in POD_SPEC_PATHS)
            raise RequestError(
                f"keyless gate judges {kinds}; not {request.group or 'core'}/{request.kind}"
            )
        try:
            fields = workload_images(request.object, path)
        except WorkloadError as exc:
            raise RequestError("; ".join(exc.problems)) from None
        if request.operation == "UPDATE" and _deleting(request.object):
            # Finalizers being removed from an object on its way out must not hang on the
            # registry or on a policy changed since; only while no image changes.
            try:
                old = workload_images(request.old_object, path)
            except WorkloadError:
                return fields
            if [(f.pointer, f.image) for f in old] == [(f.pointer, f.image) for f in fields]:
                return response(request.uid, True)
        return fields

    def _run(
        self,
        images: set[str],
        task: Callable[[str, Pinned | None, Policies, float], Judgement],
        deadline: float,
        budget: float,
    ) -> dict[str, Judgement]:
        """`task` for each image, in the pool; images not done by `deadline` are `error`.

        One request is judged by one policy set, the one current when it came. A digest
        reference is pinned here, once (a parse, no registry), and handed on; a tag is pinned
        by the task, through the registry."""
        current = self._current
        done: dict[str, Judgement] = {}
        pending: dict[concurrent.futures.Future[Judgement], tuple[str, Pinned | None]] = {}
        for image in images:
            pinned = _pinned(image, current)
            quick = self._cached(pinned) if pinned is not None else None
            if quick is not None:
                done[image] = quick
            else:
                future = self._pool.submit(task, image, pinned, current, deadline)
                pending[future] = (image, pinned)
        if pending:
            remaining = max(0.0, deadline - time.monotonic())
            concurrent.futures.wait(pending, timeout=remaining)
        for future, (image, pinned) in pending.items():
            if future.done() and future.exception() is None:
                done[image] = future.result()
            elif future.done():
                done[image] = self._undecided(
                    pinned, f"could not judge {image}: {future.exception()}"
                )
            else:
                future.cancel()
                done[image] = self._undecided(
                    pinned,
                    f"could not judge {image} within {budget:.1f}s: the registry or the "
                    "verification did not finish in time",
                )
        return done

    def _undecided(self, pinned: Pinned | None, message: str) -> Judgement:
        """No verdict: a refusal, unless only `mode: warn` policies match that do not refuse
        what they cannot judge (then a warning). The policies of a digest are known without
        the registry; a tag's are not."""
        if pinned is not None and pinned.match.undecided_warns:
            return Judgement(WARN, (message,), (message,), pinned.image)
        return Judgement(ERROR, (message,))

    def _cached(self, pinned: Pinned) -> Judgement | None:
        """A digest already judged, without leaving the request thread (the common case)."""
        verdict = self.cache.get(pinned.key)
        if verdict is None:
            return None
        self.metrics.cache_hits.inc()
        return _judgement(verdict, pinned.image, pinned.match, cached=True)

    def _pin(
        self, image: str, pinned: Pinned | None, current: Policies, deadline: float
    ) -> Judgement:
        """The image pinned to a digest (a tag through the registry), or why it cannot be."""
        if pinned is None:
            try:
                resolved = current.evaluator.resolve(image)
            except InvalidReferenceError as exc:
                return Judgement(FAIL, (f"{image}: {exc.message}",))
            except RegistryError as exc:
                return Judgement(ERROR, (f"could not resolve {image}: {exc.message}",))
            pinned = current.pin(resolved)
        match = pinned.match
        return Judgement(
            PASS,
            (),
            resolved=pinned.image,
            enforced=match.enforced,
            pins=match.pins,
            needs_digest=match.needs_digest,
        )

    def _judge(
        self, image: str, pinned: Pinned | None, current: Policies, deadline: float
    ) -> Judgement:
        first = self._pin(image, pinned, current, deadline)
        if first.resolved is None:
            return first
        if pinned is None:
            pinned = current.pin(first.resolved)
        resolved, match = pinned.image, pinned.match
        try:
            verdict, hit = self.cache.get_or_compute(
                pinned.key,
                lambda: self._evaluate(current.evaluator, resolved, match),
                deadline=deadline,
            )
        except Undecided:
            message = (
                f"could not judge {resolved.reference} in time (another admission is still "
                "verifying it)"
            )
            if match.undecided_warns:
                return Judgement(WARN, (message,), (message,), resolved)
            return Judgement(ERROR, (message,), resolved=resolved, enforced=match.enforced)
        (self.metrics.cache_hits if hit else self.metrics.cache_misses).inc()
        return _judgement(verdict, resolved, match, cached=hit)

    def _evaluate(
        self, evaluator: Evaluator, resolved: ResolvedImage, match: PolicyMatch
    ) -> ImageVerdict:
        with self.metrics.verify_seconds.time():
            return evaluator.evaluate(resolved, match)

    def _decide(
        self,
        webhook: str,
        request: AdmissionRequest,
        fields: list[WorkloadImage],
        judged: dict[str, Judgement],
        allowed: bool,
        started: float,
    ) -> None:
        """One line in the decision log, when there is one."""
        if self.decisions is None:
            return
        images = [_image_record(item.field, item.image, judged[item.image]) for item in fields]
        self.decisions.write(
            {
                "time": decisions_now(),
                "webhook": webhook,
                "uid": request.uid,
                "operation": request.operation,
                "kind": f"{request.group or 'core'}/{request.version}/{request.kind}",
                "namespace": request.namespace,
                "name": request.name,
                "user": request.user,
                "dryRun": request.dry_run,
                "allowed": allowed,
                "images": images,
                "ms": round((time.monotonic() - started) * 1000, 3),
            }
        )

    def _keep(self, verdict: ImageVerdict) -> float:
        if verdict.outcome == PASS:
            return self.settings.cache_ttl
        if verdict.outcome in (FAIL, WARN):
            return self.settings.negative_ttl
        return 0.0


def _judgement(
    verdict: ImageVerdict, resolved: ResolvedImage, match: PolicyMatch, *, cached: bool
) -> Judgement:
    """The gate's view of a verdict; its modes come with it (cached verdicts included, since
    the cache key holds the policies' content and the names they were matched against)."""
    outcome, warnings = verdict.outcome, verdict.warnings
    if outcome == ERROR and verdict.policies == () and match.undecided_warns:
        # Undecidable, but only warn-mode policies care: warn, as they would on a failure.
        outcome, warnings = WARN, verdict.messages
    return Judgement(
        outcome,
        verdict.messages,
        warnings,
        resolved,
        verdict.enforced,
        verdict,
        cached,
        pins=match.pins,
        needs_digest=match.needs_digest,
    )


def _image_record(where: str, image: str, result: Judgement) -> dict[str, Any]:
    """What the decision log says of one image: as written, the digest judged, the verdict."""
    return {
        "field": where,
        "image": image,
        "digest": result.resolved.digest if result.resolved is not None else None,
        "outcome": result.outcome,
        "cached": result.cached,
        "policies": verdict_policies(result.verdict),
    }


def _log(request: AdmissionRequest, what: str, lines: list[str]) -> None:
    """One line per refusal or warning in the gate's log, for audits after the fact."""
    where = f"{request.namespace}/{request.name}" if request.namespace else request.name
    dry = " (dry run)" if request.dry_run else ""
    for line in lines:
        log.info("%s %s %s %s%s: %s", what, request.operation, request.kind, where, dry, line)


def _deleting(obj: Any) -> bool:
    """Whether the API server has marked the object for deletion (metadata.deletionTimestamp)."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return isinstance(metadata, dict) and metadata.get("deletionTimestamp") is not None


def _is_tag(image: str) -> bool:
    """An image without a digest (a tag, or no tag: `latest`)."""
    return "@" not in image


def _line(item: WorkloadImage, judged: Judgement, message: str) -> str:
    """`field: message`, naming the image when the message does not."""
    image = judged.resolved.reference if judged.resolved is not None else item.image
    if image in message or item.image in message:
        return f"{item.field}: {message}"
    return f"{item.field}: {image}: {message}"
