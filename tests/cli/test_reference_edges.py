"""Verification edge cases where keyless disagreed with the reference clients (issue 23), one
section per class, each built from public data: sigstore-conformance bundles, the public-good
production root, and (as an oracle) sigstore-python's own verifier."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyless.client.bundle import Bundle
from keyless.client.trust import TrustedRoot, load_trusted_root
from keyless.client.verify import AllOf, Identity, Issuer, VerificationError, Verifier
from tests.conftest import DATA

CASES = DATA / "sigstore-conformance/test/assets/bundle-verify"
PRODUCTION_ROOT = DATA / "sigstore-trust-roots/production_trusted_root.json"
ARTIFACT = (CASES / "a.txt").read_bytes()
IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"
POLICY = AllOf([Identity(IDENTITY), Issuer(ISSUER)])
NOW = datetime.now(UTC)


def _bundle(case: str) -> dict:
    return json.loads((CASES / case / "bundle.sigstore.json").read_text())


def _verify(bundle: dict, root: TrustedRoot) -> object:
    return Verifier(root).verify(
        Bundle.from_json(json.dumps(bundle)),
        sha256=hashlib.sha256(ARTIFACT).digest(),
        policy=POLICY,
        now=NOW,
    )


def _refusal(bundle: dict, root: TrustedRoot) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        _verify(bundle, root)
    return info.value


def _sigstore_python_verifies(bundle: dict, root: Path | str) -> None:
    """sigstore-python's verdict on the same bundle and root (raises when it refuses)."""
    from sigstore.models import Bundle as TheirBundle
    from sigstore.models import TrustedRoot as TheirRoot
    from sigstore.verify import Verifier as TheirVerifier
    from sigstore.verify import policy

    TheirVerifier(trusted_root=TheirRoot.from_file(str(root))).verify_artifact(
        ARTIFACT,
        TheirBundle.from_json(json.dumps(bundle)),
        policy.Identity(identity=IDENTITY, issuer=ISSUER),
    )


# 1. A bundle's certificate chain that includes the root.


def _production_ca_chain() -> list[dict]:
    """The public-good CA chain that signed happy-path-v0.1's leaf: intermediate, then root."""
    root = json.loads(PRODUCTION_ROOT.read_text())
    [chain] = [
        ca["certChain"]["certificates"]
        for ca in root["certificateAuthorities"]
        if len(ca["certChain"]["certificates"]) == 2
    ]
    return chain


def _with_chain(extra: list[dict]) -> dict:
    bundle = _bundle("happy-path-v0.1")
    bundle["verificationMaterial"]["x509CertificateChain"]["certificates"] += extra
    return bundle


def test_a_chain_shipping_the_trusted_roots_own_root_verifies() -> None:
    # sigstore-go reads only the leaf of the chain; sigstore-python warns and verifies.
    bundle = _with_chain(_production_ca_chain())
    result = _verify(bundle, load_trusted_root(PRODUCTION_ROOT))
    assert result.identity == IDENTITY
    _sigstore_python_verifies(bundle, PRODUCTION_ROOT)


def test_a_chain_shipping_another_root_is_refused() -> None:
    # The root sigstore-conformance's bundle-with-root-cert_fail ships: named like the
    # public-good root, but not it.
    [_, foreign_root, _] = _bundle("bundle-with-root-cert_fail")["verificationMaterial"][
        "x509CertificateChain"
    ]["certificates"]
    bundle = _with_chain([_production_ca_chain()[0], foreign_root])
    refusal = _refusal(bundle, load_trusted_root(PRODUCTION_ROOT))
    assert (refusal.check, refusal.detail) == (
        "certificate-chain",
        "the bundle's certificate chain contains a root that is not in the trusted root "
        "(CN=sigstore,O=sigstore.dev)",
    )


# 2. A malformed RFC 3161 response inside a bundle fails the bundle; a well-formed one from an
#    untrusted TSA is still reported, not counted (tests/cli/test_reference_agreement.py).


