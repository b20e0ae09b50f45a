"""The Rekor v1 API over real HTTP: new entries pass every client-side check with only the log's
public key; reads, proofs and search; sigstore-python's own checks as an oracle."""

from __future__ import annotations

import base64
import hashlib
import json

import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.tlog import merkle
from keyless.tlog.checkpoint import parse_note, verify_checkpoint
from tests.tlog.conftest import RekorServer, Signer, dsse_request, make_signer


def _client_checks(response_json: dict, log_key: ec.EllipticCurvePublicKey) -> dict:
    """What sigstore-python and sigstore-js check on a v1 entry, with only the log key."""
    assert len(response_json) == 1
    entry_id, entry = next(iter(response_json.items()))
    body = base64.b64decode(entry["body"], validate=True)
    der = log_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    log_id = hashlib.sha256(der).hexdigest()
    assert entry["logID"] == log_id
    leaf = merkle.leaf_hash(body)
    assert len(entry_id) == 80 and entry_id.endswith(leaf.hex())
    proof = entry["verification"]["inclusionProof"]
    assert proof["logIndex"] == entry["logIndex"]
    assert proof["treeSize"] > proof["logIndex"]
    # Inclusion proof.
    merkle.verify_inclusion(
        index=proof["logIndex"],
        size=proof["treeSize"],
        leaf=leaf,
        proof=[bytes.fromhex(h) for h in proof["hashes"]],
        root=bytes.fromhex(proof["rootHash"]),
    )
    # Checkpoint: one blank line, key hint = logID[:4], signature by the log key, same root.
    note = proof["checkpoint"]
    assert note.count("\n\n") == 1
    parsed = parse_note(note)
    assert [s.key_hint.hex() for s in parsed.signatures] == [log_id[:8]]
    assert parsed.signatures[0].name == "127.0.0.1"
    checkpoint = verify_checkpoint(note, public_key=log_key)
    assert checkpoint.size == proof["treeSize"]
    assert checkpoint.root_hash.hex() == proof["rootHash"]
    assert checkpoint.origin.startswith("127.0.0.1 - ")
    # SET over the RFC 8785 JSON of the four fields.
    payload = rfc8785.dumps(
        {
            "body": entry["body"],
            "integratedTime": entry["integratedTime"],
            "logID": entry["logID"],
            "logIndex": entry["logIndex"],
        }
    )
    signature = base64.b64decode(entry["verification"]["signedEntryTimestamp"], validate=True)
    log_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    return entry


def _log_key(rekor: RekorServer) -> ec.EllipticCurvePublicKey:
    response = rekor.get("/api/v1/log/publicKey")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-pem-file"
    key = serialization.load_pem_public_key(response.content)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def test_new_hashedrekord_passes_client_checks(rekor: RekorServer, signer: Signer) -> None:
    log_key = _log_key(rekor)
    for i in range(5):
        response = rekor.post("/api/v1/log/entries", signer.hashedrekord(b"artifact %d" % i))
        assert response.status_code == 201, response.text
        entry = _client_checks(response.json(), log_key)
        assert entry["logIndex"] == i
        entry_id = next(iter(response.json()))
        assert response.headers["ETag"] == entry_id
        assert response.headers["Location"] == f"/api/v1/log/entries/{entry_id}"
    body = json.loads(base64.b64decode(entry["body"]))
    digest = hashlib.sha256(b"artifact 4").hexdigest()
    assert body["spec"]["data"] == {"hash": {"algorithm": "sha256", "value": digest}}
    assert base64.b64decode(body["spec"]["signature"]["publicKey"]["content"]) == signer.cert_pem


def test_body_is_canonical_with_rekor_pem(rekor: RekorServer, signer: Signer) -> None:
    # A PEM with CRLF line ends and extra whitespace is stored re-encoded, the Rekor way.
    messy = signer.cert_pem.replace(b"\n", b"\r\n") + b"\n\n"
    response = rekor.post("/api/v1/log/entries", signer.hashedrekord(b"x", pem=messy))
    assert response.status_code == 201, response.text
    entry = next(iter(response.json().values()))
    raw = base64.b64decode(entry["body"])
    spec = json.loads(raw)["spec"]
    assert base64.b64decode(spec["signature"]["publicKey"]["content"]) == signer.cert_pem
    assert raw == rfc8785.dumps(json.loads(raw))


