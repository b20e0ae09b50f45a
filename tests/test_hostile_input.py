"""Hostile input at the Rekor v1 log's entry parsers: always a 400 in Rekor's error body.

Certificates with a SubjectAltName that no verifier can read are refused as Rekor refuses them
(Go's x509 parser rejects a malformed SAN and a non-IA5 name), for every entry kind that carries
a certificate. The CA, CT and development-issuer parsers are covered in
tests/ca/test_hostile_input.py.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import serve_wsgi
from tests.tlog.conftest import RekorServer, Signer, build_app, dsse_request

ARTIFACT = b"hostile input"


@pytest.fixture
def rekor(tmp_path: Path) -> Iterator[RekorServer]:
    key = ec.generate_private_key(ec.SECP256R1())
    app, service = build_app(tmp_path / "rekor.db", key)
    with serve_wsgi(app) as url:
        yield RekorServer(url, service, key)


def _signer_with_san(san_der: bytes) -> Signer:
    """A self-signed code-signing leaf whose SubjectAltName extension is exactly `san_der`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, san_der),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Signer(key, cert)


def _general_name(tag: int, value: bytes) -> bytes:
    return bytes([tag, len(value)]) + value


def _sequence(*names: bytes) -> bytes:
    body = b"".join(names)
    return bytes([0x30, len(body)]) + body


SAN_CASES = [
    pytest.param(
        b"\x30\x03\x81\x01",
        "certificate has a malformed SubjectAltName extension",
        id="truncated",
    ),
    pytest.param(
        _sequence(_general_name(0x81, "josé@example.com".encode("latin-1"))),
        "certificate has a malformed SubjectAltName extension",
        id="rfc822-latin1",
    ),
    pytest.param(
        _sequence(_general_name(0x81, "josé@example.com".encode())),
        "certificate SubjectAltName has a non-ASCII name",
        id="rfc822-utf8",
    ),
    pytest.param(
        _sequence(_general_name(0x86, "https://exämple.com/x".encode())),
        "certificate SubjectAltName has a non-ASCII name",
        id="uri-utf8",
    ),
    pytest.param(
        _sequence(_general_name(0x82, "exämple.com".encode())),
        "certificate SubjectAltName has a non-ASCII name",
        id="dns-utf8",
    ),
]


def _dsse(signer: Signer) -> dict:
    return dsse_request(signer.envelope(b'{"_type": "x"}'), signer.cert_pem)


def _hashedrekord(signer: Signer) -> dict:
    return signer.hashedrekord(ARTIFACT)


def _intoto(signer: Signer) -> dict:
    """Rekor's intoto 0.0.2 request: payload and signatures base64-encoded twice."""
    envelope = signer.envelope(b'{"_type": "x"}')

    def double(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    signature = {
        "sig": double(envelope["signatures"][0]["sig"]),
        "publicKey": base64.b64encode(signer.cert_pem).decode(),
    }
    return {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": envelope["payloadType"],
                    "payload": double(envelope["payload"]),
                    "signatures": [signature],
                },
                "hash": {"algorithm": "sha256", "value": "ab" * 32},
            }
        },
    }


@pytest.mark.parametrize(
    "kind", [_hashedrekord, _dsse, _intoto], ids=["hashedrekord", "dsse", "intoto"]
)
@pytest.mark.parametrize(("san_der", "message"), SAN_CASES)
def test_unreadable_subject_alt_name_is_refused(rekor, kind, san_der: bytes, message: str) -> None:
    response = rekor.post("/api/v1/log/entries", kind(_signer_with_san(san_der)))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400
    assert body["message"].startswith(f"error processing entry: {message}"), body
    assert rekor.size() == 0


def test_ascii_subject_alt_name_is_logged_and_searchable(rekor) -> None:
    """The control: the same hand-built extension with an ASCII email is logged and indexed."""
    signer = _signer_with_san(_sequence(_general_name(0x81, b"jose@example.com")))
    response = rekor.post("/api/v1/log/entries", _hashedrekord(signer))
    assert response.status_code == 201, response.text
    found = rekor.post("/api/v1/index/retrieve", {"email": "JOSE@example.com"})
    assert found.status_code == 200, found.text
    assert len(found.json()) == 1


