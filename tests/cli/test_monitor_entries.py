"""How the monitor reads an entry's signers: each kind keyless logs, and anything else a log may
hold, named by reason instead of raising or being skipped; and whether a certificate naming a
watched identity was issued by a CA of the trusted root."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.client.entry_body import KINDS
from keyless.client.transparency.monitor import (
    MATCH,
    PUBLIC_KEY,
    UNEXPECTED_ISSUER,
    UNKNOWN_KIND,
    UNREADABLE,
    UNTRUSTED_CERTIFICATE,
    IssuanceCheck,
    WatchList,
    judge_entry,
)
from keyless.client.trust import TrustedRoot, production_trusted_root
from keyless.oidc import oids
from tests.cli.forge import Instance
from tests.cli.test_entry_body import DETAILS, logged_entries
from tests.tlog.conftest import make_signer

WATCH = WatchList.build([], [".*"], [])
START = datetime.now(UTC) - timedelta(days=30)
CA = Instance(START)
ISSUANCE = IssuanceCheck(TrustedRoot.from_json(json.dumps(CA.trusted_root())))
ISSUER = "https://issuer.keyless.test"
EMPTY_ROOT = TrustedRoot(tlogs={}, ctlogs={}, certificate_authorities=(), timestamp_authorities=())
CONFORMANCE = Path(__file__).parents[1] / "data/sigstore-conformance/test/assets/bundle-verify"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _v2(verifier: dict) -> bytes:
    signature = {"content": _b64(b"signature"), "verifier": {**verifier, "keyDetails": DETAILS}}
    spec = {"data": {"algorithm": "SHA2_256", "digest": _b64(bytes(32))}, "signature": signature}
    return json.dumps(
        {"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": spec}}
    ).encode()


def _v1(signer_pem: bytes) -> bytes:
    spec = {
        "data": {"hash": {"algorithm": "sha256", "value": "00" * 32}},
        "signature": {"content": _b64(b"signature"), "publicKey": {"content": _b64(signer_pem)}},
    }
    return json.dumps({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": spec}).encode()


def test_each_kind_keyless_reads() -> None:
    """Each kind, as keyless's logs canonicalise it, is judged by its certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = CA.issue_leaf(
        key, identity="signer@example.com", issuer=ISSUER, not_before=datetime.now(UTC)
    )
    entries = logged_entries(key, cert)
    assert set(entries) == {f"{kind} {version}" for kind, version in KINDS}
    for name, data in entries.items():
        findings, skipped = judge_entry(7, "id", None, data, WATCH, ISSUANCE)
        assert skipped is None, name
        assert [(f.log_index, f.identity, f.kind) for f in findings] == [
            (7, "signer@example.com", MATCH)
        ], name
        # The same entry under a root that does not list the CA.
        findings, _ = judge_entry(7, "id", None, data, WATCH, IssuanceCheck(EMPTY_ROOT))
        assert [f.kind for f in findings] == [UNTRUSTED_CERTIFICATE], name
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bare = _v2({"publicKey": {"rawBytes": _b64(spki)}})
    findings, skipped = judge_entry(1, "id", None, bare, WATCH, ISSUANCE)
    assert findings == [] and (skipped.reason, skipped.detail) == (PUBLIC_KEY, "hashedrekord 0.0.2")
    key_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    findings, skipped = judge_entry(2, "id", 0, _v1(key_pem), WATCH, ISSUANCE)
    assert findings == [] and (skipped.reason, skipped.detail) == (PUBLIC_KEY, "hashedrekord 0.0.1")