def test_sigstore_python_accepts_entry(rekor: RekorServer, signer: Signer) -> None:
    from pydantic import TypeAdapter
    from rekor_types import ProposedEntry
    from sigstore._internal.rekor import _hashedrekord_from_parts
    from sigstore._internal.trust import Keyring
    from sigstore.hashes import Hashed
    from sigstore.models import TransparencyLogEntry
    from sigstore_models.common import v1 as common_v1

    artifact = b"checked by sigstore-python"
    request = signer.hashedrekord(artifact)
    response = rekor.post("/api/v1/log/entries", request)
    assert response.status_code == 201, response.text
    entry = TransparencyLogEntry._from_v1_response(response.json())
    der = rekor.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyring = Keyring(
        [
            common_v1.PublicKey(
                raw_bytes=base64.b64encode(der),
                key_details=common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
            )
        ]
    )
    entry._verify(keyring)  # Inclusion proof, checkpoint and SET, as its Verifier runs them.
    # Its verifier rebuilds the expected body from the parts and compares.
    signature = base64.b64decode(request["spec"]["signature"]["content"])
    hashed = Hashed(
        algorithm=common_v1.HashAlgorithm.SHA2_256, digest=hashlib.sha256(artifact).digest()
    )
    expected = _hashedrekord_from_parts(signer.cert, signature, hashed)
    actual = TypeAdapter(ProposedEntry).validate_json(entry._inner.canonicalized_body)
    assert actual == expected
    # A corrupted SET must fail its check (the oracle is not vacuous).
    tampered = response.json()
    first = next(iter(tampered.values()))
    first["integratedTime"] += 1
    try:
        TransparencyLogEntry._from_v1_response(tampered)._verify(keyring)
    except Exception as exc:  # sigstore's VerificationError
        assert "SET" in str(exc)
    else:
        raise AssertionError("tampered SET verified")


def test_dsse_entry(rekor: RekorServer, signer: Signer) -> None:
    payload = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": []}).encode()
    envelope = signer.envelope(payload)
    response = rekor.post("/api/v1/log/entries", dsse_request(envelope, signer.cert_pem))
    assert response.status_code == 201, response.text
    entry = _client_checks(response.json(), _log_key(rekor))
    body = json.loads(base64.b64decode(entry["body"]))
    assert (body["kind"], body["apiVersion"]) == ("dsse", "0.0.1")
    assert body["spec"]["payloadHash"]["value"] == hashlib.sha256(payload).hexdigest()
    envelope_text = json.dumps(envelope)
    assert (
        body["spec"]["envelopeHash"]["value"] == hashlib.sha256(envelope_text.encode()).hexdigest()
    )
    assert body["spec"]["signatures"] == [
        {
            "signature": envelope["signatures"][0]["sig"],
            "verifier": base64.b64encode(signer.cert_pem).decode(),
        }
    ]


def test_dsse_entry_from_sigstore_python_request(rekor: RekorServer, signer: Signer) -> None:
    # sigstore-python's own request builder sends null for the unused fields.
    import rekor_types

    envelope = json.dumps(signer.envelope(b"{}"))
    request = rekor_types.Dsse(
        spec=rekor_types.dsse.DsseSchema(
            proposed_content=rekor_types.dsse.ProposedContent(
                envelope=envelope, verifiers=[base64.b64encode(signer.cert_pem).decode()]
            )
        )
    ).model_dump(mode="json", by_alias=True)
    assert request["spec"]["signatures"] is None
    response = rekor.post("/api/v1/log/entries", request)
    assert response.status_code == 201, response.text


def test_intoto_entry(rekor: RekorServer, signer: Signer) -> None:
    payload = b'{"_type":"https://in-toto.io/Statement/v0.1"}'
    envelope = signer.envelope(payload)
    pem_b64 = base64.b64encode(signer.cert_pem).decode()
    double = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    request = {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": envelope["payloadType"],
                    "payload": double(envelope["payload"]),
                    "signatures": [
                        {"sig": double(envelope["signatures"][0]["sig"]), "publicKey": pem_b64}
                    ],
                },
                "hash": {"algorithm": "sha256", "value": "ab" * 32},
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
            }
        },
    }
    response = rekor.post("/api/v1/log/entries", request)
    assert response.status_code == 201, response.text
    entry = _client_checks(response.json(), _log_key(rekor))
    body = json.loads(base64.b64decode(entry["body"]))
    content = body["spec"]["content"]
    assert "payload" not in content["envelope"]
    assert content["envelope"]["signatures"][0]["publicKey"] == pem_b64
    assert content["hash"] == {"algorithm": "sha256", "value": "ab" * 32}
    # A signature over another payload is refused.
    request["spec"]["content"]["envelope"]["payload"] = double(base64.b64encode(b"{}").decode())
    bad = rekor.post("/api/v1/log/entries", request)
    assert bad.status_code == 400
    assert bad.json() == {
        "code": 400,
        "message": "error processing entry: signature does not verify",
    }


