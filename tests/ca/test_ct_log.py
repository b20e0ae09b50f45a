"""The RFC 6962 CT log over HTTP: STH, proofs and entries verify; bad chains leave no entry."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.tlog import merkle
from keyless.tlog.ct_log import strip_poison
from keyless.tlog.errors import EntryError
from tests.ca.ctverify import embedded_scts, sct_timestamp_ms, spki_der
from tests.ca.helpers import chain_of, csr_pem, p256, post_csr


def _get(server, path: str, **params) -> dict:
    response = requests.get(f"{server.url}/ct/v1/{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _sth(server) -> dict:
    sth = _get(server, "get-sth")
    signed = base64.b64decode(sth["tree_head_signature"])
    assert signed[:2] == b"\x04\x03"
    (length,) = struct.unpack(">H", signed[2:4])
    data = b"\x00\x01" + struct.pack(">QQ", sth["timestamp"], sth["tree_size"])
    data += base64.b64decode(sth["sha256_root_hash"])
    server.ct_log.public_key.verify(signed[4 : 4 + length], data, ec.ECDSA(hashes.SHA256()))
    return sth


def test_issued_leaf_is_in_the_log_with_valid_proofs(server_ca):
    before = _sth(server_ca)
    chain = chain_of(post_csr(server_ca.url, server_ca.email_token(), csr_pem(p256())))
    after = _sth(server_ca)
    assert after["tree_size"] == before["tree_size"] + 1
    index = after["tree_size"] - 1

    # The Merkle leaf is rebuilt from the final certificate alone, as an auditor would.
    sct = embedded_scts(chain[0])[0]
    tbs = chain[0].tbs_precertificate_bytes
    leaf = (
        b"\x00\x00"
        + struct.pack(">QH", sct_timestamp_ms(sct), 1)
        + hashlib.sha256(spki_der(chain[1].public_key())).digest()
        + len(tbs).to_bytes(3, "big")
        + tbs
        + b"\x00\x00"
    )
    entries = _get(server_ca, "get-entries", start=index, end=index)["entries"]
    assert base64.b64decode(entries[0]["leaf_input"]) == leaf
    extra = base64.b64decode(entries[0]["extra_data"])
    precert_len = int.from_bytes(extra[:3], "big")
    precert = x509.load_der_x509_certificate(extra[3 : 3 + precert_len])
    assert precert.serial_number == chain[0].serial_number
    assert strip_poison(precert.tbs_certificate_bytes) == tbs

    leaf_hash = merkle.leaf_hash(leaf)
    proof = _get(
        server_ca,
        "get-proof-by-hash",
        hash=base64.b64encode(leaf_hash).decode(),
        tree_size=after["tree_size"],
    )
    assert proof["leaf_index"] == index
    merkle.verify_inclusion(
        index=index,
        size=after["tree_size"],
        leaf=leaf_hash,
        proof=[base64.b64decode(node) for node in proof["audit_path"]],
        root=base64.b64decode(after["sha256_root_hash"]),
    )
    if before["tree_size"]:
        consistency = _get(
            server_ca, "get-sth-consistency", first=before["tree_size"], second=after["tree_size"]
        )
        merkle.verify_consistency(
            size1=before["tree_size"],
            size2=after["tree_size"],
            proof=[base64.b64decode(node) for node in consistency["consistency"]],
            root1=base64.b64decode(before["sha256_root_hash"]),
            root2=base64.b64decode(after["sha256_root_hash"]),
        )


def test_get_roots_lists_the_ca_root(server_ca):
    roots = _get(server_ca, "get-roots")["certificates"]
    root_der = server_ca.signer.chain[-1].public_bytes(serialization.Encoding.DER)
    assert [base64.b64decode(r) for r in roots] == [root_der]


def _post(server, path: str, chain: list[bytes]) -> requests.Response:
    body = {"chain": [base64.b64encode(der).decode() for der in chain]}
    return requests.post(f"{server.url}/ct/v1/{path}", json=body, timeout=30)


def _foreign_chain(server_ca) -> list[bytes]:
    """A precertificate chain from another CA, which this log must not accept."""
    from datetime import UTC, datetime

    from keyless.ca.profile import build_leaf
    from keyless.ca.sct import build_precertificate
    from keyless.ca.signers import KeySigner, generate_ca
    from keyless.oidc import Principal, SANType

    now = datetime.now(UTC)
    key, chain = generate_ca(now=now, name="foreign")
    signer = KeySigner(key, chain, now=now)
    principal = Principal(SANType.EMAIL, "a@b.example", "a@b.example", {1: "x", 8: "x"})
    builder = build_leaf(
        principal, public_key=p256().public_key(), issuer=chain[0], serial=7, now=now
    )
    precert = build_precertificate(builder, signer)
    return [c.public_bytes(serialization.Encoding.DER) for c in (precert, *chain)]


def test_chain_from_unknown_root_is_refused(server_ca):
    size = server_ca.ct_size()
    response = _post(server_ca, "add-pre-chain", _foreign_chain(server_ca))
    assert response.status_code == 400
    assert response.json()["message"] == "the chain does not end in a root this log accepts"
    assert server_ca.ct_size() == size


def test_certificate_without_poison_on_add_pre_chain_is_refused(server_ca):
    chain = chain_of(post_csr(server_ca.url, server_ca.email_token(), csr_pem(p256())))
    size = server_ca.ct_size()
    ders = [c.public_bytes(serialization.Encoding.DER) for c in chain]
    response = _post(server_ca, "add-pre-chain", ders)
    assert response.status_code == 400
    assert response.json()["message"] == ("a precertificate without the critical poison extension")
    response = _post(server_ca, "add-chain", [ders[0], ders[2]])
    assert response.status_code == 400
    assert response.json()["message"] == "certificate 0 is not signed by certificate 1"
    assert server_ca.ct_size() == size


@pytest.mark.parametrize(
    ("case", "body", "message"),
    [
        (
            "not-json",
            b"{",
            "request body is not valid JSON: Expecting property name enclosed in double quotes:"
            " line 1 column 2 (char 1)",
        ),
        ("empty-chain", b'{"chain": []}', 'expected {"chain": [...]} with 1 to 10 certificates'),
        ("not-base64", b'{"chain": ["***"]}', "chain entries must be base64 DER certificates"),
        ("not-a-certificate", b'{"chain": ["AAAA"]}', "certificate 0 is not DER X.509"),
    ],
)
def test_malformed_add_chain_is_refused(server_ca, case, body, message):
    size = server_ca.ct_size()
    response = requests.post(f"{server_ca.url}/ct/v1/add-chain", data=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["message"] == message
    assert server_ca.ct_size() == size


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("get-entries", {"start": "-1", "end": "2"}),
        ("get-entries", {"start": "5", "end": "1"}),
        ("get-sth-consistency", {"first": "1"}),
        ("get-proof-by-hash", {"hash": "AAAA", "tree_size": "1"}),
    ],
    ids=["negative-start", "end-before-start", "missing-second", "short-hash"],
)
def test_bad_read_requests_are_400(server_ca, path, params):
    response = requests.get(f"{server_ca.url}/ct/v1/{path}", params=params, timeout=30)
    assert response.status_code == 400


def test_strip_poison_refuses_a_tbs_without_poison(server_ca):
    leaf = server_ca.signer.chain[0]
    with pytest.raises(EntryError):
        strip_poison(leaf.tbs_certificate_bytes)


def test_precertificate_issued_by_a_leaf_is_refused(server_ca):
    """A code-signing leaf of the trusted CA must not act as an issuer of precertificates."""
    from datetime import UTC, datetime

    from keyless.ca.profile import build_leaf
    from keyless.oidc import Principal, SANType

    leaf_key = p256()
    issued = chain_of(post_csr(server_ca.url, server_ca.email_token(), csr_pem(leaf_key)))
    principal = Principal(SANType.EMAIL, "x@example.com", "x@example.com", {1: "x", 8: "x"})
    builder = build_leaf(
        principal,
        public_key=p256().public_key(),
        issuer=issued[0],
        serial=9,
        now=datetime.now(UTC),
    )
    precert = builder.add_extension(x509.PrecertPoison(), critical=True).sign(
        leaf_key, hashes.SHA256()
    )
    chain = [c.public_bytes(serialization.Encoding.DER) for c in (precert, *issued)]
    size = server_ca.ct_size()
    response = _post(server_ca, "add-pre-chain", chain)
    assert response.status_code == 400
    assert response.json()["message"] == "certificate 1 issues others but is not a CA"
    assert server_ca.ct_size() == size


def test_log_opened_with_another_key_is_refused_at_start(server_ca, tmp_path):
    from keyless.tlog.ct_log import open_ct_log
    from keyless.tlog.errors import LogError

    roots = [server_ca.signer.chain[-1]]
    first, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    open_ct_log(database=tmp_path / "ct.db", private_key=first, roots=roots)
    open_ct_log(database=tmp_path / "ct.db", private_key=first, roots=roots)  # reopening is fine
    with pytest.raises(LogError) as info:
        open_ct_log(database=tmp_path / "ct.db", private_key=other, roots=roots)
    assert info.value.reason == "log-key-mismatch"
    assert info.value.message == (f"the CT log in {tmp_path / 'ct.db'} was signed with another key")


@pytest.mark.parametrize("path", ["add-chain", "add-pre-chain"])
@pytest.mark.parametrize("which", ["root", "intermediate", "intermediate-and-root"])
def test_ca_certificates_as_the_leaf_are_refused(server_ca, path: str, which: str):
    """A chain whose first certificate is a CA (the accepted root itself) gets no SCT."""
    intermediate, root = (
        c.public_bytes(serialization.Encoding.DER) for c in server_ca.signer.chain
    )
    chain = {
        "root": [root],
        "intermediate": [intermediate],
        "intermediate-and-root": [intermediate, root],
    }[which]
    size = server_ca.ct_size()
    response = _post(server_ca, path, chain)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    if path == "add-pre-chain" and len(chain) == 1:
        assert message == "a precertificate chain must include its issuer"
    else:
        assert (
            message
            == "certificate 0 is a CA certificate; this log accepts end-entity certificates only"
        )
    assert server_ca.ct_size() == size