def _freetsa_response() -> dict:
    """FreeTSA's real response from sigstore-conformance: not strict DER (its SET OF
    certificates is unsorted), so no strict parser reads it."""
    case = _bundle("rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail")
    return case["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]


def _truncated(stamp: dict) -> dict:
    raw = base64.b64decode(stamp["signedTimestamp"])
    return {"signedTimestamp": base64.b64encode(raw[:-40]).decode()}


@pytest.mark.parametrize("malformed", ["freetsa-not-der", "truncated", "not-asn1"])
def test_a_malformed_timestamp_beside_a_valid_one_fails_the_bundle(malformed: str) -> None:
    bundle = _bundle("rekor2-happy-path")
    stamps = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    bad = {
        "freetsa-not-der": _freetsa_response,
        "truncated": lambda: _truncated(stamps[0]),
        "not-asn1": lambda: {"signedTimestamp": base64.b64encode(b"not a response").decode()},
    }[malformed]()
    root = CASES / "rekor2-happy-path/trusted_root.json"
    # The bundle verifies with its one valid timestamp alone.
    _verify(bundle, load_trusted_root(root))
    stamps.append(bad)
    refusal = _refusal(bundle, load_trusted_root(root))
    assert (refusal.check, refusal.detail) == (
        "timestamp",
        "timestamp #1 is not a valid DER TimeStampResp",
    )
    from sigstore.errors import VerificationError as TheirVerificationError

    with pytest.raises(TheirVerificationError, match=r"^Invalid Timestamp Response$"):
        _sigstore_python_verifies(bundle, root)


def test_a_malformed_timestamp_fails_a_bundle_its_set_would_carry() -> None:
    bundle = _bundle("happy-path-v0.3")
    bundle["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [_freetsa_response()]
    }
    refusal = _refusal(bundle, load_trusted_root(PRODUCTION_ROOT))
    assert (refusal.check, refusal.detail) == (
        "timestamp",
        "timestamp #0 is not a valid DER TimeStampResp",
    )


# 3. A trusted root whose CA chain is listed root first.


def _reversed_chains(root_file: Path, field: str, tmp_path: Path) -> Path:
    """A copy of `root_file` with every chain under `field` listed root first."""
    root = json.loads(root_file.read_text())
    for authority in root[field]:
        authority["certChain"]["certificates"].reverse()
    reversed_file = tmp_path / "trusted_root.json"
    reversed_file.write_text(json.dumps(root))
    return reversed_file


def test_a_ca_chain_listed_root_first_is_read_leaf_side_first(tmp_path: Path) -> None:
    root_first = _reversed_chains(PRODUCTION_ROOT, "certificateAuthorities", tmp_path)
    loaded = load_trusted_root(root_first)
    as_listed = load_trusted_root(PRODUCTION_ROOT)
    assert [ca.certificates for ca in loaded.certificate_authorities] == [
        ca.certificates for ca in as_listed.certificate_authorities
    ]
    bundle = _bundle("happy-path-v0.3")
    assert _verify(bundle, loaded).identity == IDENTITY
    _sigstore_python_verifies(bundle, root_first)


def test_a_ca_chain_that_links_in_neither_order_is_refused(tmp_path: Path) -> None:
    root = json.loads(PRODUCTION_ROOT.read_text())
    [ca] = [c for c in root["certificateAuthorities"] if len(c["certChain"]["certificates"]) == 2]
    foreign_root = _bundle("bundle-with-root-cert_fail")["verificationMaterial"][
        "x509CertificateChain"
    ]["certificates"][1]
    ca["certChain"]["certificates"][1] = foreign_root
    with pytest.raises(VerificationError) as info:
        TrustedRoot.from_json(json.dumps(root))
    assert (info.value.check, info.value.detail) == (
        "trust-root",
        "certificateAuthorities entry https://fulcio.sigstore.dev: "
        "CN=sigstore-intermediate,O=sigstore.dev is not issued by the next certificate of its "
        "chain",
    )


def test_a_tsa_chain_listed_root_first_is_still_refused(tmp_path: Path) -> None:
    # Its first certificate is the TSA's: sigstore-python, too, then verifies no timestamp.
    from sigstore.errors import VerificationError as TheirVerificationError

    root_first = _reversed_chains(
        CASES / "rekor2-happy-path/trusted_root.json", "timestampAuthorities", tmp_path
    )
    with pytest.raises(VerificationError) as info:
        load_trusted_root(root_first)
    assert (info.value.check, info.value.detail) == (
        "trust-root",
        "timestampAuthorities entry https://timestamp.sigstage.dev/api/v1/timestamp: "
        "CN=sigstore-tsa-selfsigned,O=sigstore.dev is not issued by the next certificate of "
        "its chain",
    )
    with pytest.raises(TheirVerificationError):
        _sigstore_python_verifies(_bundle("rekor2-happy-path"), root_first)