def test_read_endpoints(rekor: RekorServer, signer: Signer) -> None:
    log_key = _log_key(rekor)
    ids = []
    for i in range(3):
        response = rekor.post("/api/v1/log/entries", signer.hashedrekord(b"read %d" % i))
        ids.append(next(iter(response.json())))
    by_index = rekor.get("/api/v1/log/entries", logIndex=1)
    assert by_index.status_code == 200
    entry = _client_checks(by_index.json(), log_key)
    assert entry["verification"]["inclusionProof"]["treeSize"] == 3
    assert next(iter(by_index.json())) == ids[1]
    for entry_id in (ids[2], ids[2][16:], ids[2].upper()):
        found = rekor.get(f"/api/v1/log/entries/{entry_id}")
        assert found.status_code == 200
        assert next(iter(found.json())) == ids[2]
    assert rekor.get("/api/v1/log/entries", logIndex=3).status_code == 404
    other_tree = "0" * 15 + "1" + ids[0][16:]
    assert rekor.get(f"/api/v1/log/entries/{other_tree}").status_code == 404
    assert rekor.get(f"/api/v1/log/entries/{'ab' * 32}").status_code == 404
    bad_id = rekor.get("/api/v1/log/entries/xyz")
    assert bad_id.status_code == 400
    assert bad_id.json()["message"] == "entry UUID must be 64 or 80 hexadecimal characters"
    bad_index = rekor.get("/api/v1/log/entries", logIndex="-1")
    assert bad_index.json() == {
        "code": 400,
        "message": "logIndex must be a non-negative decimal integer",
    }
    info = rekor.get("/api/v1/log").json()
    assert info["treeSize"] == 3
    assert info["treeID"] == str(rekor.service.tree_id)
    checkpoint = verify_checkpoint(info["signedTreeHead"], public_key=log_key)
    assert (checkpoint.size, checkpoint.root_hash.hex()) == (3, info["rootHash"])


def test_retrieve(rekor: RekorServer, signer: Signer) -> None:
    requests_ = [signer.hashedrekord(b"retrieve %d" % i) for i in range(3)]
    ids = [next(iter(rekor.post("/api/v1/log/entries", r).json())) for r in requests_]
    for path in ("/api/v1/log/entries/retrieve", "/api/v1/log/entries/retrieve/"):
        response = rekor.post(
            path,
            {"entryUUIDs": [ids[0], "cd" * 32], "logIndexes": [2, 99], "entries": [requests_[1]]},
        )
        assert response.status_code == 200, response.text
        assert [next(iter(item)) for item in response.json()] == [ids[0], ids[2], ids[1]]
    too_many = rekor.post("/api/v1/log/entries/retrieve", {"logIndexes": list(range(11))})
    assert too_many.status_code == 422
    assert too_many.json() == {
        "code": 422,
        "message": "at most 10 entries may be retrieved at once, got 11",
    }


def test_search_index(rekor: RekorServer, signer: Signer) -> None:
    bob = make_signer("Bob@Example.com")
    a = next(iter(rekor.post("/api/v1/log/entries", signer.hashedrekord(b"one")).json()))
    b = next(iter(rekor.post("/api/v1/log/entries", bob.hashedrekord(b"one")).json()))
    c = next(iter(rekor.post("/api/v1/log/entries", bob.hashedrekord(b"two")).json()))
    digest = hashlib.sha256(b"one").hexdigest()
    search = lambda body: rekor.post("/api/v1/index/retrieve", body)  # noqa: E731
    assert search({"hash": f"sha256:{digest}"}).json() == [a, b]
    assert search({"hash": digest}).json() == [a, b]
    assert search({"email": "bob@example.com"}).json() == [b, c]
    pem = base64.b64encode(bob.cert_pem).decode()
    assert search({"publicKey": {"format": "x509", "content": pem}}).json() == [b, c]
    both = {"email": "bob@example.com", "hash": f"sha256:{digest}", "operator": "and"}
    assert search(both).json() == [b]
    assert search({**both, "operator": "or"}).json() == [a, b, c]
    assert search({"hash": "sha256:" + "0" * 64}).json() == []
    empty = search({})
    assert empty.status_code == 400
    assert empty.json()["message"] == "search needs a hash, a publicKey or an email"
    assert search({"hash": "md5:abc"}).status_code == 400


