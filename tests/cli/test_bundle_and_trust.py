"""Loading bundles and trusted roots: each malformed input is refused with its own message."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from pathlib import Path

import pytest

from keyless.client import bundle as bundle_module
from keyless.client.bundle import Bundle, load_bundle
from keyless.client.trust import (
    TrustedRoot,
    load_trust_config,
    load_trusted_root,
    production_trusted_root,
    staging_trusted_root,
)
from keyless.client.trust import model as trust_module
from keyless.client.verify import BundleError, TrustRootError
from tests.cli.forge import Instance, dumps

ARTIFACT = b"artifact\n"
DATA_DIR = Path(bundle_module.__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def valid(instance: Instance) -> dict:
    return instance.sign(ARTIFACT)


def _bundle_error(doc: dict | str) -> str:
    with pytest.raises(BundleError) as info:
        Bundle.from_json(doc if isinstance(doc, str) else dumps(doc))
    assert info.value.check == "bundle"
    return info.value.detail


def _v01(valid: dict) -> dict:
    doc = copy.deepcopy(valid)
    doc["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
    cert = doc["verificationMaterial"].pop("certificate")
    doc["verificationMaterial"]["x509CertificateChain"] = {"certificates": [cert]}
    return doc


def test_valid_bundle_parses(valid: dict) -> None:
    parsed = Bundle.from_json(dumps(valid))
    assert parsed.version == "0.3"
    assert parsed.leaf is not None
    assert parsed.envelope is None


def test_v01_chain_bundle_parses(valid: dict) -> None:
    assert Bundle.from_json(dumps(_v01(valid))).version == "0.1"


def test_malformed_json() -> None:
    assert _bundle_error('{"mediaType": ') == (
        "bundle is not valid JSON: Expecting value: line 1 column 15 (char 14)"
    )


def test_oversized_bundle(monkeypatch: pytest.MonkeyPatch, valid: dict) -> None:
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 100)
    assert _bundle_error(valid) == "bundle is larger than 100 bytes"


def test_unknown_media_type(valid: dict) -> None:
    doc = dict(valid, mediaType="application/vnd.dev.sigstore.bundle+json;version=9.9")
    assert _bundle_error(doc).startswith("malformed bundle: mediaType: Input should be")


def test_unknown_field(valid: dict) -> None:
    doc = dict(valid, extra="x")
    assert _bundle_error(doc) == "malformed bundle: extra: Extra inputs are not permitted"


def test_integer_log_index(valid: dict) -> None:
    doc = copy.deepcopy(valid)
    doc["verificationMaterial"]["tlogEntries"][0]["logIndex"] = 3
    assert "Expected protobuf uint64 as string" in _bundle_error(doc)


def test_v03_with_chain(valid: dict) -> None:
    doc = _v01(valid)
    doc["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert _bundle_error(doc) == "a v0.3 bundle must carry a single `certificate`, not a chain"


def test_v01_with_single_certificate(valid: dict) -> None:
    doc = dict(valid, mediaType="application/vnd.dev.sigstore.bundle+json;version=0.1")
    assert _bundle_error(doc) == "a v0.1 bundle must carry an x509CertificateChain"


def test_chain_with_root_ca_is_kept_for_the_verifier(instance: Instance, valid: dict) -> None:
    # Whether a shipped root is allowed depends on the trusted root: the verifier decides
    # (tests/cli/test_reference_edges.py).
    from cryptography.hazmat.primitives.serialization import Encoding

    doc = _v01(valid)
    root = base64.b64encode(instance.root_cert.public_bytes(Encoding.DER)).decode()
    doc["verificationMaterial"]["x509CertificateChain"]["certificates"].append({"rawBytes": root})
    assert Bundle.from_json(dumps(doc)).chain == (instance.root_cert,)


def test_ca_in_leaf_position(instance: Instance, valid: dict) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    doc = copy.deepcopy(valid)
    der = base64.b64encode(instance.inter_cert.public_bytes(Encoding.DER)).decode()
    doc["verificationMaterial"]["certificate"] = {"rawBytes": der}
    assert _bundle_error(doc) == "the first certificate of the bundle is a CA, not a signing leaf"


def test_certificate_not_der(valid: dict) -> None:
    doc = copy.deepcopy(valid)
    doc["verificationMaterial"]["certificate"] = {"rawBytes": base64.b64encode(b"junk").decode()}
    assert _bundle_error(doc).startswith("bundle certificate is not valid DER")


def test_two_log_entries(valid: dict) -> None:
    doc = copy.deepcopy(valid)
    entries = doc["verificationMaterial"]["tlogEntries"]
    entries.append(entries[0])
    assert _bundle_error(doc) == "expected exactly one transparency log entry, got 2"


def test_no_log_entry(valid: dict) -> None:
    doc = copy.deepcopy(valid)
    doc["verificationMaterial"]["tlogEntries"] = []
    assert _bundle_error(doc) == (
        "expected exactly one transparency log entry, got 0 (and no RFC 3161 timestamp)"
    )


def test_v01_without_promise(valid: dict) -> None:
    doc = _v01(valid)
    del doc["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
    assert _bundle_error(doc) == "a v0.1 bundle must carry an inclusion promise (SET)"


def test_v03_without_checkpoint(valid: dict) -> None:
    doc = copy.deepcopy(valid)
    del doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
    assert _bundle_error(doc) == "a v0.3 bundle must carry a checkpoint in its proof"


def test_v03_without_any_time_source(valid: dict) -> None:
    doc = copy.deepcopy(valid)
    del doc["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
    assert _bundle_error(doc) == (
        "bundle has neither an inclusion promise nor an RFC 3161 timestamp"
    )


def test_proof_index_beyond_tree(valid: dict) -> None:
    doc = copy.deepcopy(valid)
    doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["logIndex"] = "6"
    assert "logIndex 6 must be less than treeSize 6" in _bundle_error(doc)


def test_too_many_proof_hashes(valid: dict) -> None:
    doc = copy.deepcopy(valid)
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["hashes"] = proof["hashes"] * 30
    assert _bundle_error(doc) == "inclusion proof has more than 64 hashes"


def test_duplicate_timestamps(valid: dict) -> None:
    doc = copy.deepcopy(valid)
    stamp = {"signedTimestamp": base64.b64encode(b"same").decode()}
    doc["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": [stamp] * 2}
    assert _bundle_error(doc) == "bundle carries the same RFC 3161 timestamp twice"


def test_both_signature_kinds(valid: dict) -> None:
    doc = dict(valid, dsseEnvelope={"payload": "", "payloadType": "x", "signatures": []})
    assert "Exactly one of messageSignature or dsseEnvelope" in _bundle_error(doc)


def test_dsse_with_two_signatures(valid: dict) -> None:
    doc = {k: v for k, v in valid.items() if k != "messageSignature"}
    sig = {"sig": base64.b64encode(b"s").decode(), "keyid": ""}
    doc["dsseEnvelope"] = {"payload": "e30=", "payloadType": "t", "signatures": [sig, sig]}
    assert _bundle_error(doc) == "a DSSE envelope must carry exactly one signature"


def test_unreadable_bundle_file(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as info:
        load_bundle(tmp_path / "missing.json")
    assert info.value.detail.startswith("cannot read bundle ")


# Trusted roots.


def _root_error(doc: dict | str) -> str:
    with pytest.raises(TrustRootError) as info:
        TrustedRoot.from_json(doc if isinstance(doc, str) else dumps(doc))
    assert info.value.check == "trust-root"
    return info.value.detail


def test_trusted_root_parses_keys_once(instance: Instance) -> None:
    root = TrustedRoot.from_json(dumps(instance.trusted_root()))
    assert list(root.tlogs) == [instance.log_id]
    assert list(root.ctlogs) == [instance.ct_log_id]
    assert root.certificate_authorities[0].certificates[-1] == instance.root_cert


def test_trusted_root_key_without_validity_is_unbounded(instance: Instance) -> None:
    # The schema makes a key's validFor optional; sigstore-python and sigstore-js read a
    # missing one as unbounded (tests/cli/test_reference_agreement.py verifies with it).
    doc = instance.trusted_root()
    del doc["tlogs"][0]["publicKey"]["validFor"]
    log = TrustedRoot.from_json(dumps(doc)).tlogs[instance.log_id]
    assert log.valid_for.start is None and log.valid_for.end is None
    assert log.valid_for.describe() == "unbounded..open"


def test_trusted_root_authority_without_validity(instance: Instance) -> None:
    # A CA's validFor is required by the schema, and stays required.
    doc = instance.trusted_root()
    del doc["certificateAuthorities"][0]["validFor"]
    assert _root_error(doc) == (
        "malformed trusted root: certificateAuthorities.0.validFor: Field required"
    )


def test_trusted_root_validity_without_start(instance: Instance) -> None:
    doc = instance.trusted_root()
    doc["ctlogs"][0]["publicKey"]["validFor"] = {"end": "2030-01-01T00:00:00Z"}
    assert _root_error(doc) == (
        "malformed trusted root: ctlogs.0.publicKey.validFor.start: Field required"
    )


def test_trusted_root_naive_time(instance: Instance) -> None:
    doc = instance.trusted_root()
    doc["tlogs"][0]["publicKey"]["validFor"] = {"start": "2025-01-01T00:00:00"}
    assert _root_error(doc) == "trusted root validFor times must carry a UTC offset"


def test_trusted_root_unusable_key(instance: Instance) -> None:
    doc = instance.trusted_root()
    doc["tlogs"][0]["publicKey"]["rawBytes"] = base64.b64encode(b"not a key").decode()
    assert _root_error(doc) == "tlogs entry https://log.keyless.test has an unusable key"


def test_trusted_root_duplicate_log(instance: Instance) -> None:
    doc = instance.trusted_root()
    doc["tlogs"].append(doc["tlogs"][0])
    assert _root_error(doc) == f"tlogs lists log ID {instance.log_id.hex()} twice"


def test_trusted_root_empty_ca_chain(instance: Instance) -> None:
    doc = instance.trusted_root()
    doc["certificateAuthorities"][0]["certChain"]["certificates"] = []
    assert _root_error(doc) == (
        "certificateAuthorities entry https://ca.keyless.test has an empty certificate chain"
    )


def test_trusted_root_bad_media_type(instance: Instance) -> None:
    doc = dict(instance.trusted_root(), mediaType="application/json")
    assert _root_error(doc).startswith("malformed trusted root: mediaType: Input should be")


def test_trusted_root_oversized(monkeypatch: pytest.MonkeyPatch, instance: Instance) -> None:
    monkeypatch.setattr(trust_module, "MAX_TRUSTED_ROOT_BYTES", 10)
    assert _root_error(instance.trusted_root()) == "trusted root is larger than 10 bytes"


def test_trusted_root_file_missing(tmp_path: Path) -> None:
    with pytest.raises(TrustRootError) as info:
        load_trusted_root(tmp_path / "nope.json")
    assert info.value.detail.startswith("cannot read trusted root ")


def test_trust_config_reads_its_root(instance: Instance, tmp_path: Path) -> None:
    config = {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": instance.trusted_root(),
        "signingConfig": {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert list(load_trust_config(path).tlogs) == [instance.log_id]


def test_shipped_roots_match_their_provenance() -> None:
    provenance = (DATA_DIR / "PROVENANCE.md").read_text()
    shipped = (
        "production_trusted_root.json",
        "staging_trusted_root.json",
        "production_signing_config.v0.2.json",
    )
    for name in shipped:
        digest = hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest()
        assert digest in provenance, name
    assert len(re.findall(r"`[0-9a-f]{64}`", provenance)) == len(shipped)
    assert len(production_trusted_root().tlogs) >= 2
    assert len(staging_trusted_root().certificate_authorities) >= 1


# Defects found by mutating valid bundles: each must be a named error, never an exception.


def test_leaf_with_malformed_sct_list(instance: Instance) -> None:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    valid = instance.sign(ARTIFACT)
    good = cx509.load_der_x509_certificate(
        base64.b64decode(valid["verificationMaterial"]["certificate"]["rawBytes"])
    )
    builder = (
        cx509.CertificateBuilder()
        .subject_name(good.subject)
        .issuer_name(good.issuer)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(1)
        .not_valid_before(good.not_valid_before_utc)
        .not_valid_after(good.not_valid_after_utc)
        .add_extension(
            cx509.UnrecognizedExtension(
                cx509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"), b"\x04\x04\x00\x05\x00\x01"
            ),
            False,
        )
    )
    bad = builder.sign(instance.inter_key, hashes.SHA256())
    doc = copy.deepcopy(valid)
    doc["verificationMaterial"]["certificate"]["rawBytes"] = base64.b64encode(
        bad.public_bytes(Encoding.DER)
    ).decode()
    assert _bundle_error(doc).startswith("the signing certificate is malformed: ")


def test_truncated_rfc3161_timestamp(vectors: Path) -> None:
    from datetime import UTC, datetime

    from keyless.client.verify import AllOf, Identity, Issuer, VerificationError, Verifier

    case = vectors / "sigstore-conformance/test/assets/bundle-verify/rekor2-happy-path"
    doc = json.loads((case / "bundle.sigstore.json").read_text())
    stamps = doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    raw = base64.b64decode(stamps[0]["signedTimestamp"])
    stamps[0]["signedTimestamp"] = base64.b64encode(raw[:-40]).decode()
    verifier = Verifier(load_trusted_root(case / "trusted_root.json"))
    with pytest.raises(VerificationError) as info:
        verifier.verify(
            Bundle.from_json(json.dumps(doc)),
            sha256=hashlib.sha256((case.parent / "a.txt").read_bytes()).digest(),
            policy=AllOf([Identity("x"), Issuer("y")]),
            now=datetime.now(UTC),
        )
    assert info.value.check == "timestamp"
    # A malformed response fails the bundle by itself (tests/cli/test_reference_edges.py).
    assert info.value.detail == "timestamp #0 is not a valid DER TimeStampResp"


def test_trusted_root_key_of_unknown_algorithm(instance: Instance) -> None:
    doc = instance.trusted_root()
    spki = bytearray(base64.b64decode(doc["tlogs"][0]["publicKey"]["rawBytes"]))
    # Turn the id-ecPublicKey OID (1.2.840.10045.2.1) into an unknown one.
    at = bytes(spki).index(bytes.fromhex("2a8648ce3d0201"))
    spki[at + 6] = 0x11
    doc["tlogs"][0]["publicKey"]["rawBytes"] = base64.b64encode(bytes(spki)).decode()
    assert _root_error(doc) == "tlogs entry https://log.keyless.test has an unusable key"


def test_trusted_root_dsa_key(instance: Instance) -> None:
    from cryptography.hazmat.primitives.asymmetric import dsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    doc = instance.trusted_root()
    key = dsa.generate_private_key(2048).public_key()
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    doc["ctlogs"][0]["publicKey"]["rawBytes"] = base64.b64encode(der).decode()
    assert _root_error(doc).startswith("ctlogs entry https://ct.keyless.test has an unsupported ")


def test_trusted_root_broken_ca_chain(instance: Instance, other_instance: Instance) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    doc = instance.trusted_root()
    foreign_root = base64.b64encode(other_instance.root_cert.public_bytes(Encoding.DER)).decode()
    doc["certificateAuthorities"][0]["certChain"]["certificates"][1] = {"rawBytes": foreign_root}
    assert _root_error(doc) == (
        "certificateAuthorities entry https://ca.keyless.test: CN=keyless-intermediate,"
        "O=keyless.test is not issued by the next certificate of its chain"
    )


def test_the_trust_model_needs_no_network_tuf_or_posix_only_module() -> None:
    """Issue 19: the pure trust model apart from the TUF client (network, cache, lock)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from keyless.client.trust import load_trust_config, production_trusted_root\n"
        "production_trusted_root()\n"
        "heavy = ('fcntl', 'tuf', 'requests', 'urllib3', 'keyless.client.trust.tuf')\n"
        "print(sorted(m for m in heavy if m in sys.modules and m not in before))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"
