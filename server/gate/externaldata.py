"""OPA Gatekeeper's external data: `ProviderRequest` in, `ProviderResponse` out.

Gatekeeper's Rego calls `external_data({"provider": ..., "keys": images})`; Gatekeeper posts the
keys here and caches each answer by (provider, key) for minutes, errors included. So an item's
`error` is given only for a deterministic refusal (unsigned, wrong signer, a bad reference, a
tag an enforce policy matches), and anything transient (a registry down, the deadline) is the
request's `systemError`, which Gatekeeper does not cache; items finished before it are still
answered. Each verdict comes from the same evaluator and cache as the admission webhooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keyless import strictjson
from keyless.client.oci.reference import MAX_REFERENCE_CHARS
from keyless.client.policy import Outcome
from keyless.core.errors import Error, Reason
from keyless.server.gate.decisions import verdict_policies

if TYPE_CHECKING:
    from keyless.server.gate.gate import Judgement

API_VERSIONS = ("externaldata.gatekeeper.sh/v1beta1", "externaldata.gatekeeper.sh/v1alpha1")
RESPONSE_API_VERSION = API_VERSIONS[0]
MAX_KEYS = 1000
MAX_DEPTH = 8


class ProviderRequestError(Error):
    """Not a ProviderRequest this provider can answer: HTTP 400 with a `systemError`."""

    status = 400
    reason = Reason.BAD_REQUEST


def parse_provider_request(body: bytes) -> list[str]:
    """The keys (image references) of a ProviderRequest, duplicates dropped, order kept.

    Raises:
        ProviderRequestError: not strict JSON, not a ProviderRequest, or keys that are not
            up to `MAX_KEYS` strings of up to `MAX_REFERENCE_CHARS` characters.
    """
    try:
        document = strictjson.loads(body, max_depth=MAX_DEPTH, what="the ProviderRequest")
    except strictjson.JSONError as exc:
        raise ProviderRequestError(str(exc)) from None
    if not isinstance(document, dict):
        raise ProviderRequestError("the ProviderRequest must be a JSON object")
    if document.get("apiVersion") not in API_VERSIONS or document.get("kind") != "ProviderRequest":
        raise ProviderRequestError(
            f"expected apiVersion {API_VERSIONS[0]} and kind ProviderRequest"
        )
    request = document.get("request")
    keys = request.get("keys") if isinstance(request, dict) else None
    if not isinstance(keys, list):
        raise ProviderRequestError("request.keys: must be a list of image references")
    if len(keys) > MAX_KEYS:
        raise ProviderRequestError(f"request.keys: at most {MAX_KEYS} keys, got {len(keys)}")
    for position, key in enumerate(keys):
        if not isinstance(key, str) or not 0 < len(key) <= MAX_REFERENCE_CHARS:
            raise ProviderRequestError(
                f"request.keys[{position}]: must be an image reference of 1 to "
                f"{MAX_REFERENCE_CHARS} characters"
            )
    return list(dict.fromkeys(keys))


def provider_response(items: list[dict[str, Any]], system_error: str = "") -> dict[str, Any]:
    response: dict[str, Any] = {"idempotent": True, "items": items}
    if system_error:
        response["systemError"] = system_error
    return {"apiVersion": RESPONSE_API_VERSION, "kind": "ProviderResponse", "response": response}


def verify_items(keys: list[str], judged: dict[str, Judgement]) -> tuple[list[dict[str, Any]], str]:
    """One item per decided key, and the transient failures as one `systemError`."""
    items: list[dict[str, Any]] = []
    transient: list[str] = []
    for key in keys:
        result = judged[key]
        if result.outcome == Outcome.ERROR:
            transient += [f"{key}: {message}" for message in result.messages] or [key]
            continue
        refusals = [m for m in result.messages if m not in result.warnings]
        allowed = result.outcome in (Outcome.PASS, Outcome.WARN)
        resolved = result.resolved
        if allowed and result.needs_digest and resolved is not None and resolved.tag:
            allowed = False
            refusals = [
                f"{key} must be an image digest: an enforce policy matches it, and only a digest "
                f"pins what was judged (pin it: {resolved.name}:{resolved.tag}@{resolved.digest})"
            ]
        value = {
            "digest": resolved.digest if resolved is not None else None,
            "allowed": allowed,
            "outcome": result.outcome,
            "messages": list(result.messages),
            "warnings": list(result.warnings),
            "policies": verdict_policies(result.verdict),
        }
        item: dict[str, Any] = {"key": key, "value": value}
        if not allowed:
            item["error"] = "; ".join(refusals) or f"{key}: {result.outcome}"
        items.append(item)
    return items, "; ".join(transient)


def mutate_items(keys: list[str], pinned: dict[str, Judgement]) -> tuple[list[dict[str, Any]], str]:
    """Tag to digest for Gatekeeper's `Assign` mutation: a tag an enforce policy matches
    becomes `name:tag@digest`, as the mutating webhook pins it; anything else is unchanged."""
    items: list[dict[str, Any]] = []
    transient: list[str] = []
    for key in keys:
        result = pinned[key]
        if result.outcome == Outcome.ERROR:
            transient += [f"{key}: {message}" for message in result.messages] or [key]
        elif result.outcome == Outcome.FAIL or result.resolved is None:
            items.append({"key": key, "error": "; ".join(result.messages) or "invalid reference"})
        elif result.pins and result.resolved.tag and "@" not in key:
            image = result.resolved
            items.append({"key": key, "value": f"{image.name}:{image.tag}@{image.digest}"})
        else:
            items.append({"key": key, "value": key})
    return items, "; ".join(transient)
