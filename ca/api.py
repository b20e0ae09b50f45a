"""The CA over HTTP: Fulcio's v2 JSON API and the legacy v1 endpoints cosign uses.

Views are thin: bounded body -> `ca.wire` parse -> `CertificateAuthority` -> `ca.wire` render.
Every failure is Fulcio's `{"code","message","details"}` body with Fulcio's status.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from cryptography import x509
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from keyless.ca import metrics, wire
from keyless.ca.errors import MSG_TRUST_BUNDLE, BackendError, CAError, CTLogError, RequestError
from keyless.ca.issuance import CertificateAuthority, IssuedCertificate
from keyless.core.encoding import format_rfc3339
from keyless.core.errors import Reason

log = logging.getLogger(__name__)
# One JSON line per issuance and per refusal, for auditors: never the token, never a key.
audit = logging.getLogger("keyless.audit")

bp = Blueprint("ca", __name__)
EXTENSION_KEY = "keyless.ca"
_LIMIT_KEY = "keyless.ca.max_request_bytes"
PEM_CHAIN = "application/pem-certificate-chain"


def init_app(
    app: Flask,
    service: CertificateAuthority,
    *,
    max_request_bytes: int = wire.DEFAULT_MAX_REQUEST_BYTES,
) -> None:
    """Serve `service` in `app` at Fulcio's paths."""
    app.register_blueprint(bp)
    app.extensions[EXTENSION_KEY] = service
    app.extensions[_LIMIT_KEY] = max_request_bytes


def current_authority() -> CertificateAuthority:
    """The CA of the current app."""
    authority: CertificateAuthority = current_app.extensions[EXTENSION_KEY]
    return authority


@bp.errorhandler(CAError)
def _ca_error(exc: CAError) -> tuple[Response, int]:
    if exc.status >= 500:
        log.error("CA request failed (%s): %s", exc.reason, exc)
    else:
        log.warning("CA request refused (%s): %s", exc.reason, exc)
    if request.path.endswith("/signingCert"):
        _audit("refused", status=exc.status, reason=exc.reason, message=str(exc)[:300])
        metrics.REFUSALS.labels(reason=exc.reason).inc()
        if isinstance(exc, CTLogError):
            metrics.CT_SUBMISSIONS.labels(result="failed").inc()
    return jsonify(wire.render_error(exc)), exc.status


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> tuple[Response, int]:
    return _ca_error(_body_too_large(current_app.extensions[_LIMIT_KEY]))


@bp.post("/api/v2/signingCert")
def signing_cert_v2() -> Response:
    now = datetime.now(UTC)
    parsed = wire.parse_v2_request(_body(), authorization=request.headers.get("Authorization"))
    issued = current_authority().issue(parsed, now=now)
    _audit_issued(issued, now)
    return jsonify(wire.render_v2_certificate(issued))


@bp.get("/api/v2/trustBundle")
def trust_bundle() -> Response:
    return jsonify(wire.render_trust_bundle(_chains()))


@bp.get("/api/v2/configuration")
def configuration() -> Response:
    return jsonify(wire.render_configuration(current_authority().configuration()))


@bp.post("/api/v1/signingCert")
def signing_cert_v1() -> Response:
    now = datetime.now(UTC)
    parsed = wire.parse_v1_request(_body(), authorization=request.headers.get("Authorization"))
    issued = current_authority().issue(parsed, now=now)
    _audit_issued(issued, now)
    body, headers = wire.render_v1_certificate(issued)
    return Response(body, status=201, mimetype=PEM_CHAIN, headers=headers)


@bp.get("/api/v1/rootCert")
def root_cert() -> Response:
    return Response(wire.render_root_cert(_chains()), mimetype=PEM_CHAIN)


def _audit_issued(issued: IssuedCertificate, now: datetime) -> None:
    metrics.NEW_CERTS.inc()
    metrics.CT_SUBMISSIONS.labels(result="logged").inc()
    leaf, principal = issued.leaf, issued.principal
    key = leaf.public_key()
    curve = getattr(getattr(key, "curve", None), "name", None)
    _audit(
        "issued",
        time=format_rfc3339(now),
        serial=f"{leaf.serial_number:x}",
        identity=[principal.san_value],
        issuer=principal.issuer,
        key_algorithm=curve or f"RSA-{getattr(key, 'key_size', '?')}",
        # The SCT names the CT entry (its timestamp, with the leaf); `keyless audit` gives its
        # index, which RFC 6962's add-chain answer does not carry.
        sct_timestamp=_sct_timestamp(issued),
        sct="embedded" if issued.embedded else "detached",
    )


def _sct_timestamp(issued: IssuedCertificate) -> int | None:
    """The timestamp (ms) of the SCT the CA obtained, embedded or detached."""
    return issued.sct.timestamp_ms if issued.sct is not None else None


def _audit(event: str, **fields: object) -> None:
    """One JSON line on the `keyless.audit` logger, with the client's address."""
    record = {"event": event, "client": request.remote_addr, "path": request.path, **fields}
    record.setdefault("time", format_rfc3339(datetime.now(UTC)))
    audit.info(json.dumps(record, separators=(",", ":"), sort_keys=False))


def _chains() -> tuple[tuple[x509.Certificate, ...], ...]:
    try:
        return current_authority().trust_bundle()
    except CAError:
        raise
    except Exception as exc:  # A backend failure; Fulcio answers 500 with this message.
        raise BackendError(MSG_TRUST_BUNDLE, detail=type(exc).__name__) from exc


def _body() -> bytes:
    """The request body, refused unread if it declares, or turns out, more than the limit."""
    limit = current_app.extensions[_LIMIT_KEY]
    if request.content_length is not None and request.content_length > limit:
        raise _body_too_large(limit)
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise _body_too_large(limit)
    return data


def _body_too_large(limit: int) -> RequestError:
    return RequestError(
        f"request body too large: the limit is {limit} bytes", reason=Reason.TOO_LARGE
    )
