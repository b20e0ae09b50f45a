"""The gate's WSGI app: `POST /mutations`, `POST /validations`, `GET /healthz`, `GET /metrics`.

Plain werkzeug rather than Flask: an admission is on the critical path of every pod, and the
cache-hit answer should cost little more than parsing the review. Every failure is a clean
answer: a body that is not an AdmissionReview v1 is an HTTP 400 (the API server then applies
`failurePolicy: Fail`), a review whose request cannot be judged is refused with code 400, and
an unexpected exception is refused with code 500 inside a 200 AdmissionReview when the uid is
known (so it is never an allow), an HTTP 500 otherwise.

`dryRun` requests are judged exactly like real ones: the gate has no side effects
(`sideEffects: None`), so nothing differs but the metrics and the verdict cache, which a dry
run fills as a real request would.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from keyless.server.gate.admission import (
    RequestError,
    ReviewError,
    parse_review,
    parse_timeout,
    read_request,
    response,
)
from keyless.server.gate.gate import Gate
from keyless.server.paths import clean_paths

log = logging.getLogger("keyless.gate")

MAX_BODY_BYTES = 4 * 1024 * 1024  # an object and its old version, each up to etcd's 1.5 MiB
MAX_DRAIN_BYTES = 32 * 1024 * 1024


class GateApp:
    """WSGI callable around a `Gate`."""

    # GET rules answer HEAD too. Paths are cleaned first (server.paths), so `/validations/`
    # is `/validations`.
    url_map = Map(
        [
            Rule("/healthz", endpoint="healthz", methods=["GET"]),
            Rule("/metrics", endpoint="metrics", methods=["GET"]),
            Rule("/mutations", endpoint="mutations", methods=["POST"]),
            Rule("/validations", endpoint="validations", methods=["POST"]),
        ]
    )

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.wsgi_app = clean_paths(self._serve)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.wsgi_app(environ, start_response)

    def _serve(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._route(Request(environ))(environ, start_response)

    def _route(self, request: Request) -> Response:
        try:
            endpoint, _ = self.url_map.bind_to_environ(request.environ).match()
        except NotFound:
            return _error(404, "no such path: the webhooks are POST /mutations and /validations")
        except MethodNotAllowed as exc:
            if "POST" in (exc.valid_methods or ()):
                return _error(405, "use POST with an AdmissionReview v1")
            return _error(405, "use GET")
        if endpoint == "healthz":
            return Response("ok\n", content_type="text/plain")
        if endpoint == "metrics":
            return Response(
                self.gate.metrics.exposition(), content_type="text/plain; version=0.0.4"
            )
        return self._admit(request, endpoint)

    def _admit(self, request: Request, webhook: str) -> Response:
        if request.mimetype != "application/json":
            self.gate.metrics.admission(webhook, "invalid")
            return _error(415, "Content-Type must be application/json")
        body = _body(request)
        if body is None:
            self.gate.metrics.admission(webhook, "invalid")
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            uid, raw = parse_review(body)
        except ReviewError as exc:
            self.gate.metrics.admission(webhook, "invalid")
            return _error(exc.status, exc.message)
        budget = self.gate.budget(parse_timeout(request.args.get("timeout")))
        try:
            admission = read_request(uid, raw)
            if webhook == "mutations":
                answer = self.gate.mutate(admission, budget)
            else:
                answer = self.gate.validate(admission, budget)
        except RequestError as exc:
            self.gate.metrics.admission(webhook, "invalid")
            answer = response(uid, False, code=400, message=exc.message)
        except Exception:
            # Never an allow by accident: the request is refused, and the cause is logged.
            log.exception("keyless gate: %s failed for uid %s", webhook, uid)
            self.gate.metrics.admission(webhook, "invalid")
            answer = response(uid, False, code=500, message="keyless gate: internal error")
        return Response(json.dumps(answer, separators=(",", ":")), content_type="application/json")


def _body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than `MAX_BODY_BYTES`, with or without a
    Content-Length (chunked bodies are kept up to the limit, never further). A moderately
    oversized body is read and dropped, so that a client still sending it gets the 413 rather
    than a broken connection; beyond `MAX_DRAIN_BYTES` it is not."""
    stream = request.environ["wsgi.input"]
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        remaining = length if length <= MAX_DRAIN_BYTES else 0
        while remaining > 0:
            chunk = stream.read(min(remaining, 64 * 1024))
            if not chunk:
                break
            remaining -= len(chunk)
        return None
    limit = MAX_BODY_BYTES + 1 if length is None else length
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = stream.read(min(limit - size, 64 * 1024))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    if size <= MAX_BODY_BYTES:
        return b"".join(parts)
    # Too large and chunked: drop the rest too (up to MAX_DRAIN_BYTES), as above.
    while size < MAX_DRAIN_BYTES:
        chunk = stream.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
    return None


def _error(status: int, message: str) -> Response:
    body = json.dumps({"error": message})
    return Response(body, status=status, content_type="application/json")
