"""The composition root: one Flask app serving every keyless service on one origin.

`create_app(config)` builds the app from a validated `ServerConfig`; nothing happens at import.
`app()` is the factory gunicorn calls: `gunicorn 'cli.serve:app()'`, configured by the
environment (`KEYLESS_CONFIG`, or dev mode with `KEYLESS_STATE_DIR`, `KEYLESS_HOST`,
`KEYLESS_PORT`).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from cli.server_config import ServerConfig, dev_config, load_server_config
from cli.state import StateDir
from oidc import Authenticator, JWKSCache, StaticKeys

DEV_ISSUER_KEY_FILE = "oidc-dev-issuer-key.pem"


def create_app(config: ServerConfig) -> Flask:
    """The keyless server for `config`: health, metrics, and each enabled service."""
    state = StateDir(config.state_dir)
    state.create()
    app = Flask("keyless")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.extensions["keyless.config"] = config
    issuers = config.issuers
    static_keys = {}
    if config.dev_issuer:
        from oidc import devissuer_api
        from oidc.devissuer import DevIssuer

        key = state.private_key(
            DEV_ISSUER_KEY_FILE,
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )
        dev = DevIssuer(base_url=config.public_url, key=key, user_email=config.dev_user_email)
        devissuer_api.init_app(app, dev)
        issuers = issuers.merged(dev.trusted_issuers())
        static_keys = {dev.issuer_url: dev.jwks(), dev.github_issuer_url: dev.jwks()}
    app.extensions["keyless.authenticator"] = Authenticator(
        issuers, keys=StaticKeys(static_keys, fallback=JWKSCache())
    )
    _add_health_and_metrics(app)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    """Routing and protocol errors outside any blueprint, as JSON instead of HTML."""
    status = exc.code or 500
    return jsonify(code=status, message=exc.description), status


def _add_health_and_metrics(app: Flask) -> None:
    requests_total: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    @app.after_request
    def _count(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        with lock:
            requests_total[(endpoint, response.status_code)] += 1
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="SERVING")

    @app.get("/metrics")
    def metrics() -> Response:
        with lock:
            counts = sorted(requests_total.items())
        lines = [
            "# HELP keyless_http_requests_total HTTP requests by route and status.",
            "# TYPE keyless_http_requests_total counter",
        ]
        lines += [
            f'keyless_http_requests_total{{route="{route}",code="{code}"}} {count}'
            for (route, code), count in counts
        ]
        return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")


def config_from_environment() -> ServerConfig:
    """The configuration gunicorn's `app()` uses: a file from KEYLESS_CONFIG, else dev mode."""
    state_dir = os.environ.get("KEYLESS_STATE_DIR")
    port = os.environ.get("KEYLESS_PORT")
    overrides = {
        "host": os.environ.get("KEYLESS_HOST"),
        "port": int(port) if port else None,
        "state_dir": Path(state_dir) if state_dir else None,
    }
    path = os.environ.get("KEYLESS_CONFIG")
    if path:
        return load_server_config(Path(path), **overrides)
    return dev_config(**overrides)


def app() -> Flask:
    """The WSGI app factory for gunicorn: `gunicorn 'cli.serve:app()'`."""
    return create_app(config_from_environment())
