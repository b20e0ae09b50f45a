"""AdmissionReview v1, in and out (k8s.io/api admission/v1 types).

`parse_review` reads what the API server POSTs and refuses anything else with an `HTTP 400`
(`ReviewError`): a body that is not strict JSON, another `apiVersion` or `kind`, a request
without a `uid`. Once the `uid` is known, a request with fields of the wrong type is answered
as an AdmissionReview refusal (`RequestError`, code 400), which the API server shows the user.
`response` builds the answer: `uid` echoed, `allowed`, `status` for refusals, a base64 RFC 6902
`patch` with `patchType: JSONPatch`, and `warnings`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from keyless import strictjson
from keyless.core.encoding import b64encode
from keyless.core.errors import Error, Reason

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
JUDGED_OPERATIONS = ("CREATE", "UPDATE")
# The operations of `k8s.io/api/admission/v1` (Operation); anything else is refused, never
# allowed untouched: `create` or `PATCH` is not an operation the API server sends.
OPERATIONS = (*JUDGED_OPERATIONS, "DELETE", "CONNECT")
MAX_DEPTH = 64  # managedFields mirror the object's shape, nested a few levels below it
MAX_UID_CHARS = 128
# Go's time.Duration text as the API server writes `?timeout=` (`10s`, `30s`, `1m0s`).
_DURATION = re.compile(r"(?:(\d{1,3})m)?(?:(\d{1,3}(?:\.\d{1,9})?)s)?")


class ReviewError(Error):
    """Not an AdmissionReview v1 request: answered with HTTP 400 and this message."""

    status = 400
    reason = Reason.BAD_REQUEST


class RequestError(Error):
    """An AdmissionReview whose request cannot be judged: refused with code 400."""

    status = 400
    reason = Reason.BAD_REQUEST


@dataclass(frozen=True)
class AdmissionRequest:
    """The fields of `request` the gate uses, type-checked."""

    uid: str
    operation: str
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    object: Any
    old_object: Any
    dry_run: bool
    user: str = ""  # userInfo.username: who asked, for the decision log

    @property
    def judged(self) -> bool:
        """CREATE and UPDATE are judged; DELETE and CONNECT are allowed untouched."""
        return self.operation in JUDGED_OPERATIONS


def parse_review(body: bytes) -> tuple[str, Any]:
    """The `uid` and the raw `request` of an AdmissionReview v1.

    Raises:
        ReviewError: not strict JSON, not an AdmissionReview v1, or no usable uid (HTTP 400).
    """
    try:
        review = strictjson.loads(body, max_depth=MAX_DEPTH, what="the AdmissionReview")
    except strictjson.JSONError as exc:
        raise ReviewError(str(exc)) from None
    if not isinstance(review, dict):
        raise ReviewError("the AdmissionReview must be a JSON object")
    api_version, kind = review.get("apiVersion"), review.get("kind")
    if api_version != API_VERSION:
        raise ReviewError(f"apiVersion must be {API_VERSION}, not {_short(api_version)} (v1 only)")
    if kind != KIND:
        raise ReviewError(f"kind must be {KIND}, not {_short(kind)}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request: must be an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > MAX_UID_CHARS:
        raise ReviewError(f"request.uid: must be a string of 1 to {MAX_UID_CHARS} characters")
    return uid, request


def read_request(uid: str, request: dict[str, Any]) -> AdmissionRequest:
    """The request's fields, type-checked.

    Raises:
        RequestError: a field has the wrong type or is missing.
    """
    operation = _field(request, "operation", str, required=True)
    if operation not in OPERATIONS:
        raise RequestError(
            f"request.operation: must be one of {', '.join(OPERATIONS)}, not {operation[:32]!r}"
        )
    kind = _field(request, "kind", dict, required=True)
    parts = {key: _field(kind, key, str, where="request.kind.") for key in ("group", "version")}
    kind_name = _field(kind, "kind", str, where="request.kind.", required=True)
    return AdmissionRequest(
        uid=uid,
        operation=operation,
        group=parts["group"] or "",
        version=parts["version"] or "",
        kind=kind_name,
        namespace=_field(request, "namespace", str) or "",
        name=_field(request, "name", str) or "",
        object=request.get("object"),
        old_object=request.get("oldObject"),
        dry_run=bool(_field(request, "dryRun", bool)),
        user=_username(request.get("userInfo")),
    )


def _username(user_info: Any) -> str:
    """The requesting user's name, bounded; nothing else of userInfo (no extra, no groups)."""
    name = user_info.get("username") if isinstance(user_info, dict) else None
    return name[:256] if isinstance(name, str) else ""


def _field(
    mapping: dict[str, Any],
    key: str,
    kind: type,
    *,
    where: str = "request.",
    required: bool = False,
) -> Any:
    value = mapping.get(key)
    if value is None:
        if required:
            raise RequestError(f"{where}{key}: missing")
        return None
    if not isinstance(value, kind):
        names = {str: "a string", dict: "an object", bool: "a boolean"}
        raise RequestError(f"{where}{key}: must be {names[kind]}")
    return value


def response(
    uid: str,
    allowed: bool,
    *,
    code: int | None = None,
    message: str | None = None,
    warnings: list[str] | None = None,
    patch: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An AdmissionReview v1 answer to the request `uid`."""
    answer: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        answer["status"] = {"code": code or 403, "message": message or "refused"}
    if patch:
        text = json.dumps(patch, separators=(",", ":"))
        answer["patchType"] = "JSONPatch"
        answer["patch"] = b64encode(text.encode())
    if warnings:
        answer["warnings"] = warnings
    return {"apiVersion": API_VERSION, "kind": KIND, "response": answer}


def parse_timeout(value: str | None) -> float | None:
    """Seconds from the API server's `?timeout=` (Go duration text: `10s`, `1m0s`), or None
    when absent or unreadable (the gate's own limit then applies)."""
    if not value or len(value) > 32:
        return None
    match = _DURATION.fullmatch(value)
    if match is None or not any(match.groups()):
        return None
    minutes, seconds = match.groups()
    total = int(minutes or 0) * 60 + float(seconds or 0)
    return total if total > 0 else None


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 64 else text[:61] + "..."
