"""The timestamp authority in process: tokens verified by rfc3161-client (nonce, policy, chain),
and each refusal answered with the RFC 3161 failure it deserves."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from asn1crypto import core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from rfc3161_client import (
    HashAlgorithm,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from keyless.tsa import (
    DEFAULT_POLICY_OID,
    Rejected,
    TimestampAuthority,
    TSAChainError,
    dev_tsa_chain,
    parse_der_request,
    parse_json_request,
)
from keyless.tsa.authority import reject

SIGNATURE = b"an artifact signature"
POLICY = x509.ObjectIdentifier(DEFAULT_POLICY_OID)


def _request(algorithm=HashAlgorithm.SHA256, *, data=SIGNATURE, nonce=True, cert_req=True):
    return (
        TimestampRequestBuilder()
        .hash_algorithm(algorithm)
        .data(data)
        .nonce(nonce=nonce)
        .cert_request(cert_request=cert_req)
        .build()
    )


def _verifier(authority, nonce):
    return (
        VerifierBuilder()
        .tsa_certificate(authority.chain[0])
        .add_root_certificate(authority.chain[-1])
        .policy_id(POLICY)
        .nonce(nonce)
        .build()
    )


def _answer(authority, data: bytes, parse=parse_der_request) -> tuple[bytes, bool]:
    """What the blueprint answers, and whether the token was granted: the signed token, or
    the rejection its error handler renders."""
    try:
        return authority.grant(parse(data)), True
    except Rejected as exc:
        return reject(exc.failure, exc.message), False


def _status(der: bytes) -> dict:
    """The PKIStatusInfo of a response (a rejection carries no token)."""

    class StatusOnly(core.Sequence):
        _fields: ClassVar = [("status", tsp.PKIStatusInfo)]

    return StatusOnly.load(der)["status"].native


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_token_verifies_with_nonce_policy_and_chain(authority, algorithm) -> None:
    digest = hashlib.new(algorithm, SIGNATURE).digest()
    nonce = 0x1234_5678_9ABC_DEF0
    der, granted = _answer(authority, _der_request(algorithm, digest, nonce=nonce, cert_req=True))
    assert granted
    response = decode_timestamp_response(der)
    assert _verifier(authority, nonce).verify_message(response, SIGNATURE)
    info = response.tst_info
    assert info.nonce == nonce
    assert info.policy == POLICY
    assert info.accuracy.seconds == 1
    assert abs(info.gen_time - datetime.now(UTC)) < timedelta(minutes=1)
    assert info.message_imprint.message == digest
    # The leaf travels in the token because the client asked for it.
    assert list(response.signed_data.certificates) == [
        authority.chain[0].public_bytes(serialization.Encoding.DER)
    ]


def test_token_for_the_official_request_builder(authority) -> None:
    request = _request()
    response = decode_timestamp_response(_answer(authority, request.as_bytes())[0])
    assert _verifier(authority, request.nonce).verify_message(response, SIGNATURE)


def test_token_does_not_verify_for_other_data_or_nonce(authority) -> None:
    request = _request()
    response = decode_timestamp_response(_answer(authority, request.as_bytes())[0])
    with pytest.raises(VerificationError):
        _verifier(authority, request.nonce).verify_message(response, b"another signature")
    with pytest.raises(VerificationError):
        _verifier(authority, request.nonce + 1).verify_message(response, SIGNATURE)


def test_without_cert_req_the_token_carries_no_certificate(authority) -> None:
    request = _request(cert_req=False)
    response = decode_timestamp_response(_answer(authority, request.as_bytes())[0])
    assert not response.signed_data.certificates
    assert _verifier(authority, request.nonce).verify_message(response, SIGNATURE)


def test_serial_numbers_differ(authority) -> None:
    serials = {
        decode_timestamp_response(
            _answer(authority, _request().as_bytes())[0]
        ).tst_info.serial_number
        for _ in range(5)
    }
    assert len(serials) == 5


def _der_request(algorithm: str, digest: bytes, **extra) -> bytes:
    return tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": algorithm},
                "hashed_message": digest,
            },
            **extra,
        }
    ).dump()


def _non_minimal_length(der: bytes) -> bytes:
    """The same request in BER: the outer length in long form."""
    assert der[1] < 0x80
    return der[:1] + b"\x81" + der[1:]


@pytest.mark.parametrize(
    ("der", "failure", "text"),
    [
        (_der_request("sha1", hashlib.sha1(SIGNATURE).digest()), "bad_alg", "sha1 is not accepted"),
        (_der_request("md5", hashlib.md5(SIGNATURE).digest()), "bad_alg", "md5 is not accepted"),
        (
            _der_request("sha256", hashlib.sha384(SIGNATURE).digest()),
            "bad_data_format",
            "message imprint is 48 bytes, sha256 digests are 32",
        ),
        (_der_request("sha512", b""), "bad_data_format", "message imprint is 0 bytes"),
        (b"", "bad_data_format", "request is empty"),
        (b"\x30\x03\x02\x01\x01", "bad_data_format", "not a DER TimeStampReq"),
        (
            _der_request("sha256", hashlib.sha256(SIGNATURE).digest()) + b"\x00",
            "bad_data_format",
            "not a DER TimeStampReq",
        ),
        (b"\x30" + b"\x84" * 3, "bad_data_format", "not a DER TimeStampReq"),
        (
            _der_request("sha256", hashlib.sha256(SIGNATURE).digest(), req_policy="1.2.3.4"),
            "unaccepted_policy",
            "policy 1.2.3.4 is not served",
        ),
        (
            _der_request("sha256", hashlib.sha256(SIGNATURE).digest(), nonce=1 << 300),
            "bad_request",
            "nonce is longer than 256 bits",
        ),
        (
            _der_request(
                "sha256",
                hashlib.sha256(SIGNATURE).digest(),
                extensions=[{"extn_id": "1.2.3", "critical": False, "extn_value": b"\x05\x00"}],
            ),
            "unaccepted_extensions",
            "extensions are not accepted",
        ),
        (
            _non_minimal_length(_der_request("sha256", hashlib.sha256(SIGNATURE).digest())),
            "bad_data_format",
            "not DER-encoded",
        ),
    ],
    ids=[
        "sha1",
        "md5",
        "wrong-length",
        "empty-digest",
        "empty",
        "missing-imprint",
        "trailing-byte",
        "truncated",
        "foreign-policy",
        "huge-nonce",
        "extension",
        "ber",
    ],
)
def test_bad_requests_are_rejected_with_their_failure(authority, der, failure, text) -> None:
    answer, granted = _answer(authority, der)
    assert not granted
    status = _status(answer)
    assert status["status"] == "rejection"
    assert status["fail_info"] == {failure}
    assert text in status["status_string"][0]
    assert decode_timestamp_response(answer).status == 2  # clients read it as a rejection


def test_the_default_policy_may_be_asked_for(authority) -> None:
    der = _der_request("sha256", hashlib.sha256(SIGNATURE).digest(), req_policy=DEFAULT_POLICY_OID)
    assert _answer(authority, der)[1]


def test_json_request_is_answered_like_der(authority) -> None:
    import base64
    import json

    body = json.dumps(
        {
            "artifactHash": base64.b64encode(hashlib.sha384(SIGNATURE).digest()).decode(),
            "hashAlgorithm": "sha384",
            "certificates": True,
            "nonce": 123456789,
            "tsaPolicyOID": DEFAULT_POLICY_OID,
        }
    ).encode()
    der, granted = _answer(authority, body, parse_json_request)
    assert granted
    response = decode_timestamp_response(der)
    assert _verifier(authority, 123456789).verify_message(response, SIGNATURE)


@pytest.mark.parametrize(
    ("body", "failure", "text"),
    [
        (b"{", "bad_data_format", "not valid JSON"),
        (b"[]", "bad_data_format", "must be an object"),
        (
            b'{"artifactHash":"AAAA","hashAlgorithm":"sha256"}',
            "bad_data_format",
            "message imprint is 3 bytes",
        ),
        (
            b'{"artifactHash":"' + b"A" * 43 + b'=","hashAlgorithm":"sha1"}',
            "bad_alg",
            "sha1 is not accepted",
        ),
        (b'{"artifactHash":"!!"}', "bad_data_format", "not valid base64"),
        # A SHA-256 digest spelt with its last character's unused bits set (core.encoding).
        (b'{"artifactHash":"' + b"A" * 42 + b'B="}', "bad_data_format", "not valid base64"),
        (
            b'{"artifactHash":"' + b"A" * 43 + b'=","nonce":"1"}',
            "bad_request",
            "nonce must be an integer",
        ),
        (b'{"artifactHash":"' + b"A" * 43 + b'=","extra":1}', "bad_request", "unknown field"),
        (
            b'{"artifactHash":"' + b"A" * 43 + b'=","tsaPolicyOID":"x.y"}',
            "bad_request",
            "dotted OID",
        ),
        (
            b'{"artifactHash":"' + b"A" * 43 + b'=","tsaPolicyOID":"1.2.3"}',
            "unaccepted_policy",
            "not served",
        ),
        (b'{"artifactHash":"a","artifactHash":"b"}', "bad_data_format", "duplicate field"),
        (b'{"x":"' + b"A" * 1100 + b'"}', "bad_data_format", "larger than 1024 bytes"),
    ],
)
def test_bad_json_requests_are_rejected(authority, body, failure, text) -> None:
    answer, granted = _answer(authority, body, parse_json_request)
    assert not granted
    status = _status(answer)
    assert status["fail_info"] == {failure}
    assert text in status["status_string"][0]


def test_rejection_encodes_the_failure_bit() -> None:
    # PKIFailureInfo badAlg is bit 0: one byte, seven unused bits (DER drops trailing zeros).
    assert reject("bad_alg", "x").endswith(bytes.fromhex("03020780"))
    assert reject("bad_data_format", "x").endswith(bytes.fromhex("03020204"))


def test_chain_rules_are_enforced(tsa_key) -> None:
    now = datetime.now(UTC)
    leaf, root = dev_tsa_chain(tsa_key, now=now)
    with pytest.raises(TSAChainError, match="needs a leaf and a root"):
        TimestampAuthority(key=tsa_key, chain=[leaf])
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(TSAChainError, match="not for the TSA signing key"):
        TimestampAuthority(key=other, chain=[leaf, root])
    _, other_root = dev_tsa_chain(tsa_key, now=now)
    with pytest.raises(TSAChainError, match="#0 is not issued by #1"):
        TimestampAuthority(key=tsa_key, chain=[leaf, other_root])
    with pytest.raises(TSAChainError, match="#1 is not a CA"):
        TimestampAuthority(key=tsa_key, chain=[leaf, leaf])


def _leaf_with(tsa_key, root_key, root, *, eku, eku_critical=True, ca=False):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=tsa"))
        .issuer_name(root.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(hours=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
    return builder.sign(root_key, hashes.SHA256())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"eku": []}, "has no extended key usage"),
        ({"eku": [ExtendedKeyUsageOID.TIME_STAMPING], "eku_critical": False}, "not critical"),
        (
            {"eku": [ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING]},
            "only extended key usage must be timeStamping",
        ),
        ({"eku": [ExtendedKeyUsageOID.TIME_STAMPING], "ca": True}, "leaf certificate is a CA"),
    ],
)
def test_leaf_rules(tsa_key, options, message) -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=root"))
        .issuer_name(x509.Name.from_rfc4514_string("CN=root"))
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.now(UTC) - timedelta(hours=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf = _leaf_with(tsa_key, root_key, root, **options)
    with pytest.raises(TSAChainError, match=message):
        TimestampAuthority(key=tsa_key, chain=[leaf, root])


def test_no_token_outside_the_certificate_validity(tsa_key) -> None:
    chain = dev_tsa_chain(tsa_key, now=datetime.now(UTC))
    later = (chain[0].not_valid_after_utc + timedelta(days=1)).timestamp()
    authority = TimestampAuthority(key=tsa_key, chain=chain, clock=lambda: later)
    answer, granted = _answer(authority, _request().as_bytes())
    assert not granted
    assert _status(answer)["fail_info"] == {"time_not_available"}


@pytest.mark.parametrize(("nonce", "cert_req"), [(None, False), (7, True), (-(2**70), False)])
def test_token_is_distinguished_encoding(authority, nonce, cert_req) -> None:
    """The token is assembled from encoded parts: asn1crypto re-encodes it byte for byte."""
    extra = {"cert_req": cert_req} | ({"nonce": nonce} if nonce is not None else {})
    der, granted = _answer(
        authority, _der_request("sha256", hashlib.sha256(SIGNATURE).digest(), **extra)
    )
    assert granted
    response = tsp.TimeStampResp.load(der)
    assert response.dump(force=True) == der
    signed_data = response["time_stamp_token"]["content"]
    info = signed_data["encap_content_info"]["content"].parsed
    assert info.dump(force=True) == signed_data["encap_content_info"]["content"].contents
    assert info["nonce"].native == nonce
    assert info["ordering"].native is False
    assert len(signed_data["certificates"]) == (1 if cert_req else 0)
    [signer] = signed_data["signer_infos"]
    attributes = [attribute["type"].native for attribute in signer["signed_attrs"]]
    assert sorted(attributes) == [
        "content_type",
        "message_digest",
        "signing_certificate_v2",
        "signing_time",
    ]
    encoded = [attribute.dump() for attribute in signer["signed_attrs"]]
    assert encoded == sorted(encoded)


def _mutations(der: bytes):
    from hypothesis import strategies as st

    return st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda i, b: der[:i] + bytes([b]) + der[i + 1 :],
            st.integers(0, len(der) - 1),
            st.integers(0, 255),
        ),
        st.builds(lambda i: der[:i], st.integers(0, len(der))),
    )


VALID = _der_request("sha256", hashlib.sha256(SIGNATURE).digest(), nonce=5, cert_req=True)


def test_arbitrary_bytes_never_escape_as_an_exception(authority) -> None:
    """Whatever arrives, the answer is a TimeStampResp: a token or a rejection."""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_mutations(VALID))
    def check(data: bytes) -> None:
        answer, granted = _answer(authority, data)
        status = _status(answer)["status"]
        assert status == ("granted" if granted else "rejection")

    check()


def test_arbitrary_json_never_escapes_as_an_exception(authority) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["artifactHash", "hashAlgorithm", "nonce", "certificates", "x"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=8,
    )

    @settings(max_examples=300, deadline=None)
    @given(values)
    def check(value) -> None:
        import json

        answer, granted = _answer(authority, json.dumps(value).encode(), parse_json_request)
        assert _status(answer)["status"] == ("granted" if granted else "rejection")

    check()
