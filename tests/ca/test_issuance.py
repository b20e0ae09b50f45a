"""The issuance service and profile without HTTP: validity, OtherName SAN, detached modes."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyless.ca import CertificateAuthority, RequestError, SigningRequest, load_generated_signer
from keyless.ca.profile import build_leaf
from keyless.ca.wire import render_v1_certificate, render_v2_certificate
from keyless.oidc import Authenticator, JWKSCache, Principal, SANType, StaticKeys
from keyless.oidc.devissuer import DevIssuer
from keyless.oidc.oids import OTHERNAME_SAN_OID
from tests.ca.helpers import csr_pem, der_utf8, p256

NOW = datetime(2026, 11, 22, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def issuer() -> DevIssuer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return DevIssuer(base_url="http://127.0.0.1:9", key=key, user_email="dev@keyless.test")


@pytest.fixture(scope="module")
def authenticator(issuer: DevIssuer) -> Authenticator:
    return Authenticator(
        issuer.trusted_issuers(),
        keys=StaticKeys({issuer.issuer_url: issuer.jwks()}, fallback=JWKSCache()),
    )


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    return load_generated_signer(tmp_path_factory.mktemp("ca"), now=NOW)


def _token(issuer: DevIssuer, email: str = "alice@example.com") -> str:
    return issuer.mint(issuer.email_claims(email), issuer_url=issuer.issuer_url, now=NOW)


def test_detached_without_ct_log_has_empty_sct(issuer, authenticator, signer):
    authority = CertificateAuthority(
        authenticator=authenticator,
        signer=signer,
        ct=None,
        detached=True,
        validity=timedelta(minutes=10),
    )
    key = p256()
    issued = authority.issue(SigningRequest(_token(issuer), csr=csr_pem(key)), now=NOW)
    leaf = issued.leaf
    assert leaf.not_valid_before_utc == NOW.replace(microsecond=0)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(minutes=10)
    assert not issued.embedded and issued.sct is None
    body = render_v2_certificate(issued)["signedCertificateDetachedSct"]
    assert body["signedCertificateTimestamp"] == ""
    assert len(body["chain"]["certificates"]) == 3
    text, headers = render_v1_certificate(issued)
    assert headers == {} and text.count("BEGIN CERTIFICATE") == 3


def test_embedded_mode_needs_a_ct_log(authenticator, signer):
    with pytest.raises(ValueError, match="embedded SCTs need a CT log"):
        CertificateAuthority(authenticator=authenticator, signer=signer, ct=None)


def test_token_error_keeps_fulcio_message_and_reason(issuer, authenticator, signer):
    authority = CertificateAuthority(
        authenticator=authenticator, signer=signer, ct=None, detached=True
    )
    expired = issuer.mint(
        issuer.email_claims("a@example.com"), issuer_url=issuer.issuer_url, now=NOW,
        expires_in=-600,
    )  # fmt: skip
    with pytest.raises(RequestError) as info:
        authority.issue(SigningRequest(expired, csr=csr_pem(p256())), now=NOW)
    assert info.value.message == "There was an error processing the identity token"
    assert info.value.reason == "token-expired"
    assert info.value.detail


def test_othername_san_for_username_principal(signer):
    principal = Principal(
        SANType.OTHERNAME,
        "alice!example.com",
        "alice",
        {1: "https://accounts.example.com", 8: "https://accounts.example.com", 24: "alice"},
    )
    key = p256()
    builder = build_leaf(
        principal, public_key=key.public_key(), issuer=signer.chain[0], serial=42, now=NOW
    )
    leaf = signer.sign(builder)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    (name,) = list(san.value)
    assert name == x509.OtherName(OTHERNAME_SAN_OID, der_utf8("alice!example.com"))
    assert leaf.serial_number == 42


def test_non_ascii_uri_san_is_refused(signer):
    principal = Principal(SANType.URI, "https://exämple.com/x", "s", {1: "i", 8: "i"})
    with pytest.raises(RequestError) as info:
        build_leaf(
            principal, public_key=p256().public_key(), issuer=signer.chain[0], serial=1, now=NOW
        )
    assert info.value.reason == "san-unencodable"


@pytest.mark.parametrize(
    ("case", "options"),
    [
        ("naive-now", {"now": NOW.replace(tzinfo=None)}),
        ("zero-serial", {"serial": 0}),
        ("serial-over-20-octets", {"serial": 2**159}),
        ("validity-too-long", {"validity": timedelta(days=2)}),
    ],
)
def test_build_leaf_misuse_is_a_bug(signer, case, options):
    principal = Principal(SANType.EMAIL, "a@example.com", "a@example.com", {1: "i", 8: "i"})
    arguments = {"public_key": p256().public_key(), "issuer": signer.chain[0], "serial": 1}
    with pytest.raises(ValueError):
        build_leaf(principal, **{"now": NOW, **arguments, **options})


def test_detached_sct_json_shape(tmp_path, issuer, authenticator, signer):
    from keyless.tlog.ct_log import open_ct_log

    ct_log = open_ct_log(database=tmp_path / "ct.db", private_key=p256(), roots=[signer.chain[-1]])
    authority = CertificateAuthority(
        authenticator=authenticator, signer=signer, ct=ct_log, detached=True
    )
    key = ec.generate_private_key(ec.SECP256R1())
    proof = key.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    from tests.ca.helpers import public_pem

    request = SigningRequest(
        _token(issuer), public_key=public_pem(key).encode(), proof_of_possession=proof
    )
    issued = authority.issue(request, now=NOW)
    encoded = render_v2_certificate(issued)["signedCertificateDetachedSct"][
        "signedCertificateTimestamp"
    ]
    sct = json.loads(base64.b64decode(encoded))
    assert set(sct) == {"sct_version", "id", "timestamp", "extensions", "signature"}
    assert ct_log.get_sth()["tree_size"] == 1


def test_ca_and_ct_log_modules_do_not_import_flask():
    code = (
        "import sys, ca, ca.config, ca.wire, ca.issuance, tlog.ct_log; "
        "sys.exit(1 if 'flask' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


class _CTLogAnswering:
    """A CT log whose `add_pre_chain` raises `failure`, or hands on to a real log."""

    def __init__(self, log, failure: Exception | None) -> None:
        self._log, self._failure = log, failure

    def add_pre_chain(self, chain):
        if self._failure is not None:
            raise self._failure
        return self._log.add_pre_chain(chain)

    def add_chain(self, chain):
        return self._log.add_chain(chain)


@pytest.fixture
def ct_log(signer, tmp_path):
    from keyless.tlog.ct_log import open_ct_log

    return open_ct_log(
        database=tmp_path / "ct.db", private_key=p256(), roots=[signer.chain[-1]], new_log=True
    )


def test_embedded_issuance_keeps_the_sct_it_embedded(issuer, authenticator, signer, ct_log):
    authority = CertificateAuthority(authenticator=authenticator, signer=signer, ct=ct_log)
    issued = authority.issue(SigningRequest(_token(issuer), csr=csr_pem(p256())), now=NOW)
    assert issued.embedded and issued.sct is not None
    (embedded,) = issued.leaf.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps
    ).value
    assert issued.sct.log_id == embedded.log_id
    assert issued.sct.timestamp_ms == int(embedded.timestamp.replace(tzinfo=UTC).timestamp() * 1000)


def test_a_ct_refusal_issues_nothing_and_says_so(issuer, authenticator, signer, ct_log):
    from keyless.ca import CTLogError, CTSubmissionError

    refusing = _CTLogAnswering(ct_log, CTSubmissionError("add-pre-chain: HTTP 503"))
    authority = CertificateAuthority(authenticator=authenticator, signer=signer, ct=refusing)
    with pytest.raises(CTLogError) as info:
        authority.issue(SigningRequest(_token(issuer), csr=csr_pem(p256())), now=NOW)
    assert info.value.message == "Error entering certificate in CTL"


def test_a_bug_behind_the_ct_seam_is_not_reported_as_a_ct_error(
    issuer, authenticator, signer, ct_log
):
    """A programming error surfaces as itself (a 500 with its traceback), not as the CT log's
    refusal, which would hide it."""
    broken = _CTLogAnswering(ct_log, TypeError("unexpected keyword argument"))
    authority = CertificateAuthority(authenticator=authenticator, signer=signer, ct=broken)
    with pytest.raises(TypeError, match="unexpected keyword"):
        authority.issue(SigningRequest(_token(issuer), csr=csr_pem(p256())), now=NOW)


def test_in_process_log_refusals_become_ct_errors(signer, ct_log):
    from keyless.ca import CTSubmissionError, InProcessCTSubmitter
    from keyless.tlog.errors import LogError

    submitter = InProcessCTSubmitter(ct_log, refusals=(LogError,))
    with pytest.raises(CTSubmissionError, match=r"add-chain: .*not DER X\.509"):
        submitter.add_chain([b"not a certificate"])
