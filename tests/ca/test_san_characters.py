"""Identities with control characters or spaces never reach a certificate's SAN.

An email or URI SAN holding a NUL, CR/LF or a space is what no verifier could mean (the
null-prefix and display-spoofing attacks on certificate names begin this way); the signed claims
that would produce one are refused with 400 and nothing reaches the CT log. The fuzz in
tests/oidc/test_signed_claims_fuzz.py found these.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.ca.helpers import csr_pem, p256, post_csr


@pytest.mark.parametrize(
    "email",
    [
        pytest.param("a\x00b@example.com", id="nul"),
        pytest.param("alice@example.com\x00@evil.example", id="null-prefix"),
        pytest.param("a\x7fb@example.com", id="del"),
        pytest.param("a\x1bb@example.com", id="escape"),
    ],
)
def test_email_with_control_characters_is_refused(server_ca, email: str) -> None:
    before = server_ca.ct_size()
    response = post_csr(server_ca.url, server_ca.email_token(email), csr_pem(p256()))
    assert response.status_code == 400, response.status_code
    body = response.json()
    assert body["code"] == 3
    assert body["details"][0]["reason"] == "claim-invalid"
    assert body["details"][0]["metadata"]["detail"].startswith("email claim ")
    assert server_ca.ct_size() == before


@pytest.mark.parametrize(
    "job_workflow_ref",
    [
        pytest.param("acme/app/.github/workflows/a\x00.yml@refs/heads/main", id="nul"),
        pytest.param("acme/app/.github/workflows/a b.yml@refs/heads/main", id="space"),
        pytest.param("acme/app/.github/workflows/a.yml@refs/heads/main\r\nX: y", id="crlf"),
    ],
)
def test_uri_san_with_control_characters_or_spaces_is_refused(
    server_ca, job_workflow_ref: str
) -> None:
    issuer = server_ca.issuer
    claims = issuer.github_claims(repository="acme/app", workflow="a.yml", ref="refs/heads/main")
    claims["job_workflow_ref"] = job_workflow_ref
    token = issuer.mint(claims, issuer_url=issuer.github_issuer_url, now=datetime.now(UTC))
    before = server_ca.ct_size()
    response = post_csr(server_ca.url, token, csr_pem(p256()))
    assert response.status_code == 400, response.status_code
    body = response.json()
    assert body["code"] == 3
    assert body["message"] == (
        f"the identity {'https://github.com/' + job_workflow_ref!r} cannot be encoded as a uri"
        " SAN: it has a space or control character"
    )
    assert server_ca.ct_size() == before


def test_printable_identities_are_still_issued(server_ca) -> None:
    response = post_csr(server_ca.url, server_ca.email_token("a.b+c@example.com"), csr_pem(p256()))
    assert response.status_code == 200, response.text


def test_claims_too_large_for_a_certificate_are_refused_before_the_ct_log(server_ca) -> None:
    """A signed token within the 32 KiB token limit can still carry claims that make a
    certificate larger than a CT log accepts: a 400 naming the limit, not a CT failure (500)."""
    issuer = server_ca.issuer
    claims = issuer.github_claims(repository="acme/app", workflow="a.yml", ref="refs/heads/main")
    claims["event_name"] = "x" * 18_000  # GithubWorkflowTrigger (.2) and BuildTrigger (.20)
    token = issuer.mint(claims, issuer_url=issuer.github_issuer_url, now=datetime.now(UTC))
    before = server_ca.ct_size()
    response = post_csr(server_ca.url, token, csr_pem(p256()))
    assert response.status_code == 400, response.status_code
    body = response.json()
    assert body["code"] == 3
    message = body["message"]
    assert message.startswith("the identity is too large for a certificate: its SAN and")
    assert message.endswith(
        "bytes, over the 16384-byte limit (the largest is extension 1.3.6.1.4.1.57264.1.20,"
        " 18004 bytes)"
    )
    assert server_ca.ct_size() == before
