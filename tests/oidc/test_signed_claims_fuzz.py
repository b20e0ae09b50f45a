"""Property test: tokens the trusted issuer really signed, carrying hostile claim values, reach
principal derivation and the certificate profile through the CA, and never make a 5xx.

The signature-level fuzz (tests/test_hostile_input.py) stops at the signature check; these
claims pass it, so every claim parser behind it (email, GitHub's ci-provider templates, the
extensions and the SAN) sees them.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=int(os.environ.get("KEYLESS_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_text = st.text(max_size=30) | st.sampled_from(
    ["", "josé@example.com", "a@b", "x" * 5000, "\x00", "a\r\nb", "../..", "{{ .x }}", "@"]
)
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def signing(server):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    body = json.dumps({"certificateSigningRequest": base64.b64encode(csr).decode()}).encode()
    return server.app.test_client(), server.issuer, body


def _issue(client, token: str, body: bytes) -> None:
    response = client.post(
        "/api/v2/signingCert",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code < 500, (response.status_code, response.data[:300])
    if response.status_code != 200:
        assert response.json["code"] in (3, 16), response.json
        assert response.json["message"], response.json


def test_email_claims_never_fail(signing) -> None:
    client, issuer, body = signing
    base = issuer.email_claims("alice@example.com")

    @FUZZ
    @given(overrides=st.dictionaries(st.sampled_from(["email", "email_verified", "sub"]), _values))
    def run(overrides: dict) -> None:
        token = issuer.mint(
            {**base, **overrides}, issuer_url=issuer.issuer_url, now=datetime.now(UTC)
        )
        _issue(client, token, body)

    run()


def test_github_claims_never_fail(signing) -> None:
    client, issuer, body = signing
    base = issuer.github_claims(
        repository="acme/app", workflow="release.yml", ref="refs/heads/main"
    )

    @FUZZ
    @given(overrides=st.dictionaries(st.sampled_from(sorted(base)), _values, max_size=4))
    def run(overrides: dict) -> None:
        token = issuer.mint(
            {**base, **overrides}, issuer_url=issuer.github_issuer_url, now=datetime.now(UTC)
        )
        _issue(client, token, body)

    run()


def test_the_unmodified_claims_are_issued(signing) -> None:
    """The control: without overrides both issuers' tokens get a certificate."""
    client, issuer, body = signing
    now = datetime.now(UTC)
    for token in (
        issuer.mint(
            issuer.email_claims("alice@example.com"), issuer_url=issuer.issuer_url, now=now
        ),
        issuer.mint(
            issuer.github_claims(
                repository="acme/app", workflow="release.yml", ref="refs/heads/main"
            ),
            issuer_url=issuer.github_issuer_url,
            now=now,
        ),
    ):
        response = client.post(
            "/api/v2/signingCert", data=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.data[:300]
