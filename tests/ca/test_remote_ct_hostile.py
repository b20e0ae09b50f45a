"""A remote CT log that answers with hostile JSON: the CA fails the request with Fulcio's CT
error (code 13) and issues nothing, instead of an uncaught exception."""

from __future__ import annotations

import pytest

from tests.ca.conftest import ca_server
from tests.ca.helpers import csr_pem, p256, post_csr
from tests.conftest import serve_wsgi

CT_FAILED = "Error entering certificate in CTL"


def _log_answering(body: bytes):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return app


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 5000 + b"]" * 5000, id="nested-10kb"),
        pytest.param(b'{"sct_version": 0, "sct_version": 1}', id="duplicate"),
        pytest.param(b'{"id": "\xff"}', id="not-utf8"),
    ],
)
def test_hostile_ct_response_issues_nothing(tmp_path, body: bytes) -> None:
    with (
        serve_wsgi(_log_answering(body)) as log_url,
        ca_server(tmp_path, ct_url=log_url) as remote,
    ):
        response = post_csr(remote.url, remote.email_token(), csr_pem(p256()))
    assert response.status_code == 500, response.text
    assert response.json()["code"] == 13
    assert response.json()["message"] == CT_FAILED
    assert "BEGIN CERTIFICATE" not in response.text
