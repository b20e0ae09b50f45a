"""The one reader of Rekor entry bodies (`keyless.client.entry_body`): every kind keyless's logs
write, canonicalised by the servers' own code and signed with real keys; every body in the
sigstore-conformance bundles; exact errors for bad input; and any bytes or any field replaced
either parse or fail with one `EntryBodyError` line."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyless.client.entry_body import (
    DSSE,
    MAX_BODY_BYTES,
    MAX_SIGNATURES,
    Digest,
    EntryBodyError,
    HashedRekord,
    InToto,
    Signer,
    SignerForm,
    UnknownKindError,
    parse_entry_body,
)
from keyless.core.dsse import pae
from tests.cli.forge import Instance

CONFORMANCE = Path(__file__).parents[1] / "data/sigstore-conformance/test/assets/bundle-verify"
DIGEST = hashlib.sha256(b"artifact").digest()
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PAYLOAD = b'{"_type": "https://in-toto.io/Statement/v1", "subject": []}'
DETAILS = "PKIX_ECDSA_P256_SHA_256"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def logged_entries(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> dict[str, bytes]:
    """One entry of each kind keyless reads, signed by `key` under `cert`: the v1 kinds and
    hashedrekord 0.0.2 as keyless's own logs canonicalise them; dsse 0.0.2 (which no log of
    ours takes) as rekor-tiles wrote it."""
    from keyless.tlog.rekor_kinds import canonicalize as canonicalize_v1
    from keyless.tlog.rekor_v2 import canonicalize as canonicalize_v2

    pem = cert.public_bytes(serialization.Encoding.PEM)
    der = cert.public_bytes(serialization.Encoding.DER)
    signature = key.sign(DIGEST, ec.ECDSA(Prehashed(hashes.SHA256())))
    envelope_signature = key.sign(pae(PAYLOAD_TYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": _b64(PAYLOAD),
        "signatures": [{"sig": _b64(envelope_signature)}],
    }
    verifier = {"x509Certificate": {"rawBytes": _b64(der)}, "keyDetails": DETAILS}
    v1 = {
        "hashedrekord 0.0.1": {
            "data": {"hash": {"algorithm": "sha256", "value": DIGEST.hex()}},
            "signature": {"content": _b64(signature), "publicKey": {"content": _b64(pem)}},
        },
        "dsse 0.0.1": {
            "proposedContent": {"envelope": json.dumps(envelope), "verifiers": [_b64(pem)]}
        },
        "intoto 0.0.2": {
            "content": {
                "envelope": {
                    "payloadType": PAYLOAD_TYPE,
                    "payload": _b64(_b64(PAYLOAD).encode()),
                    "signatures": [
                        {"sig": _b64(_b64(envelope_signature).encode()), "publicKey": _b64(pem)}
                    ],
                },
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(b"env").hexdigest()},
            }
        },
    }
    entries = {
        name: canonicalize_v1(
            {"kind": name.split()[0], "apiVersion": name.split()[1], "spec": spec}
        ).body
        for name, spec in v1.items()
    }
    request = {
        "digest": _b64(DIGEST),
        "signature": {"content": _b64(signature), "verifier": verifier},
    }
    entries["hashedrekord 0.0.2"] = canonicalize_v2({"hashedRekordRequestV002": request}).body
    dsse_v2 = {
        "payloadHash": {"algorithm": "SHA2_256", "digest": _b64(hashlib.sha256(PAYLOAD).digest())},
        "signatures": [{"content": _b64(envelope_signature), "verifier": verifier}],
    }
    entries["dsse 0.0.2"] = json.dumps(
        {"apiVersion": "0.0.2", "kind": "dsse", "spec": {"dsseV002": dsse_v2}}
    ).encode()
    return entries


@pytest.fixture(scope="module")
def signed() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, dict[str, bytes]]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = Instance(datetime.now(UTC)).issue_leaf(
        key, identity="signer@example.com", issuer="https://issuer.keyless.test",
        not_before=datetime.now(UTC),
    )  # fmt: skip
    return key, cert, logged_entries(key, cert)


def test_each_kind_keyless_logs_names_its_signer_once_decoded(signed) -> None:
    """Every signer is the certificate itself: intoto's `publicKey` is base64 of the PEM once
    (only its payload and signatures are base64 twice)."""
    _, cert, entries = signed
    der = cert.public_bytes(serialization.Encoding.DER)
    for name, body in entries.items():
        entry = parse_entry_body(body)
        assert f"{entry.kind} {entry.version}" == name
        [signature] = entry.signatures
        assert signature.signer.form is SignerForm.CERTIFICATE, name
        assert signature.signer.der == der, name
        rekor_v2 = name in ("hashedrekord 0.0.2", "dsse 0.0.2")
        assert signature.signer.key_details == (DETAILS if rekor_v2 else None), name


def test_what_each_kind_records(signed) -> None:
    _, _, entries = signed
    payload_hash = Digest("sha256", hashlib.sha256(PAYLOAD).digest())
    for name in ("hashedrekord 0.0.1", "hashedrekord 0.0.2"):
        entry = parse_entry_body(entries[name])
        assert isinstance(entry, HashedRekord) and entry.digest == Digest("sha256", DIGEST)
    for name in ("dsse 0.0.1", "dsse 0.0.2"):
        entry = parse_entry_body(entries[name])
        assert isinstance(entry, DSSE) and entry.payload_hash == payload_hash
    intoto = parse_entry_body(entries["intoto 0.0.2"])
    # Stored as Rekor stores it: the payload's hash and type, not the payload.
    assert isinstance(intoto, InToto)
    assert (intoto.payload, intoto.payload_hash, intoto.payload_type) == (
        None,
        payload_hash,
        PAYLOAD_TYPE,
    )


def _conformance_bodies() -> list[tuple[str, bytes]]:
    bodies = []
    for case in sorted(CONFORMANCE.iterdir()):
        try:
            bundle = json.loads((case / "bundle.sigstore.json").read_text())
            entries = bundle["verificationMaterial"]["tlogEntries"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        bodies += [(case.name, base64.b64decode(e["canonicalizedBody"])) for e in entries or []]
    return bodies


def test_conformance_bodies() -> None:
    """Every entry body of the conformance bundles, passing or failing cases: what parses, and
    the one line each of the others fails with."""
    kinds: dict[str, int] = {}
    failures = {}
    for name, body in _conformance_bodies():
        try:
            entry = parse_entry_body(body)
        except EntryBodyError as exc:
            failures[name] = str(exc)
            continue
        kinds[f"{entry.kind} {entry.version}"] = kinds.get(f"{entry.kind} {entry.version}", 0) + 1
    assert kinds == {
        "hashedrekord 0.0.1": 26,
        "hashedrekord 0.0.2": 29,
        "intoto 0.0.2": 5,
        "dsse 0.0.1": 4,
    }
    assert failures == {
        "bundle-empty-certificate-chain_fail": "entry field 'spec' is missing or not an object",
        "bundle-invalid-base64-signature_fail": (
            "entry field 'spec.signature.publicKey.content' is not a PEM certificate or public key"
        ),
        "bundle-negative-log-index_fail": "entry kind (NoneType) 0.0.1 is not one keyless reads",
        "bundle-unknown-version_fail": "entry kind (NoneType) 0.0.1 is not one keyless reads",
        "intoto-log-entry-mismatch_fail": (
            "entry field 'spec.content.envelope.signatures[0].sig' is not base64 of base64"
        ),
    }


def test_an_older_intoto_entry_keeps_the_payload() -> None:
    """The conformance intoto vector's log kept the envelope payload: it is the bundle's."""
    bundle = json.loads(
        (CONFORMANCE / "intoto-with-custom-trust-root/bundle.sigstore.json").read_text()
    )
    body = base64.b64decode(bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])
    entry = parse_entry_body(body)
    assert isinstance(entry, InToto)
    envelope = bundle["dsseEnvelope"]
    assert entry.payload == base64.b64decode(envelope["payload"])
    assert entry.payload_hash == Digest("sha256", hashlib.sha256(entry.payload).digest())
    assert entry.signatures[0].content == base64.b64decode(envelope["signatures"][0]["sig"])
    leaf = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]
    assert entry.signatures[0].signer == Signer(
        SignerForm.CERTIFICATE, base64.b64decode(leaf["rawBytes"])
    )


def _edited(body: bytes, edit) -> bytes:  # type: ignore[no-untyped-def]
    document = json.loads(body)
    edit(document)
    return json.dumps(document).encode()


def _error(body: bytes, **options: object) -> str:
    with pytest.raises(EntryBodyError) as info:
        parse_entry_body(body, **options)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return str(info.value)


def test_malformed_json_is_refused_by_strict_json() -> None:
    assert _error(b"\xff") == "entry is not UTF-8"
    assert _error(b'{"kind": "a", "kind": "b"}') == "entry has a duplicate field 'kind'"
    assert _error(b"[" * 40 + b"]" * 40) == "entry is nested deeper than 32 levels"
    assert _error(b'{"kind": NaN}') == "entry contains NaN"
    assert _error(b"[1]") == "entry is not a JSON object"
    assert _error(b" " * (MAX_BODY_BYTES + 1)) == f"entry is larger than {MAX_BODY_BYTES} bytes"
    assert _error(b"[1]", what="log body") == "log body is not a JSON object"


def test_unknown_kinds_are_named_fit_for_a_report() -> None:
    cases = {
        b'{"kind": "rekord", "apiVersion": "0.0.1"}': "rekord 0.0.1",
        b'{"kind": "dsse", "apiVersion": "0.0.3"}': "dsse 0.0.3",
        b'{"kind": ["x"], "apiVersion": 1}': "(list) (int)",
        b'{"kind": "a\\u001b[31m"}': "'a\\x1b[31m' (NoneType)",
    }
    for body, label in cases.items():
        with pytest.raises(UnknownKindError) as info:
            parse_entry_body(body)
        assert info.value.kind_label == label
        assert str(info.value) == f"entry kind {label} is not one keyless reads"


def test_the_announced_kind_is_required() -> None:
    body = json.dumps({"kind": "dsse", "apiVersion": "0.0.1", "spec": {}}).encode()
    assert _error(body, what="log body", announced=("hashedrekord", "0.0.1")) == (
        "log body is not a hashedrekord/0.0.1 entry as announced"
    )


def _set(path: str, value: object):  # type: ignore[no-untyped-def]
    """An edit that sets the field at a dotted path (list positions as numbers)."""

    def edit(document: dict) -> None:
        *parents, last = path.split(".")
        target = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return edit


_DELETE = object()
V1_PUBLIC_KEY = "spec.signature.publicKey.content"
V2_SPEC = "spec.hashedRekordV002"


@pytest.mark.parametrize(
    ("kind", "path", "value", "message"),
    [
        ("hashedrekord 0.0.1", "spec.data", _DELETE, "field 'spec.data' is missing or not an object"),
        ("hashedrekord 0.0.1", "spec.data.hash.algorithm", "md5",
         "field 'spec.data.hash.algorithm' is not one of sha256, sha384, sha512"),
        ("hashedrekord 0.0.1", "spec.data.hash.value", DIGEST.hex().upper(),
         "field 'spec.data.hash.value' is not the lowercase hex of a sha256 digest"),
        ("hashedrekord 0.0.1", "spec.data.hash.value", DIGEST.hex()[:-2],
         "field 'spec.data.hash.value' is not the lowercase hex of a sha256 digest"),
        ("hashedrekord 0.0.1", "spec.signature.content", "not base64!",
         "field 'spec.signature.content' is not base64"),
        ("hashedrekord 0.0.1", "spec.signature.content", "",
         "field 'spec.signature.content' is missing or not a non-empty string"),
        ("hashedrekord 0.0.1", "spec.signature.content", "QQ==" * 3000,
         "field 'spec.signature.content' is longer than 10926 characters"),
        ("hashedrekord 0.0.1", V1_PUBLIC_KEY, _b64(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
         f"field '{V1_PUBLIC_KEY}' is not a PEM certificate or public key"),
        ("hashedrekord 0.0.1", V1_PUBLIC_KEY, _b64(b"junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
         f"field '{V1_PUBLIC_KEY}' is not a PEM certificate or public key"),
        ("hashedrekord 0.0.1", V1_PUBLIC_KEY, _b64(b"-----BEGIN CERTIFICATE-----\nProc-Type: 4\nAAAA\n-----END CERTIFICATE-----\n"),
         f"field '{V1_PUBLIC_KEY}' is not a PEM certificate or public key"),
        ("dsse 0.0.1", "spec.signatures", [],
         f"field 'spec.signatures' is missing or not a list of 1 to {MAX_SIGNATURES} items"),
        ("dsse 0.0.1", "spec.signatures.0", "sig", "field 'spec.signatures[0]' is not an object"),
        ("dsse 0.0.1", "spec.signatures.0.verifier", _b64(b"not PEM"),
         "field 'spec.signatures[0].verifier' is not a PEM certificate or public key"),
        ("intoto 0.0.2", "spec.content.envelope.signatures.0.sig", _b64(b"\x30\x06"),
         "field 'spec.content.envelope.signatures[0].sig' is not base64 of base64"),
        ("intoto 0.0.2", "spec.content.envelope.payloadType", 7,
         "field 'spec.content.envelope.payloadType' is missing or not a non-empty string"),
        ("intoto 0.0.2", "spec.content.payloadHash.algorithm", "sha1",
         "field 'spec.content.payloadHash.algorithm' is not one of sha256, sha384, sha512"),
        ("hashedrekord 0.0.2", "spec.hashedRekordV0_0_2", {},
         "field 'spec' holds not exactly one of hashedRekordV002, hashedRekordV0_0_2"),
        ("hashedrekord 0.0.2", f"{V2_SPEC}.data.algorithm", "MD5",
         f"field '{V2_SPEC}.data.algorithm' is not one of SHA2_256, SHA2_384, SHA2_512"),
        ("hashedrekord 0.0.2", f"{V2_SPEC}.data.digest", _b64(b"\x00" * 48),
         f"field '{V2_SPEC}.data.digest' is not a sha256 digest"),
        ("hashedrekord 0.0.2", f"{V2_SPEC}.signature.verifier.publicKey", {"rawBytes": "AAAA"},
         f"field '{V2_SPEC}.signature.verifier' holds neither or both of x509Certificate and publicKey"),
        ("hashedrekord 0.0.2", f"{V2_SPEC}.signature.verifier.keyDetails", _DELETE,
         f"field '{V2_SPEC}.signature.verifier.keyDetails' is missing or not a non-empty string"),
        ("hashedrekord 0.0.2", f"{V2_SPEC}.signature.verifier.x509Certificate.rawBytes", "!!",
         f"field '{V2_SPEC}.signature.verifier.x509Certificate.rawBytes' is not base64"),
        ("dsse 0.0.2", "spec.dsseV002.payloadHash.digest", _b64(b"\x00" * 31),
         "field 'spec.dsseV002.payloadHash.digest' is not a sha256 digest"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else "",
)  # fmt: skip
def test_a_bad_field_is_named(signed, kind: str, path: str, value: object, message: str) -> None:
    _, _, entries = signed
    assert _error(_edited(entries[kind], _set(path, value))) == f"entry {message}"


def test_more_signatures_than_the_bound_are_refused(signed) -> None:
    _, _, entries = signed

    def many(document: dict) -> None:
        document["spec"]["signatures"] *= MAX_SIGNATURES + 1

    assert _error(_edited(entries["dsse 0.0.1"], many)) == (
        f"entry field 'spec.signatures' is missing or not a list of 1 to {MAX_SIGNATURES} items"
    )


def test_a_pem_chain_names_its_first_certificate(signed) -> None:
    """Rekor writes a certificate chain as several PEM blocks: the leaf, first, is the signer."""
    _, cert, entries = signed
    other = Instance(datetime.now(UTC)).root_cert.public_bytes(serialization.Encoding.PEM)
    chain = cert.public_bytes(serialization.Encoding.PEM).replace(b"\n", b"\r\n") + other
    entry = parse_entry_body(
        _edited(entries["hashedrekord 0.0.1"], _set(V1_PUBLIC_KEY, _b64(chain)))
    )
    assert entry.signatures[0].signer.der == cert.public_bytes(serialization.Encoding.DER)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(data=st.binary(max_size=512))
def test_any_bytes_parse_or_fail_with_one_line(data: bytes) -> None:
    try:
        parse_entry_body(data)
    except EntryBodyError as exc:
        assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 300


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["hashedrekord 0.0.1", "dsse 0.0.1", "intoto 0.0.2",
                             "hashedrekord 0.0.2", "dsse 0.0.2"]),
       choice=st.integers(min_value=0), value=json_values)  # fmt: skip
def test_any_field_replaced_parses_or_fails_with_one_line(signed, name, choice, value) -> None:
    _, _, entries = signed
    document = json.loads(entries[name])
    paths: list[list[object]] = []

    def walk(node: object, path: list[object]) -> None:
        paths.append(path)
        children = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, child in children:
            walk(child, [*path, key])

    walk(document, [])
    path = paths[choice % len(paths)]
    changed = copy.deepcopy(document)
    if path:
        target = changed
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    else:
        changed = value
    try:
        parse_entry_body(json.dumps(changed).encode())
    except EntryBodyError as exc:
        assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 300
