"""How `keyless audit` reads signature-log entries it did not write: a Rekor v2 body parses to
its signer or fails with one short ValueError line, whatever the bytes; a signer names an
issued certificate by serial and key, or by bare key; the signature is checked before an entry
is attributed; each entry says what was signed, as its body records it. Real keys and
certificates, and bodies canonicalised by the server's own code."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyless.client.entry_body import EntryBodyError, parse_entry_body
from keyless.client.transparency.audit import (
    CERTIFICATE,
    PUBLIC_KEY,
    CertificateIndex,
    IssuedCertificate,
    SignatureEntry,
    SignedContent,
    _signature_entry,
    parse_v2_entry,
)
from keyless.client.transparency.rekor_v1 import ProvenEntry
from keyless.tlog.rekor_v2 import canonicalize
from tests.cli.test_entry_body import DIGEST, PAYLOAD, PAYLOAD_TYPE, logged_entries
from tests.tlog.conftest import Signer, make_signer
from tests.tlog.test_rekor_v2 import request_for

CONFORMANCE = (
    Path(__file__).parents[1]
    / "data/sigstore-conformance/test/assets/bundle-verify/intoto-with-custom-trust-root"
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _issued(signer: Signer, position: int = 0) -> IssuedCertificate:
    return IssuedCertificate(
        ct_index=position,
        logged=datetime.now(UTC),
        serial=f"{signer.cert.serial_number:x}",
        identities=("alice@example.com",),
        issuer=None,
        key_algorithm="ECDSA secp256r1",
        public_key_pem=signer.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


@pytest.fixture(scope="module")
def signer() -> Signer:
    return make_signer()


@pytest.fixture(scope="module")
def body(signer) -> bytes:
    return canonicalize(request_for(signer, b"artifact")).body


def _bare_key_body(signer: Signer) -> bytes:
    spki = signer.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = {
        "publicKey": {"rawBytes": base64.b64encode(spki).decode()},
        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
    }
    return canonicalize(request_for(signer, b"artifact", **{"signature.verifier": verifier})).body


def test_a_certificate_entry_names_its_certificate_only(signer, body) -> None:
    parsed = parse_v2_entry(body)
    assert parsed.verifier.kind == CERTIFICATE
    assert parsed.verifier.serial == signer.cert.serial_number
    parsed.check_signature()
    other = make_signer()
    index = CertificateIndex([_issued(other, 0), _issued(signer, 1)])
    assert index.named_by(parsed.verifier) == [1]
    # Same key, another serial (another certificate for the key): not this certificate's entry.
    reissued = IssuedCertificate(**{**_issued(signer).__dict__, "serial": "1"})
    assert CertificateIndex([reissued]).named_by(parsed.verifier) == []


def test_a_bare_key_entry_names_the_certificate_with_that_key(signer) -> None:
    parsed = parse_v2_entry(_bare_key_body(signer))
    assert parsed.verifier.kind == PUBLIC_KEY and parsed.verifier.serial is None
    parsed.check_signature()
    assert CertificateIndex([_issued(make_signer()), _issued(signer, 1)]).named_by(
        parsed.verifier
    ) == [1]


def test_a_signature_from_another_key_or_digest_does_not_verify(signer, body) -> None:
    document = json.loads(body)
    spec = document["spec"]["hashedRekordV002"]
    spec["data"]["digest"] = base64.b64encode(b"\x00" * 32).decode()
    with pytest.raises(ValueError, match=r"^its signature does not verify with its certificate"):
        parse_v2_entry(json.dumps(document).encode()).check_signature()
    spec["data"]["algorithm"] = "MD5"
    with pytest.raises(EntryBodyError) as info:
        parse_v2_entry(json.dumps(document).encode())
    assert str(info.value) == (
        "entry field 'spec.hashedRekordV002.data.algorithm' is not one of SHA2_256, SHA2_384, "
        "SHA2_512"
    )


def _v1_entry(body: bytes, index: int = 7) -> ProvenEntry:
    """A Rekor v1 entry as the log reader hands it on once proven."""
    return ProvenEntry(index, "id", 1700000000, body)


def _hashedrekord_v1(pem: bytes) -> bytes:
    spec = {
        "data": {"hash": {"algorithm": "sha256", "value": "00" * 32}},
        "signature": {"content": _b64(b"signature"), "publicKey": {"content": _b64(pem)}},
    }
    return json.dumps({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": spec}).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_v1_entry_is_matched_by_certificate_or_bare_key(signer) -> None:
    key_pem = signer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cert_pem = signer.cert.public_bytes(serialization.Encoding.PEM)
    issued = _issued(signer)
    for pem, verifier in ((cert_pem, CERTIFICATE), (key_pem, PUBLIC_KEY)):
        made = _signature_entry(_v1_entry(_hashedrekord_v1(pem)), issued)
        assert made is not None
        assert (made.log, made.log_index, made.verifier) == ("rekor-v1", 7, verifier)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert _signature_entry(_v1_entry(_hashedrekord_v1(other_pem), 8), issued) is None


def test_each_v1_kind_is_matched_intoto_included(signer) -> None:
    """Every kind keyless's Rekor v1 log writes, canonicalised by its own code, is listed under
    the certificate that signed it. intoto 0.0.2 was not until issue 19: the audit decoded its
    `publicKey` twice (it is base64 of the PEM once) and dropped the entry in silence."""
    entries = logged_entries(signer.key, signer.cert)
    issued = _issued(signer)
    for name in ("hashedrekord 0.0.1", "dsse 0.0.1", "intoto 0.0.2"):
        made = _signature_entry(_v1_entry(entries[name]), issued)
        assert made is not None, name
        assert (made.kind, made.verifier) == (name.split()[0], CERTIFICATE)


def test_each_kind_says_what_was_signed(signer) -> None:
    """The artifact digest of a v1 hashedrekord, the digest a v2 one signs, a DSSE payload's
    hash, and intoto's payload type; no predicate type where the body keeps no statement."""
    entries = logged_entries(signer.key, signer.cert)
    payload_hash = f"sha256:{hashlib.sha256(PAYLOAD).hexdigest()}"
    signed = {name: SignedContent.of(parse_entry_body(body)) for name, body in entries.items()}
    assert signed["hashedrekord 0.0.1"].to_json() == {"artifactDigest": f"sha256:{DIGEST.hex()}"}
    assert signed["hashedrekord 0.0.1"].describe() == f"artifact sha256:{DIGEST.hex()}"
    assert signed["hashedrekord 0.0.2"].to_json() == {"digest": f"sha256:{DIGEST.hex()}"}
    assert signed["dsse 0.0.1"].to_json() == {"payloadHash": payload_hash}
    assert signed["dsse 0.0.1"].describe() == (
        f"payload {payload_hash}, predicate type not in the log"
    )
    assert signed["intoto 0.0.2"].to_json() == {
        "payloadHash": payload_hash,
        "payloadType": PAYLOAD_TYPE,
    }
    assert signed["intoto 0.0.2"].describe() == (
        f"payload {payload_hash}, {PAYLOAD_TYPE}, predicate type not in the log"
    )


