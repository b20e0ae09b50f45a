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


def _post_with_token(server, path: str, **request) -> requests.Response:
    """POST to the CA with a valid email token, so that only the body can be at fault."""
    headers = {"Authorization": f"Bearer {server.email_token()}", **request.pop("headers", {})}
    return requests.post(f"{server.url}{path}", headers=headers, timeout=30, **request)


def _mint_refusal(response: requests.Response, description: str) -> None:
    """The development issuer's OAuth-style error body."""
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_request", "error_description": description}


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
    response = _post_with_token(
        server_ca, path, data=body, headers={"Content-Type": "application/json"}
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


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("A.B.C", "token header is not base64url"),
        ("e30.B.C", "token payload is not base64url"),
        ("e30.e30.C", "token signature is not base64url"),
        ("e31.e30.c2ln", "token header is not canonical base64url"),
    ],
    ids=["header-1-mod-4", "payload-1-mod-4", "signature-1-mod-4", "header-low-bits"],
)
def test_ca_refuses_a_token_part_that_is_not_base64url(server_ca, token: str, detail: str) -> None:
    """A part of length 1 mod 4 encodes no bytes (it was an HTTP 500), and unused low bits set
    are a second spelling of the same bytes: both are malformed tokens."""
    before = server_ca.ct_size()
    response = requests.post(
        f"{server_ca.url}/api/v2/signingCert",
        json={
            "credentials": {"oidcIdentityToken": token},
            "certificateSigningRequest": b64(csr_pem(p256())),
        },
        timeout=30,
    )
    body = _fulcio_refusal(server_ca, response, TOKEN_ERROR, before=before)
    assert body["details"][0]["reason"] == "token-malformed"
    assert body["details"][0]["metadata"]["detail"] == detail


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
    headers = {"Content-Type": "application/json"}
    response = requests.post(f"{server_ca.url}{path}", data=body, headers=headers, timeout=30)
    _mint_refusal(response, description)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"[]", "The request body must be a JSON object", id="list"),
        pytest.param(b'"x"', "The request body must be a JSON object", id="string"),
        pytest.param(
            b'{"credentials": []}',
            "invalid value for field 'credentials': expected an object",
            id="credentials-list",
        ),
        pytest.param(
            b'{"credentials": {"oidcIdentityToken": 7}}',
            "invalid value for field 'oidcIdentityToken': expected a string",
            id="token-int",
        ),
        pytest.param(
            b'{"certificateSigningRequest": {"a": 1}}',
            "invalid value for field 'certificateSigningRequest': expected a string",
            id="csr-object",
        ),
        pytest.param(
            b'{"certificateSigningRequest": "\\u00e9t\\u00e9"}',
            "invalid value for field 'certificateSigningRequest': expected base64",
            id="csr-not-base64",
        ),
        # protojson's bytes as Go reads them (core.encoding.protojson_b64decode): one alphabet,
        # padding by length, and canonical.
        pytest.param(
            b'{"certificateSigningRequest": "+_8="}',
            "invalid value for field 'certificateSigningRequest': expected base64",
            id="csr-mixed-alphabets",
        ),
        pytest.param(
            b'{"certificateSigningRequest": "QQ="}',
            "invalid value for field 'certificateSigningRequest': expected base64",
            id="csr-short-padding",
        ),
        pytest.param(
            b'{"certificateSigningRequest": "QR=="}',
            "invalid value for field 'certificateSigningRequest': expected base64",
            id="csr-non-canonical",
        ),
        pytest.param(
            b'{"publicKeyRequest": {"publicKey": {"content": false}}}',
            "invalid value for field 'content': expected a string",
            id="key-bool",
        ),
        pytest.param(
            b'{"publicKeyRequest": {"publicKey": {"content": "x"}, "proofOfPossession": [1]}}',
            "invalid value for field 'proofOfPossession': expected a string",
            id="proof-list",
        ),
    ],
)
def test_ca_v2_refuses_wrong_types(server_ca, body: bytes, message: str) -> None:
    before = server_ca.ct_size()
    response = _post_with_token(server_ca, "/api/v2/signingCert", data=body)
    refusal = _fulcio_refusal(server_ca, response, message, before=before)
    assert refusal["details"][0]["reason"] == "request-malformed"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            b'{"publicKey": []}', "invalid value for field 'publicKey': expected an object"
        ),
        pytest.param(
            b'{"publicKey": {"content": 1}}', "invalid value for field 'content': expected a string"
        ),
        pytest.param(
            b'{"signedEmailAddress": {}}',
            "invalid value for field 'signedEmailAddress': expected a string",
        ),
    ],
    ids=["key-list", "content-int", "proof-object"],
)
def test_ca_v1_refuses_wrong_types(server_ca, body: bytes, message: str) -> None:
    before = server_ca.ct_size()
    response = _post_with_token(server_ca, "/api/v1/signingCert", data=body)
    _fulcio_refusal(server_ca, response, message, before=before)