NESTED = b"[" * 5000 + b"]" * 5000
ENTRIES = "/api/v1/log/entries"
RETRIEVE = "/api/v1/log/entries/retrieve"
SEARCH = "/api/v1/index/retrieve"


@pytest.mark.parametrize("path", [ENTRIES, RETRIEVE, SEARCH])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(NESTED, "request body is nested too deeply", id="nested-10kb"),
        pytest.param(
            b'{"a":' * 40 + b"1" + b"}" * 40,
            "request body is nested deeper than 32 levels",
            id="nested-40",
        ),
        pytest.param(
            b'{"kind": 1, "kind": 2}', "request body has a duplicate field 'kind'", id="dup"
        ),
        pytest.param(b'{"kind": "\xe9"}', "request body is not UTF-8", id="latin1"),
        pytest.param(b'{"x": Infinity}', "request body contains Infinity", id="infinity"),
    ],
)
def test_log_refuses_hostile_json(rekor, path: str, body: bytes, message: str) -> None:
    response = requests.post(rekor.url + path, data=body, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json() == {"code": 400, "message": message}
    assert rekor.size() == 0


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        pytest.param(
            ENTRIES, [], "error processing entry: entry must be a JSON object", id="entry-list"
        ),
        pytest.param(
            ENTRIES,
            {"kind": 7, "apiVersion": "0.0.1", "spec": {}},
            "error processing entry: unsupported entry kind '7' version '0.0.1'",
            id="kind-int",
        ),
        pytest.param(
            ENTRIES,
            {"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": []},
            "error processing entry: spec must be a JSON object",
            id="spec-list",
        ),
        pytest.param(RETRIEVE, {"entryUUIDs": "x"}, "entryUUIDs must be a list", id="uuids-string"),
        pytest.param(RETRIEVE, {"entryUUIDs": [1]}, "entryUUIDs must be strings", id="uuid-int"),
        pytest.param(
            RETRIEVE,
            {"logIndexes": [-1]},
            "logIndexes item must be an integer in [0, 9223372036854775807]",
            id="index-negative",
        ),
        pytest.param(
            RETRIEVE,
            {"logIndexes": [True]},
            "logIndexes item must be an integer in [0, 9223372036854775807]",
            id="index-bool",
        ),
        pytest.param(
            SEARCH,
            {"email": ["a"]},
            "email must be a string of at most 512 characters",
            id="email-list",
        ),
        pytest.param(
            SEARCH, {"publicKey": "x"}, "publicKey must be {format, content}", id="key-string"
        ),
        pytest.param(
            SEARCH,
            {"publicKey": {"format": "x509", "content": "\u00e9"}},
            "error processing entry: publicKey content is not valid base64",
            id="key-nonascii",
        ),
        pytest.param(SEARCH, {"operator": 1}, "operator must be 'and' or 'or'", id="operator-int"),
    ],
)
def test_log_refuses_wrong_types(rekor, path: str, body: object, message: str) -> None:
    response = rekor.post(path, body)
    assert response.status_code == 400, response.text
    assert response.json() == {"code": 400, "message": message}
    assert rekor.size() == 0


# Property tests: every request parser, in the real apps (in-process WSGI), on arbitrary and
# mutated input. Exceptions propagate out of Flask here, so "never an uncaught exception" and
# "never a 5xx" are both checked. The budget is bounded (about a second per test); set
# KEYLESS_FUZZ_EXAMPLES to run longer.