def test_the_conformance_intoto_entry_is_its_certificates() -> None:
    """The sigstore-conformance intoto 0.0.2 vector, as its log returned it, names the leaf of
    its bundle: an audit of that instance lists it under that certificate."""
    bundle = json.loads((CONFORMANCE / "bundle.sigstore.json").read_text())
    [entry] = bundle["verificationMaterial"]["tlogEntries"]
    leaf = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]
    cert = x509.load_der_x509_certificate(base64.b64decode(leaf["rawBytes"]))
    issued = IssuedCertificate(
        ct_index=0,
        logged=datetime.now(UTC),
        serial=f"{cert.serial_number:x}",
        identities=(),
        issuer=None,
        key_algorithm="ECDSA secp256r1",
        public_key_pem=cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    body = base64.b64decode(entry["canonicalizedBody"])
    logged = ProvenEntry(int(entry["logIndex"]), "uuid", int(entry["integratedTime"]), body)
    made = _signature_entry(logged, issued)
    # This log kept the statement: its predicate type is what was signed, with its hash.
    statement = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    signed = SignedContent(
        payload_hash=f"sha256:{hashlib.sha256(statement).hexdigest()}",
        payload_type="application/vnd.in-toto+json",
        predicate_type=json.loads(statement)["predicateType"],
    )
    assert signed.predicate_type == "https://slsa.dev/provenance/v1"
    assert made == SignatureEntry(
        "rekor-v1", int(entry["logIndex"]), "uuid", int(entry["integratedTime"]), "intoto",
        CERTIFICATE, signed,
    )  # fmt: skip
    assert made.signed.describe() == (
        f"payload {signed.payload_hash}, application/vnd.in-toto+json, "
        "predicate https://slsa.dev/provenance/v1"
    )
    # Another certificate of the same key and another serial is not the one that signed.
    reissued = IssuedCertificate(**{**issued.__dict__, "serial": "1"})
    assert _signature_entry(logged, reissued) is None


def test_an_unreadable_v1_body_is_an_error_for_the_caller_to_name(signer) -> None:
    with pytest.raises(EntryBodyError) as info:
        _signature_entry(_v1_entry(b'{"kind": "rekord", "apiVersion": "0.0.1"}'), _issued(signer))
    assert str(info.value) == "entry kind rekord 0.0.1 is not one keyless reads"


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=512))
def test_any_bytes_parse_or_fail_with_one_line(data: bytes) -> None:
    try:
        parse_v2_entry(data)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 200


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path_choice=st.integers(min_value=0), value=json_values)
def test_any_field_replaced_parses_or_fails_with_one_line(body, path_choice, value) -> None:
    """Every field of a valid body, in turn replaced by any JSON value: a signer or a
    ValueError, and a signer's signature check is a ValueError too when it fails."""
    document = json.loads(body)
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, [*path, key])

    walk(document, [])
    path = paths[path_choice % len(paths)]
    changed = copy.deepcopy(document)
    if path:
        target = changed
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    else:
        changed = value
    try:
        parsed = parse_v2_entry(json.dumps(changed).encode())
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    try:
        parsed.check_signature()
    except ValueError as exc:
        assert "does not verify" in str(exc) or "unknown digest algorithm" in str(exc)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_any_v1_entry_is_matched_not_matched_or_named(signer, value) -> None:
    try:
        made = _signature_entry(_v1_entry(json.dumps(value).encode()), _issued(signer))
    except EntryBodyError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert made is None
