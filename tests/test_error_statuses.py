"""Every blueprint answers an error with the HTTP status its class states: a new kind of error
with a status of its own is answered with that status, in the blueprint's wire body, not as a
500. Each service here raises such a kind from the one method a route calls."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import requests
from asn1crypto import core, tsp
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

from keyless.ca import BackendError, CertificateAuthority, load_generated_signer
from keyless.ca import api as ca_api
from keyless.core.errors import Reason
from keyless.oidc import devissuer_api
from keyless.oidc.devissuer import DevIssuer, DevIssuerError
from keyless.server import tuf_api
from keyless.server.tuf_repository import TUFRepositoryError
from keyless.tlog import ct_api, rekor_api, rekor_v2_api
from keyless.tlog.errors import StorageError
from keyless.tlog.rekor import RekorService
from keyless.tlog.rekor_v2 import RekorV2Service
from keyless.tlog.sqlite_storage import SQLiteStorage
from keyless.tsa import Rejected, TimestampAuthority, dev_tsa_chain
from keyless.tsa import api as tsa_api
from tests.conftest import serve_wsgi


class _BackendBusyError(BackendError):
    status = 503
    reason = Reason.UNREACHABLE


class _StorageBusyError(StorageError):
    status = 503


class _GoneError(DevIssuerError):
    status = 410
    error = "temporarily_unavailable"


class _SignerBusyError(Rejected):
    status = 503


class _RepositoryBusyError(TUFRepositoryError):
    status = 503


def _get(app: Flask, path: str) -> requests.Response:
    with serve_wsgi(app) as url:
        return requests.get(url + path, timeout=10)


def test_the_ca_answers_with_the_errors_status_and_its_grpc_code(tmp_path: Path) -> None:
    class Authenticator:
        def authenticate(self, raw: str, *, now: datetime) -> Any:
            raise AssertionError("not called")

        def configuration(self) -> list[dict[str, Any]]:
            raise _BackendBusyError("the trusted issuers are being reloaded")

    app = Flask("ca-statuses")
    signer = load_generated_signer(tmp_path / "ca", now=datetime.now(UTC))
    authority = CertificateAuthority(
        authenticator=Authenticator(), signer=signer, ct=None, detached=True
    )
    ca_api.init_app(app, authority)
    response = _get(app, "/api/v2/configuration")
    assert response.status_code == 503
    assert response.json() == {
        "code": 14,  # UNAVAILABLE
        "message": "the trusted issuers are being reloaded",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "unreachable",
                "domain": "keyless.dev",
            }
        ],
    }


def test_the_ct_log_answers_with_the_errors_status() -> None:
    class CTLog:
        def get_sth(self) -> dict[str, Any]:
            raise _StorageBusyError("the log database is locked")

    app = Flask("ct-statuses")
    ct_api.init_app(app, CTLog())
    response = _get(app, "/ct/v1/get-sth")
    assert response.status_code == 503
    assert response.json() == {"code": 503, "message": "the log database is locked"}


def test_rekor_v1_answers_with_the_errors_status(tmp_path: Path) -> None:
    class Rekor(RekorService):
        def log_info(self) -> Any:
            raise _StorageBusyError("the log database is locked")

    service = Rekor.open(
        storage=SQLiteStorage(tmp_path / "rekor.db"),
        private_key=ec.generate_private_key(ec.SECP256R1()),
        host="127.0.0.1",
    )
    app = Flask("rekor-statuses")
    rekor_api.init_app(app, service)
    response = _get(app, "/api/v1/log")
    assert response.status_code == 503
    assert response.text == '{"code":503,"message":"the log database is locked"}\n'


def test_rekor_v2_answers_with_the_errors_status_and_its_grpc_code(tmp_path: Path) -> None:
    class RekorV2(RekorV2Service):
        def checkpoint(self) -> bytes:
            raise _StorageBusyError("the log database is locked")

    service = RekorV2.open(
        storage=SQLiteStorage(tmp_path / "v2.db"),
        private_key=ec.generate_private_key(ec.SECP256R1()),
        origin="log.example.com",
    )
    app = Flask("rekor-v2-statuses")
    rekor_v2_api.init_app(app, service)
    response = _get(app, "/api/v2/checkpoint")
    assert response.status_code == 503
    assert response.json() == {"code": 14, "message": "the log database is locked", "details": []}


def test_the_tsa_answers_a_rejection_with_the_errors_status() -> None:
    class Authority(TimestampAuthority):
        def grant(self, request: Any) -> bytes:
            raise _SignerBusyError("the signing key is busy", failure="system_failure")

    key = ec.generate_private_key(ec.SECP256R1())
    authority = Authority(key=key, chain=dev_tsa_chain(key, now=datetime.now(UTC)))
    app = Flask("tsa-statuses")
    tsa_api.init_app(app, authority)
    query = (
        TimestampRequestBuilder()
        .hash_algorithm(HashAlgorithm.SHA256)
        .data(hashlib.sha256(b"a signature").digest())
        .build()
    )
    with serve_wsgi(app) as url:
        response = requests.post(
            f"{url}/api/v1/timestamp",
            data=query.as_bytes(),
            headers={"Content-Type": "application/timestamp-query"},
            timeout=10,
        )
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/timestamp-reply"

    class StatusOnly(core.Sequence):
        _fields: ClassVar = [("status", tsp.PKIStatusInfo)]

    assert StatusOnly.load(response.content)["status"].native == {
        "status": "rejection",
        "status_string": ["the signing key is busy"],
        "fail_info": {"system_failure"},
    }


def test_the_development_issuer_answers_with_the_errors_status() -> None:
    class Issuer(DevIssuer):
        def discovery(self, issuer_url: str) -> dict[str, Any]:
            raise _GoneError("the issuer is restarting")

    issuer = Issuer(
        base_url="http://127.0.0.1",
        key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        user_email="dev@keyless.test",
    )
    app = Flask("devissuer-statuses")
    devissuer_api.init_app(app, issuer)
    response = _get(app, "/oidc/.well-known/openid-configuration")
    assert response.status_code == 410
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "the issuer is restarting",
    }


def test_the_tuf_repository_answers_with_the_errors_status() -> None:
    class Repository:
        def read(self, name: str, *, now: datetime) -> bytes:
            raise _RepositoryBusyError("the repository is being re-signed")

    app = Flask("tuf-statuses")
    tuf_api.init_app(app, Repository())
    response = _get(app, "/tuf/timestamp.json")
    assert response.status_code == 503
    assert response.json() == {"code": 503, "message": "the repository is being re-signed"}