FUZZ = settings(
    max_examples=int(os.environ.get("KEYLESS_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)


def _json_values(keys: list[str]) -> st.SearchStrategy:
    """JSON values whose object keys are often the API's own field names."""
    names = st.sampled_from(keys) | st.text(max_size=12)
    return st.recursive(
        _scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=5),
        max_leaves=25,
    )


def _mutations(valid: bytes) -> st.SearchStrategy:
    """`valid` with a byte changed, a slice cut out, or bytes inserted."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, max(len(data) - 1, 0)))
            action = draw(st.sampled_from(["flip", "cut", "insert"]))
            if action == "flip" and data:
                data[position] = draw(st.integers(0, 255))
            elif action == "cut":
                del data[position : position + draw(st.integers(1, 16))]
            else:
                data[position:position] = draw(st.binary(min_size=1, max_size=8))
        return bytes(data)

    return mutate()


def _bodies(keys: list[str], valid: list[bytes]) -> st.SearchStrategy:
    encoded = _json_values(keys).map(lambda value: json.dumps(value).encode())
    return st.one_of(encoded, st.binary(max_size=200), *[_mutations(body) for body in valid])


def _post(client, path: str, body: bytes, **headers: str):
    response = client.post(path, data=body, headers=headers)
    assert response.status_code < 500, (path, body[:200], response.data[:300])
    assert response.is_json or response.mimetype == "application/pem-certificate-chain", (
        response.mimetype
    )
    return response


@pytest.fixture(scope="module")
def ca_client(tmp_path_factory: pytest.TempPathFactory):
    from tests.ca.conftest import build_app as build_ca_app

    app, parts = build_ca_app("http://127.0.0.1", tmp_path_factory.mktemp("fuzz-ca"))
    app.config["PROPAGATE_EXCEPTIONS"] = True
    return app.test_client(), parts


@pytest.fixture(scope="module")
def rekor_client(tmp_path_factory: pytest.TempPathFactory):
    app, _ = build_app(
        tmp_path_factory.mktemp("fuzz-rekor") / "rekor.db", ec.generate_private_key(ec.SECP256R1())
    )
    app.config["PROPAGATE_EXCEPTIONS"] = True
    return app.test_client()


def _email_token(parts) -> str:
    issuer = parts["issuer"]
    claims = issuer.email_claims("alice@example.com", subject=None)
    return issuer.mint(
        claims, issuer_url=issuer.issuer_url, now=datetime.datetime.now(datetime.UTC)
    )


CA_FIELDS = [
    "credentials", "oidcIdentityToken", "oidc_identity_token", "publicKeyRequest",
    "public_key_request", "publicKey", "public_key", "content", "algorithm",
    "proofOfPossession", "certificateSigningRequest", "signedEmailAddress",
]  # fmt: skip


def test_ca_signing_cert_never_fails_on_any_body(ca_client) -> None:
    client, parts = ca_client
    token = _email_token(parts)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    valid_v2 = json.dumps({"certificateSigningRequest": base64.b64encode(csr).decode()}).encode()
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    proof = key.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    valid_v1 = json.dumps(
        {
            "publicKey": {"content": base64.b64encode(spki).decode()},
            "signedEmailAddress": base64.b64encode(proof).decode(),
        }
    ).encode()

    @FUZZ
    @given(
        path=st.sampled_from(["/api/v2/signingCert", "/api/v1/signingCert"]),
        body=_bodies(CA_FIELDS, [valid_v2, valid_v1]),
        scheme=st.sampled_from(["Bearer", "bearer", "Basic", ""]),
    )
    def run(path: str, body: bytes, scheme: str) -> None:
        _post(client, path, body, Authorization=f"{scheme} {token}")

    run()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_token_parsing_never_fails_on_any_header_or_claims(ca_client) -> None:
    """Arbitrary JWS headers and claims (issuer, alg and kid drawn from real and bogus values)
    reach the token parser and checks through the CA; none is a 5xx."""
    client, parts = ca_client
    issuer = parts["issuer"]
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    body = json.dumps({"certificateSigningRequest": base64.b64encode(csr).decode()}).encode()
    values = _json_values(["alg", "kid", "crit", "typ", "iss", "aud", "exp", "nbf", "iat", "email"])
    header = st.fixed_dictionaries(
        {},
        optional={
            "alg": st.sampled_from(["RS256", "ES256", "none", "HS256", "EdDSA"]) | values,
            "kid": st.just(issuer.kid) | values,
            "crit": values,
        },
    )
    claims = st.fixed_dictionaries(
        {},
        optional={
            "iss": st.sampled_from([issuer.issuer_url, issuer.github_issuer_url]) | values,
            "aud": st.just("sigstore") | values,
            "exp": st.integers(0, 2**40) | values,
            "email": values,
            "email_verified": values,
        },
    )
    raw_json = st.binary(max_size=60)

    @FUZZ
    @given(
        header=header.map(lambda h: json.dumps(h).encode()) | raw_json,
        payload=claims.map(lambda c: json.dumps(c).encode()) | raw_json,
        signature=st.binary(max_size=300),
    )
    def run(header: bytes, payload: bytes, signature: bytes) -> None:
        token = f"{_b64url(header)}.{_b64url(payload)}.{_b64url(signature)}"
        _post(client, "/api/v2/signingCert", body, Authorization=f"Bearer {token}")

    run()


def test_ct_add_chain_never_fails_on_any_body(ca_client) -> None:
    client, parts = ca_client
    chain = [c.public_bytes(serialization.Encoding.DER) for c in parts["signer"].chain]
    valid = json.dumps({"chain": [base64.b64encode(c).decode() for c in chain]}).encode()

    @FUZZ
    @given(
        path=st.sampled_from(["/ct/v1/add-chain", "/ct/v1/add-pre-chain"]),
        body=_bodies(["chain"], [valid]),
    )
    def run(path: str, body: bytes) -> None:
        _post(client, path, body)

    run()


def test_dev_issuer_mint_never_fails_on_any_body(ca_client) -> None:
    client, _ = ca_client
    fields = ["email", "subject", "audience", "expires_in", "claims", "repository", "workflow",
              "ref", "sha", "event_name", "environment", "run_id", "run_attempt"]  # fmt: skip
    valid = [
        json.dumps({"email": "a@example.com", "claims": {"x": 1}}).encode(),
        json.dumps({"repository": "a/b", "workflow": "w.yml", "expires_in": 60}).encode(),
    ]

    @FUZZ
    @given(path=st.sampled_from(["/oidc/mint", "/oidc/github/mint"]), body=_bodies(fields, valid))
    def run(path: str, body: bytes) -> None:
        _post(client, path, body)

    run()


REKOR_FIELDS = [
    "kind", "apiVersion", "spec", "data", "hash", "algorithm", "value", "signature", "content",
    "publicKey", "proposedContent", "envelope", "verifiers", "payload", "payloadType",
    "signatures", "sig", "keyid", "entryUUIDs", "logIndexes", "entries", "email", "format",
    "operator",
]  # fmt: skip


def test_log_never_fails_on_any_body(rekor_client) -> None:
    signer = _signer_with_san(_sequence(_general_name(0x81, b"fuzz@example.com")))
    valid = [
        json.dumps(_hashedrekord(signer)).encode(),
        json.dumps(_dsse(signer)).encode(),
        json.dumps(_intoto(signer)).encode(),
        json.dumps({"entryUUIDs": ["ab" * 32], "logIndexes": [0]}).encode(),
        json.dumps({"email": "fuzz@example.com", "operator": "and"}).encode(),
    ]
    kinds = st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["hashedrekord", "dsse", "intoto"]),
            "apiVersion": st.sampled_from(["0.0.1", "0.0.2"]),
            "spec": _json_values(REKOR_FIELDS),
        }
    ).map(lambda value: json.dumps(value).encode())

    @FUZZ
    @given(
        path=st.sampled_from([ENTRIES, RETRIEVE, SEARCH]),
        body=_bodies(REKOR_FIELDS, valid) | kinds,
    )
    def run(path: str, body: bytes) -> None:
        response = rekor_client.post(path, data=body)
        assert response.status_code < 500, (path, body[:200], response.data[:300])

    run()