def test_what_cannot_be_judged_is_named() -> None:
    no_signer = {
        "payloadHash": {"algorithm": "sha256", "value": "00" * 32},
        "signatures": [],
    }
    not_pem = {**no_signer, "signatures": [{"signature": _b64(b"s"), "verifier": "eA=="}]}
    cases = {
        b"not json": (
            UNREADABLE,
            "entry is not valid JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        b"[1]": (UNREADABLE, "entry is not a JSON object"),
        b"[" * 100_000: (UNREADABLE, "entry is nested too deeply"),
        b'{"kind": "rekord", "apiVersion": "0.0.1"}': (UNKNOWN_KIND, "rekord 0.0.1"),
        b'{"kind": ["x"], "apiVersion": 1}': (UNKNOWN_KIND, "(list) (int)"),
        b'{"kind": "a\\u001b[31m"}': (UNKNOWN_KIND, "'a\\x1b[31m' (NoneType)"),
        json.dumps({"kind": "dsse", "apiVersion": "0.0.1", "spec": no_signer}).encode(): (
            UNREADABLE,
            "entry field 'spec.signatures' is missing or not a list of 1 to 16 items",
        ),
        json.dumps({"kind": "dsse", "apiVersion": "0.0.1", "spec": not_pem}).encode(): (
            UNREADABLE,
            "entry field 'spec.signatures[0].verifier' is not a PEM certificate or public key",
        ),
        b'{"kind": "hashedrekord", "apiVersion": "0.0.2", "spec": {}}': (
            UNREADABLE,
            "entry field 'spec' holds not exactly one of hashedRekordV002, hashedRekordV0_0_2",
        ),
        _v2({"x509Certificate": {"rawBytes": "!!"}}): (
            UNREADABLE,
            "entry field 'spec.hashedRekordV002.signature.verifier.x509Certificate.rawBytes' "
            "is not base64",
        ),
        _v2({"x509Certificate": {"rawBytes": _b64(b"not DER")}}): (
            UNREADABLE,
            "hashedrekord 0.0.2 with a certificate that names no identity or cannot be parsed",
        ),
    }
    for body, (reason, detail) in cases.items():
        findings, skipped = judge_entry(3, "id", None, body, WATCH, ISSUANCE)
        assert findings == []
        assert (skipped.log_index, skipped.reason, skipped.detail) == (3, reason, detail), body[:60]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
kinds = st.sampled_from(["hashedrekord", "dsse", "intoto", "rekord", 3, None])


@settings(max_examples=300, deadline=None)
@given(kind=kinds, version=st.sampled_from(["0.0.1", "0.0.2", None]), spec=json_values)
def test_arbitrary_entries_never_raise(kind, version, spec) -> None:
    body = json.dumps({"kind": kind, "apiVersion": version, "spec": spec}).encode()
    findings, skipped = judge_entry(0, "id", None, body, WATCH, ISSUANCE)
    assert findings == [] and skipped is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(body) -> None:
    findings, skipped = judge_entry(0, "id", None, body, WATCH, ISSUANCE)
    assert findings == [] and skipped is not None


def _hashedrekord(cert: x509.Certificate) -> bytes:
    return _v1(cert.public_bytes(serialization.Encoding.PEM))


def _judge(cert: x509.Certificate, watch: WatchList = WATCH) -> list[tuple[str, str | None]]:
    findings, skipped = judge_entry(5, "id", None, _hashedrekord(cert), watch, ISSUANCE)
    assert skipped is None
    return [(f.kind, f.reason) for f in findings]


def _leaf(
    sign_with,
    *,
    issuer_name: x509.Name,
    aki_key,
    key=None,
    not_before: datetime | None = None,
    san: list[x509.GeneralName] | None = None,
    ca: bool = False,
    extra: list[x509.ExtensionType] = (),
    algorithm: hashes.HashAlgorithm | None = hashes.SHA256,
) -> x509.Certificate:
    """A leaf naming alice@example.com and ISSUER, shaped like a Fulcio one, signed by
    `sign_with` (whoever that is) under `issuer_name`."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    moment = not_before or datetime.now(UTC) - timedelta(minutes=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment)
        .not_valid_after(moment + timedelta(minutes=10))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_CODE_SIGNING]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_key), False)
        .add_extension(
            x509.SubjectAlternativeName(san or [x509.RFC822Name("alice@example.com")]), True
        )
        .add_extension(
            x509.UnrecognizedExtension(
                oids.fulcio_oid(oids.ISSUER_V2),
                oids.encode_extension_value(oids.ISSUER_V2, ISSUER),
            ),
            False,
        )
    )
    for extension in extra:
        builder = builder.add_extension(extension, True)
    return builder.sign(sign_with, algorithm and algorithm())


def _genuine(not_before: datetime | None = None) -> x509.Certificate:
    return CA.issue_leaf(
        ec.generate_private_key(ec.SECP256R1()),
        identity="alice@example.com",
        issuer=ISSUER,
        not_before=not_before or datetime.now(UTC) - timedelta(minutes=1),
    )


def test_a_ca_issued_certificate_is_an_ordinary_finding() -> None:
    assert _judge(_genuine()) == [(MATCH, None)]
    # Long expired by now: the chain is checked at issuance, when the leaf was valid.
    assert _judge(_genuine(START + timedelta(days=1))) == [(MATCH, None)]
    # The issuer check still applies to a trusted certificate.
    other_issuer = WatchList.build(["alice@example.com"], [], ["https://elsewhere.test"])
    assert _judge(_genuine(), other_issuer) == [(UNEXPECTED_ISSUER, None)]


def test_certificates_no_trusted_ca_issued_are_untrusted() -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    inter = CA.inter_cert.subject
    key = ec.generate_private_key(ec.SECP256R1())
    other = Instance(START)
    cases = {
        # Self-signed, naming the identity and the expected issuer.
        "self-signed": _leaf(key, issuer_name=x509.Name([]), aki_key=key.public_key(), key=key),
        # The CA's name and key identifier, an attacker's signature.
        "bad-signature": _leaf(attacker, issuer_name=inter, aki_key=CA.inter_key.public_key()),
        # Another deployment's CA, with the same names as ours.
        "other-ca": other.issue_leaf(
            key, identity="alice@example.com", issuer=ISSUER, not_before=datetime.now(UTC)
        ),
        # Really issued by our CA, but dated before the trusted root lists it.
        "before-the-ca": _genuine(START - timedelta(days=1)),
    }
    assert other.inter_cert.subject == inter
    for name, cert in cases.items():
        [(kind, reason)] = _judge(cert)
        assert kind == UNTRUSTED_CERTIFICATE, name
        assert reason.startswith(("the certificate does not chain", "no trusted CA")), name
    findings, _ = judge_entry(9, "id", None, _hashedrekord(cases["self-signed"]), WATCH, ISSUANCE)
    assert findings[0].to_json()["kind"] == "untrusted-certificate"
    assert findings[0].describe() == (
        f"entry 9: signed by alice@example.com ({ISSUER}): certificate not issued by any CA "
        f"the trusted root lists, a forgery or another deployment's ({findings[0].reason})"
    )
    assert "signature does not match" in _judge(cases["bad-signature"])[0][1]
    assert "no trusted CA was valid" in _judge(cases["before-the-ca"])[0][1]


def test_hostile_certificates_do_not_raise() -> None:
    """Forgeries in the CA's name with odd shapes, and certificates the CA's key did sign that
    path validation refuses (the profile `keyless verify` requires): untrusted, never raised."""
    inter, aki = CA.inter_cert.subject, CA.inter_key.public_key()
    attacker = ec.generate_private_key(ec.SECP256R1())
    odd_names = [
        x509.RFC822Name("alice@example.com"),
        x509.DirectoryName(inter),
        x509.RegisteredID(x509.ObjectIdentifier("1.2.3")),
        x509.OtherName(x509.ObjectIdentifier("1.2.3.5"), b"\x05\x00"),
    ]
    critical = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00")
    hostile = {
        "odd-names": _leaf(attacker, issuer_name=inter, aki_key=aki, san=odd_names),
        "ed25519": _leaf(
            ed25519.Ed25519PrivateKey.generate(), issuer_name=inter, aki_key=aki, algorithm=None
        ),
        "rsa-1024": _leaf(
            rsa.generate_private_key(public_exponent=65537, key_size=1024),
            issuer_name=inter,
            aki_key=aki,
        ),
        "year-9999": _leaf(
            attacker,
            issuer_name=inter,
            aki_key=aki,
            not_before=datetime(9999, 12, 31, 23, 0, tzinfo=UTC),
        ),
        # Signed by the CA's own key, but not a leaf path validation accepts.
        "leaf-is-a-ca": _leaf(CA.inter_key, issuer_name=inter, aki_key=aki, ca=True),
        "unknown-critical-extension": _leaf(
            CA.inter_key, issuer_name=inter, aki_key=aki, extra=[critical]
        ),
        "after-the-ca-expires": _leaf(
            CA.inter_key,
            issuer_name=inter,
            aki_key=aki,
            not_before=START + timedelta(days=3651),
        ),
    }
    for name, cert in hostile.items():
        kinds = _judge(cert)
        assert kinds and {kind for kind, _ in kinds} == {UNTRUSTED_CERTIFICATE}, name
    # The same odd names in a certificate the CA did issue: a watched identity like any other.
    genuine = _leaf(CA.inter_key, issuer_name=inter, aki_key=aki, san=odd_names)
    assert _judge(genuine) == [(MATCH, None)]


def _conformance_entry(name: str) -> bytes:
    bundle = json.loads((CONFORMANCE / name / "bundle.sigstore.json").read_text())
    return base64.b64decode(bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("happy-path-v0.3", MATCH),
        ("happy-path-intoto-in-dsse-v3", MATCH),
        # Signed by public-good staging's Fulcio: same names, other keys.
        ("bundle-from-wrong-instance_fail", UNTRUSTED_CERTIFICATE),
        ("rekor2-happy-path", UNTRUSTED_CERTIFICATE),
        # An intoto 0.0.2 entry of a mock instance: not public Sigstore's CA.
        ("intoto-with-custom-trust-root", UNTRUSTED_CERTIFICATE),
    ],
)
def test_public_sigstore_entries_against_the_production_root(name: str, kind: str) -> None:
    """Real rekor.sigstore.dev (and staging) entries, judged as `keyless monitor --rekor-url`
    judges them: with the shipped production trusted root's Fulcio CAs."""
    production = IssuanceCheck(production_trusted_root())
    findings, skipped = judge_entry(0, "id", None, _conformance_entry(name), WATCH, production)
    assert skipped is None
    assert [f.kind for f in findings] == [kind]
    if kind == UNTRUSTED_CERTIFICATE:
        assert findings[0].reason.startswith("the certificate does not chain to a trusted CA")
    if name in ("bundle-from-wrong-instance_fail", "rekor2-happy-path"):
        assert "signature does not match" in findings[0].reason


def test_unwatched_certificates_are_not_chain_checked() -> None:
    """Only a certificate naming a watched identity costs a signature verification."""

    class Counting(IssuanceCheck):
        calls = 0

        def untrusted(self, cert: x509.Certificate) -> str | None:
            Counting.calls += 1
            return super().untrusted(cert)

    counting = Counting(TrustedRoot.from_json(json.dumps(CA.trusted_root())))
    bob = WatchList.build(["bob@example.com"], [], [])
    for cert in (_genuine(), make_signer("alice@example.com").cert):
        assert judge_entry(0, "id", None, _hashedrekord(cert), bob, counting) == ([], None)
    assert Counting.calls == 0
    assert judge_entry(0, "id", None, _hashedrekord(_genuine()), WATCH, counting)[0]
    assert Counting.calls == 1


@pytest.mark.parametrize("name", ["rekor2-happy-path", "intoto-with-custom-trust-root"])
def test_entries_of_other_instances_against_their_own_root(name: str) -> None:
    """The v2 (hashedrekord 0.0.2) and intoto 0.0.2 entries are issued by the CA their own
    trusted root lists."""
    root = TrustedRoot.from_json((CONFORMANCE / name / "trusted_root.json").read_bytes())
    findings, skipped = judge_entry(
        0, "id", None, _conformance_entry(name), WATCH, IssuanceCheck(root)
    )
    assert skipped is None
    assert [f.kind for f in findings] == [MATCH]