def test_consistency_proofs_between_many_pairs(rekor: RekorServer, signer: Signer) -> None:
    log_key = _log_key(rekor)
    heads = {}
    for i in range(17):
        rekor.post("/api/v1/log/entries", signer.hashedrekord(b"c%d" % i))
        info = rekor.get("/api/v1/log").json()
        heads[info["treeSize"]] = verify_checkpoint(info["signedTreeHead"], public_key=log_key)
    for first in range(1, 18):
        for last in range(first, 18):
            response = rekor.get("/api/v1/log/proof", firstSize=first, lastSize=last)
            assert response.status_code == 200
            proof = response.json()
            assert proof["rootHash"] == heads[last].root_hash.hex()
            merkle.verify_consistency(
                size1=first,
                size2=last,
                proof=[bytes.fromhex(h) for h in proof["hashes"]],
                root1=heads[first].root_hash,
                root2=heads[last].root_hash,
            )
    default_first = rekor.get("/api/v1/log/proof", lastSize=5).json()
    assert default_first == rekor.get("/api/v1/log/proof", firstSize=1, lastSize=5).json()
    beyond = rekor.get("/api/v1/log/proof", firstSize=1, lastSize=18)
    assert beyond.json() == {
        "code": 400,
        "message": "no consistency proof from size 1 to 18 (log size 17)",
    }
    backwards = rekor.get("/api/v1/log/proof", firstSize=5, lastSize=4)
    assert backwards.json() == {"code": 400, "message": "firstSize 5 is greater than lastSize 4"}
    assert rekor.get("/api/v1/log/proof").json() == {"code": 400, "message": "lastSize is required"}


def test_sigstore_python_rekor_client_round_trip(rekor: RekorServer, signer: Signer) -> None:
    from sigstore._internal.rekor import _hashedrekord_from_parts
    from sigstore._internal.rekor.client import RekorClient
    from sigstore._internal.trust import Keyring
    from sigstore.hashes import Hashed
    from sigstore_models.common import v1 as common_v1

    der = rekor.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyring = Keyring(
        [
            common_v1.PublicKey(
                raw_bytes=base64.b64encode(der),
                key_details=common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
            )
        ]
    )
    client = RekorClient(rekor.url)
    entries = []
    for i in range(2):
        artifact = b"submitted by sigstore-python %d" % i
        hashed = Hashed(
            algorithm=common_v1.HashAlgorithm.SHA2_256, digest=hashlib.sha256(artifact).digest()
        )
        signature = signer.key.sign(artifact, ec.ECDSA(hashes.SHA256()))
        request = client._build_hashed_rekord_request(hashed, signature, signer.cert)
        entry = client.create_entry(request)
        entry._verify(keyring)
        entries.append((entry, hashed, signature))
    info = client.log.get()
    assert info.tree_size == 2
    assert info.tree_id == str(rekor.service.tree_id)
    by_index = client.log.entries.get(log_index=1)
    by_index._verify(keyring)
    assert by_index._inner.canonicalized_body == entries[1][0]._inner.canonicalized_body
    entry, hashed, signature = entries[0]
    expected = _hashedrekord_from_parts(signer.cert, signature, hashed)
    found = client.log.entries.retrieve.post(expected)
    assert found is not None
    found._verify(keyring)
    assert found._inner.log_index == 0
    unlogged = b"never logged"
    unlogged_hashed = Hashed(
        algorithm=common_v1.HashAlgorithm.SHA2_256, digest=hashlib.sha256(unlogged).digest()
    )
    absent = _hashedrekord_from_parts(
        signer.cert, signer.key.sign(unlogged, ec.ECDSA(hashes.SHA256())), unlogged_hashed
    )
    assert client.log.entries.retrieve.post(absent) is None
    other = _hashedrekord_from_parts(
        signer.cert, signer.key.sign(b"never logged", ec.ECDSA(hashes.SHA256())), hashed
    )
    try:
        client.log.entries.retrieve.post(other)
    except Exception as exc:  # Rekor refuses a signature that does not verify.
        assert "400" in str(exc)
    else:
        raise AssertionError("retrieve accepted a signature that does not verify")


def test_certificate_with_many_long_sans_is_logged(rekor: RekorServer) -> None:
    import datetime

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from tests.tlog.conftest import Signer

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    sans = [x509.UniformResourceIdentifier("https://example.com/" + "a" * 600)]
    sans += [x509.RFC822Name(f"user{i}@example.com") for i in range(80)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .sign(key, hashes.SHA256())
    )
    many = Signer(key, cert)
    response = rekor.post("/api/v1/log/entries", many.hashedrekord(b"many SANs"))
    assert response.status_code == 201, response.text
    entry_id = next(iter(response.json()))
    found = rekor.post("/api/v1/index/retrieve", {"email": "user3@example.com"})
    assert found.json() == [entry_id]
