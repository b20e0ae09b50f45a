"""A Kyverno keyless attestor's identity check over real Fulcio-profile certificates (forged by
the test instance, tests/cli/forge.py), with Kyverno's messages (cosign.go)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.client.policy.kyverno_identity import KyvernoIdentity, compile_regexp
from keyless.client.verify import VerificationError
from keyless.oidc import oids

WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture(scope="module")
def leaf(instance):
    def issue(identity: str = WORKFLOW, issuer: str = ISSUER, **extra: str):
        arcs = {getattr(oids, name.upper()): value for name, value in extra.items()}
        return instance.issue_leaf(
            ec.generate_private_key(ec.SECP256R1()),
            identity=identity,
            issuer=issuer,
            not_before=instance.start + timedelta(days=1),
            extra=arcs,
        )

    return issue


def _refusal(identity: KyvernoIdentity, cert) -> str:
    with pytest.raises(VerificationError) as info:
        identity.check(cert)
    return info.value.detail


@pytest.mark.parametrize(
    "identity",
    [
        KyvernoIdentity(subject=WORKFLOW, issuer=ISSUER),
        KyvernoIdentity(subject="https://github.com/acme/*", issuer="https://token.actions.*"),
        KyvernoIdentity(subject_regexp=r"https://github\.com/acme/app/.+@refs/tags/v.*"),
        KyvernoIdentity(subject="nobody", subject_regexp=r"https://github\.com/acme/.*"),
        KyvernoIdentity(issuer_regexp=r"https://token\.actions\.githubusercontent\.com"),
        KyvernoIdentity(
            subject="*", extensions=(("githubWorkflowTrigger", "push"), ("githubWorkflowSha", "*"))
        ),
        KyvernoIdentity(),  # names nothing: any certificate of the trusted CAs
    ],
)
def test_accepted(leaf, identity) -> None:
    identity.check(leaf(github_workflow_trigger="push"))


def test_subject_mismatch_names_what_was_expected_and_found(leaf) -> None:
    assert _refusal(KyvernoIdentity(subject="https://github.com/other/*"), leaf()) == (
        f"subject mismatch: expected https://github.com/other/*, received {WORKFLOW}"
    )
    assert _refusal(KyvernoIdentity(subject_regexp="alice@.*"), leaf()) == (
        f"subject mismatch: expected alice@.*, received {WORKFLOW}"
    )


def test_regexps_match_the_whole_value(leaf) -> None:
    """Kyverno's Go regexps would match `github\\.com/acme` anywhere; keyless anchors them."""
    assert _refusal(KyvernoIdentity(subject_regexp=r"github\.com/acme"), leaf()).startswith(
        "subject mismatch"
    )
    assert _refusal(KyvernoIdentity(issuer_regexp="token"), leaf()) == (
        f"issuer mismatch: expected token, received {ISSUER}"
    )


def test_regexp_classes_are_ascii_as_in_go() -> None:
    """Python's \\d also takes ARABIC-INDIC DIGIT ONE; Go's (and so Kyverno's) does not."""
    assert compile_regexp(r"build-\d").fullmatch("build-\u0661") is None
    assert compile_regexp(r"build-\d").fullmatch("build-1") is not None


def test_issuer_is_read_from_the_v1_extension_as_cosign_reads_it(leaf) -> None:
    """cosign's CertExtensions.GetIssuer reads 1.3.6.1.4.1.57264.1.1 only."""
    cert = leaf(issuer="https://v2.example", issuer_v1="https://v1.example")
    KyvernoIdentity(issuer="https://v1.example").check(cert)
    assert _refusal(KyvernoIdentity(issuer="https://v2.example"), cert) == (
        "issuer mismatch: expected https://v2.example, received https://v1.example"
    )


def test_issuer_and_issuer_regexp_must_both_hold(leaf) -> None:
    identity = KyvernoIdentity(issuer=ISSUER, issuer_regexp="https://other.+")
    assert _refusal(identity, leaf()) == (
        f"issuer mismatch: expected https://other.+, received {ISSUER}"
    )


def test_an_absent_extension_reads_as_empty(leaf) -> None:
    assert _refusal(KyvernoIdentity(extensions=(("githubWorkflowTrigger", "push"),)), leaf()) == (
        "extension mismatch: expected push for key githubWorkflowTrigger, received "
    )
    KyvernoIdentity(extensions=(("1.3.6.1.4.1.57264.1.2", "*"),)).check(leaf())


def test_describe() -> None:
    identity = KyvernoIdentity(
        subject="alice@*",
        subject_regexp="bob@.+",
        issuer_regexp="https://.+",
        extensions=(("githubWorkflowRef", "refs/tags/*"),),
    )
    assert identity.describe() == (
        "subject alice@* or /bob@.+/, issuer /https://.+/, githubWorkflowRef refs/tags/*"
    )
    assert KyvernoIdentity().describe() == "any identity of the trusted CAs"