CHAIN_SHAPE = 'expected {"chain": [...]} with 1 to 10 certificates'


@pytest.mark.parametrize("path", ["/ct/v1/add-chain", "/ct/v1/add-pre-chain"])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"[]", CHAIN_SHAPE, id="list"),
        pytest.param(b'{"chain": "AAAA"}', CHAIN_SHAPE, id="chain-string"),
        pytest.param(b'{"chain": {"a": 1}}', CHAIN_SHAPE, id="chain-object"),
        pytest.param(b'{"chain": [1]}', "chain entries must be base64 strings", id="item-int"),
        pytest.param(b'{"chain": [null]}', "chain entries must be base64 strings", id="item-null"),
        pytest.param(
            b'{"chain": ["\\u00e9"]}',
            "chain entries must be base64 DER certificates",
            id="item-nonascii",
        ),
        pytest.param(
            b'{"chain": ["QR=="]}',
            "chain entries must be base64 DER certificates",
            id="item-non-canonical",
        ),
        pytest.param(
            b'{"chain": ["' + b"A" * 70_000 + b'"]}',
            "chain entries must be base64 strings",
            id="item-too-long",
        ),
        pytest.param(b'{"chain": ' + b'["AAAA",' * 11 + b"]", CHAIN_SHAPE, id="eleven"),
    ],
)
def test_ct_log_refuses_wrong_types(server_ca, path: str, body: bytes, message: str) -> None:
    if body.endswith(b",]"):
        body = b'{"chain": [' + b",".join([b'"AAAA"'] * 11) + b"]}"
    before = server_ca.ct_size()
    _ct_refusal(requests.post(f"{server_ca.url}{path}", data=body, timeout=30), message)
    assert server_ca.ct_size() == before


def test_ct_log_refuses_an_oversized_body(server_ca) -> None:
    body = b'{"chain": ["' + b"A" * (600 * 1024) + b'"]}'
    _ct_refusal(
        requests.post(f"{server_ca.url}/ct/v1/add-chain", data=body, timeout=30),
        "request body exceeds 524288 bytes",
    )


@pytest.mark.parametrize(
    ("body", "description"),
    [
        pytest.param(b"[]", "the body must be a JSON object", id="list"),
        pytest.param(b"\xff", "request body is not UTF-8", id="not-utf8"),
        pytest.param(b'{"email": 1}', "email is required (a non-empty string)", id="email-int"),
        pytest.param(
            b'{"email": "a@b", "claims": []}',
            "claims must be an object of at most 64",
            id="claims-list",
        ),
        pytest.param(
            b'{"email": "a@b", "expires_in": "600"}',
            "expires_in must be an integer",
            id="expiry-string",
        ),
        pytest.param(
            b'{"email": "a@b", "audience": ["x"]}',
            "audience must be a non-empty string",
            id="audience-list",
        ),
        pytest.param(
            b'{"email": "a@b", "claims": {"x": "' + b"y" * 70_000 + b'"}}',
            "the body exceeds 65536 bytes",
            id="too-large",
        ),
    ],
)
def test_dev_issuer_mint_refuses_wrong_types(server_ca, body: bytes, description: str) -> None:
    response = requests.post(f"{server_ca.url}/oidc/mint", data=body, timeout=30)
    _mint_refusal(response, description)


@pytest.mark.parametrize(
    ("body", "description"),
    [
        pytest.param(
            b'{"repository": 5}', "repository is required (a non-empty string)", id="repo-int"
        ),
        pytest.param(
            b'{"repository": "a/b", "workflow": "w.yml", "sha": []}',
            "sha is required (a non-empty string)",
            id="sha-list",
        ),
    ],
)
def test_dev_issuer_github_mint_refuses_wrong_types(server_ca, body: bytes, description: str):
    response = requests.post(f"{server_ca.url}/oidc/github/mint", data=body, timeout=30)
    _mint_refusal(response, description)


def test_csr_pem_with_broken_base64_is_refused(server_ca) -> None:
    """Found by the property test: a CSR PEM whose base64 has one character too many."""
    pem = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAAA\n-----END CERTIFICATE REQUEST-----\n"
    before = server_ca.ct_size()
    response = _post_with_token(
        server_ca, "/api/v2/signingCert", json={"certificateSigningRequest": b64(pem)}
    )
    refusal = _fulcio_refusal(
        server_ca, response, "The certificate signing request could not be parsed", before=before
    )
    assert refusal["details"][0]["reason"] == "csr-unparseable"
    assert refusal["details"][0]["metadata"]["detail"] == "malformed PEM base64"
