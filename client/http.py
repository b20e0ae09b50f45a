"""The client's HTTP seam: bounded JSON requests that fail as `NetworkError`, never a traceback."""

from __future__ import annotations

from typing import Any

import requests

from keyless.client.errors import NetworkError
from keyless.core.errors import Reason

DEFAULT_TIMEOUT_SECONDS = 30
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
USER_AGENT = "keyless"


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def request(
    session: requests.Session, method: str, url: str, *, what: str, **kwargs: Any
) -> tuple[requests.Response, bytes]:
    """Send a request; returns the response and its body, read up to a bound.

    Raises:
        NetworkError: `what` (e.g. "the CA") could not be reached, or answered too much.
    """
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT_SECONDS)
    try:
        with session.request(method, url, stream=True, **kwargs) as response:
            body = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise NetworkError(
            f"cannot reach {what} at {url}: {_describe(exc)}",
            reason=Reason.UNREACHABLE,
            hint="check the URL and your network connection",
        ) from exc
    if len(body) > MAX_RESPONSE_BYTES:
        raise NetworkError(f"{what} at {url} sent more than {MAX_RESPONSE_BYTES} bytes")
    return response, body


def json_body(body: bytes, *, what: str) -> Any:
    try:
        return requests.models.complexjson.loads(body)
    except ValueError as exc:
        raise NetworkError(f"{what} answered with something that is not JSON") from exc


def json_field(doc: Any, key: str, kind: type) -> Any:
    """`doc[key]` of a parsed JSON answer, required to be a `kind` (an int is never a bool).

    Raises:
        TypeError: `doc` is not an object, or the field is missing or of another type.
    """
    if not isinstance(doc, dict):
        raise TypeError("not a JSON object")
    value = doc.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{key} is not a {kind.__name__}")
    return value


def error_message(body: bytes) -> str:
    """The `message` of a JSON error body (Fulcio and Rekor both use it), else the raw text."""
    try:
        payload = requests.models.complexjson.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace").strip()
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        message = payload["message"]
        reasons = [_detail(d) for d in payload.get("details") or [] if isinstance(d, dict)]
        extra = "; ".join(r for r in reasons if isinstance(r, str) and r and r not in message)
        return f"{message} ({extra})" if extra else message
    return body[:200].decode(errors="replace").strip()


def _detail(detail: dict[str, Any]) -> object:
    """The most specific text in one error detail: a google.rpc.ErrorInfo's metadata.detail
    (keyless's CA), else its reason."""
    metadata = detail.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("detail"), str):
        return metadata["detail"]
    return detail.get("reason")


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return exc.__class__.__name__
