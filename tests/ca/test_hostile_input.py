"""Hostile request bodies at every parser of the CA app: always a 4xx in the API's own error body.

The app is the CA test app (development issuer, CA and CT log on one loopback origin). Each case
checks the status, the exact error body shape and message, and that nothing reached the CT log.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests

from tests.ca.helpers import TOKEN_ERROR, b64, csr_pem, p256

NESTED = b"[" * 5000 + b"]" * 5000  # ~10 KB, deeper than any recursion limit allows
MALFORMED = "The request body is not valid JSON"


def _fulcio_refusal(server, response: requests.Response, message: str, *, before: int) -> dict:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3
    assert body["message"] == message
    assert isinstance(body["details"], list)
    assert server.ct_size() == before
    return body


@pytest.mark.parametrize("path", ["/api/v2/signingCert", "/api/v1/signingCert"])
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param(NESTED, "request body is nested too deeply", id="nested-10kb"),
        pytest.param(
            b'{"a":' * 40 + b"1" + b"}" * 40,
            "request body is nested deeper than 32 levels",
            id="nested-40",
        ),
        pytest.param(b'{"a": 1, "a": 2}', "request body has a duplicate field 'a'", id="duplicate"),
        pytest.param(b'{"a": NaN}', "request body contains NaN", id="nan"),
        pytest.param(b'{"a": "\xff"}', "request body is not UTF-8", id="latin1"),
    ],
)
def test_ca_refuses_hostile_json(server_ca, path: str, body: bytes, detail: str) -> None:
    before = server_ca.ct_size()
    response = requests.post(
        f"{server_ca.url}{path}",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {server_ca.email_token()}",
        },
        timeout=30,
    )
    refusal = _fulcio_refusal(server_ca, response, MALFORMED, before=before)
    assert refusal["details"][0]["reason"] == "request-malformed"
    assert refusal["details"][0]["metadata"]["detail"] == detail


def _token(header: bytes, payload: bytes) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.{part(b'sig')}"


@pytest.mark.parametrize(
    ("header", "payload", "detail"),
    [
        pytest.param(
            b'{"alg":"RS256"}', NESTED, "token payload is nested too deeply", id="nested-claims"
        ),
        pytest.param(
            NESTED, b'{"iss":"x"}', "token header is nested too deeply", id="nested-header"
        ),
    ],
)
def test_ca_refuses_nested_token_before_any_signature_check(
    server_ca, header: bytes, payload: bytes, detail: str
) -> None:
    before = server_ca.ct_size()
    key = p256()
    response = requests.post(
        f"{server_ca.url}/api/v2/signingCert",
        json={
            "credentials": {"oidcIdentityToken": _token(header, payload)},
            "certificateSigningRequest": b64(csr_pem(key)),
        },
        timeout=30,
    )
    body = _fulcio_refusal(server_ca, response, TOKEN_ERROR, before=before)
    assert body["details"][0]["reason"] == "token-malformed"
    assert body["details"][0]["metadata"]["detail"] == detail
    assert server_ca.ct_size() == before


def _ct_refusal(response: requests.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"code": 400, "message": message}


@pytest.mark.parametrize("path", ["/ct/v1/add-chain", "/ct/v1/add-pre-chain"])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(NESTED, "request body is nested too deeply", id="nested-10kb"),
        pytest.param(
            b'{"chain": [], "chain": []}',
            "request body has a duplicate field 'chain'",
            id="duplicate",
        ),
        pytest.param(b"\xfe\xff{}", "request body is not UTF-8", id="not-utf8"),
    ],
)
def test_ct_log_refuses_hostile_json(server_ca, path: str, body: bytes, message: str) -> None:
    before = server_ca.ct_size()
    response = requests.post(f"{server_ca.url}{path}", data=body, timeout=30)
    _ct_refusal(response, message)
    assert server_ca.ct_size() == before


@pytest.mark.parametrize("path", ["/oidc/mint", "/oidc/github/mint"])
@pytest.mark.parametrize(
    ("body", "description"),
    [
        pytest.param(NESTED, "request body is nested too deeply", id="nested-10kb"),
        pytest.param(
            json.dumps(
                {"email": "a@example.com", "claims": {"x": json.loads("[" * 40 + "]" * 40)}}
            ).encode(),
            "request body is nested deeper than 32 levels",
            id="nested-claims",
        ),
        pytest.param(
            b'{"email": "a@b", "email": "c@d"}',
            "request body has a duplicate field 'email'",
            id="duplicate",
        ),
    ],
)
def test_dev_issuer_mint_refuses_hostile_json(server_ca, path: str, body: bytes, description):
    response = requests.post(
        f"{server_ca.url}{path}",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_request", "error_description": description}
