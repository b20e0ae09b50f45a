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

import functools
import json
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from keyless.server.gate.externaldata import (
    ProviderRequestError,
    mutate_items,
    parse_provider_request,
    provider_response,
    verify_items,
)
from keyless.server.gate.gate import Gate, GateSettings
from keyless.server.paths import clean_paths

if TYPE_CHECKING:
    from keyless.client.policy import PolicySet
    from keyless.server.gate.decisions import DecisionLog
    from keyless.server.gate.reload import PolicyReloader

log = logging.getLogger("keyless.gate")

MAX_BODY_BYTES = 4 * 1024 * 1024  # an object and its old version, each up to etcd's 1.5 MiB
MAX_DRAIN_BYTES = 32 * 1024 * 1024
EXTERNAL_DATA = ("externaldata-verify", "externaldata-mutate")


@dataclass(frozen=True)
class ExternalDataTransport:
    """What Gatekeeper's client guarantees and the external-data paths therefore require: TLS
    1.3, and with `client_cert`, a client certificate the server's `--client-ca` verified."""

    client_cert: bool = False

    def refusal(self, environ: dict[str, Any]) -> str | None:
        """Why this connection may not ask, or None. gunicorn hands the TLS socket on."""
        sock = environ.get("gunicorn.socket")
        if not isinstance(sock, ssl.SSLSocket):
            return "external data is served over TLS 1.3 only"
        if sock.version() != "TLSv1.3":
            return f"external data needs TLS 1.3, not {sock.version()}"
        if self.client_cert and not sock.getpeercert():
            return "external data needs a client certificate (--client-ca)"
        return None


def create_gate_app(
    policies: PolicySet,
    settings: GateSettings,
    *,
    registry_auth: Sequence[Path] = (),
    allow_insecure_registry: bool = False,
    decisions: DecisionLog | None = None,
    reload: Callable[[], PolicySet] | None = None,
    reload_interval: float = 10.0,
    transport: ExternalDataTransport | None = None,
) -> GateApp:
    """The gate's composition root: the evaluator over `policies`, one registry client per
    thread (with the docker config files of `registry_auth`, first match wins), the verdict
    cache, metrics, and the decision log when one is given. With `reload`, the policies are read
    again every `reload_interval` seconds and a changed set that loads replaces the old. Build
    it in the process that serves it (under gunicorn: in the worker, after the fork), since
    threads and connections do not cross a fork."""
    from keyless.client.oci import RegistryClient
    from keyless.client.oci.transport import RegistryLimits
    from keyless.client.policy import Evaluator
    from keyless.server.gate.credentials import FirstOf
    from keyless.server.gate.gate import per_thread
    from keyless.server.gate.metrics import GateMetrics

    credentials = FirstOf(list(registry_auth)) if registry_auth else None
    limits = RegistryLimits(timeout_seconds=settings.timeout)

    def client() -> RegistryClient:
        return RegistryClient(
            credentials=credentials, allow_insecure=allow_insecure_registry, limits=limits
        )

    registry = per_thread(client)
    gate = Gate(Evaluator(policies, registry=registry), settings, GateMetrics(), decisions)
    app = GateApp(gate, transport)
    if reload is not None:
        from keyless.server.gate.reload import PolicyReloader

        evaluate = functools.partial(Evaluator, registry=registry)
        app.reloader = PolicyReloader(gate, reload, evaluate, interval=reload_interval)
        app.reloader.start()
    return app


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
            Rule("/externaldata/verify", endpoint="externaldata-verify", methods=["POST"]),
            Rule("/externaldata/mutate", endpoint="externaldata-mutate", methods=["POST"]),
        ]
    )

    def __init__(self, gate: Gate, transport: ExternalDataTransport | None = None) -> None:
        self.gate = gate
        # None: no transport rule (an app composed in process, as tests do); `keyless gate
        # serve` always gives one.
        self.transport = transport
        self.reloader: PolicyReloader | None = None
        self.wsgi_app = clean_paths(self._serve)

    def close(self) -> None:
        """Stop reloading the policies (the process that serves it ends anyway)."""
        if self.reloader is not None:
            self.reloader.stop()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.wsgi_app(environ, start_response)

    def _serve(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._route(Request(environ))(environ, start_response)

    def _route(self, request: Request) -> Response:
        try:
            endpoint, _ = self.url_map.bind_to_environ(request.environ).match()
        except NotFound:
            return _error(
                404,
                "no such path: the webhooks are POST /mutations and /validations, Gatekeeper's "
                "providers POST /externaldata/verify and /externaldata/mutate",
            )
        except MethodNotAllowed as exc:
            if "POST" not in (exc.valid_methods or ()):
                return _error(405, "use GET")
            if request.path.startswith("/externaldata/"):
                return _error(405, "use POST with a ProviderRequest")
            return _error(405, "use POST with an AdmissionReview v1")
        if endpoint == "healthz":
            return Response("ok\n", content_type="text/plain")
        if endpoint == "metrics":
            return Response(
                self.gate.metrics.exposition(), content_type="text/plain; version=0.0.4"
            )
        if endpoint in EXTERNAL_DATA:
            return self._external_data(request, endpoint)
        return self._admit(request, endpoint)

    def _external_data(self, request: Request, provider: str) -> Response:
        refusal = self.transport.refusal(request.environ) if self.transport else None
        if refusal is not None:
            self.gate.metrics.admission(provider, "invalid")
            return _provider_error(403, refusal)
        if request.mimetype != "application/json":
            self.gate.metrics.admission(provider, "invalid")
            return _provider_error(415, "Content-Type must be application/json")
        body = _body(request)
        if body is None:
            self.gate.metrics.admission(provider, "invalid")
            return _provider_error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            keys = parse_provider_request(body)
        except ProviderRequestError as exc:
            self.gate.metrics.admission(provider, "invalid")
            return _provider_error(exc.status, exc.message)
        started = time.monotonic()
        budget = self.gate.settings.external_data_timeout
        try:
            if provider == "externaldata-verify":
                judged = self.gate.judge(keys, budget)
                items, system_error = verify_items(keys, judged)
            else:
                judged = self.gate.pin(keys, budget)
                items, system_error = mutate_items(keys, judged)
        except Exception:
            # Never an allow by accident: the whole request is a system error, not cached.
            log.exception("keyless gate: %s failed", provider)
            self.gate.metrics.admission(provider, "invalid")
            return _provider_error(500, "keyless gate: internal error")
        self.gate.log_lookup(provider, keys, judged, started)
        refused = system_error or any("error" in item for item in items)
        self.gate.metrics.admission(provider, "denied" if refused else "allowed")
        answer = provider_response(items, system_error)
        return Response(json.dumps(answer, separators=(",", ":")), content_type="application/json")

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
            answer = response(uid, False, code=exc.status, message=exc.message)
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


def _provider_error(status: int, message: str) -> Response:
    """A ProviderResponse with a `systemError`: Gatekeeper reads the body whatever the status,
    and a system error is never cached as an answer."""
    body = json.dumps(provider_response([], message), separators=(",", ":"))
    return Response(body, status=status, content_type="application/json")


def _error(status: int, message: str) -> Response:
    body = json.dumps({"error": message})
    return Response(body, status=status, content_type="application/json")
