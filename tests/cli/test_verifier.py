"""The verification checklist against forged bundles that differ from a valid one in one way."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.client.bundle import Bundle
from keyless.client.trust import TrustedRoot
from keyless.client.verify import (
    AllOf,
    AnyOf,
    ExtensionEquals,
    Identity,
    IdentityRegexp,
    Issuer,
    IssuerRegexp,
    VerificationError,
    Verifier,
)
from tests.cli.conftest import START
from tests.cli.forge import Instance, dumps

ARTIFACT = b"release-1.0.tar.gz contents\n"
SHA256 = hashlib.sha256(ARTIFACT).digest()
ALICE = "alice@example.com"
ISSUER = "https://issuer.keyless.test"
LATER = datetime(2026, 6, 1, tzinfo=UTC)  # long after every forged certificate expired
POLICY = AllOf([Identity(ALICE), Issuer(ISSUER)])


def _verifier(instance: Instance, **root_options: object) -> Verifier:
    return Verifier(TrustedRoot.from_json(dumps(instance.trusted_root(**root_options))))


def _verify(instance: Instance, bundle: dict, *, policy=POLICY, now=LATER, sha256=SHA256, **kw):
    return _verifier(instance, **kw).verify(
        Bundle.from_json(dumps(bundle)), sha256=sha256, policy=policy, now=now
    )


def _failure(instance: Instance, bundle: dict, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        _verify(instance, bundle, **kwargs)
    return info.value


def test_valid_bundle_verifies_long_after_the_certificate_expired(instance: Instance) -> None:
    result = _verify(instance, instance.sign(ARTIFACT))
    assert result.identity == ALICE
    assert result.issuer == ISSUER
    assert result.log_index == 3
    assert result.signed_times == (START + timedelta(days=1, minutes=1),)


def test_wrong_identity(instance: Instance) -> None:
    error = _failure(instance, instance.sign(ARTIFACT), policy=Identity("bob@example.com"))
    assert error.check == "identity"
    assert error.detail == (
        'certificate identity "alice@example.com" does not match expected "bob@example.com"'
    )


def test_wrong_issuer(instance: Instance) -> None:
    error = _failure(
        instance, instance.sign(ARTIFACT), policy=AllOf([Identity(ALICE), Issuer("https://x")])
    )
    assert error.check == "issuer"
    assert error.detail == (
        'certificate OIDC issuer "https://issuer.keyless.test" does not match expected "https://x"'
    )


def test_regexp_is_anchored(instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT, identity="alice@example.com.evil.org")
    error = _failure(instance, bundle, policy=IdentityRegexp(r"alice@example\.com"))
    assert error.check == "identity"
    assert "anchored regexp" in error.detail
    # The same regexp accepts the exact identity, and a whole-value pattern accepts the other.
    _verify(instance, instance.sign(ARTIFACT), policy=IdentityRegexp(r"alice@example\.com"))
    _verify(instance, bundle, policy=IdentityRegexp(r"alice@example\.com\..*"))


def test_issuer_regexp_is_anchored(instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT)
    error = _failure(instance, bundle, policy=IssuerRegexp(r"https://issuer"))
    assert error.check == "issuer"
    _verify(instance, bundle, policy=IssuerRegexp(r"https://issuer\.keyless\.test"))


def test_github_claims(instance: Instance) -> None:
    extra = {5: "octo/repo", 6: "refs/heads/main", 3: "a" * 40, 2: "push", 4: "release"}
    bundle = instance.sign(
        ARTIFACT, identity="https://github.com/octo/repo/.github/w.yml@x", extra=extra
    )
    policy = AllOf(
        [
            IdentityRegexp(r"https://github\.com/octo/repo/.*"),
            ExtensionEquals(arc=5, name="github-workflow-repository", value="octo/repo"),
            ExtensionEquals(arc=2, name="github-workflow-trigger", value="push"),
        ]
    )
    _verify(instance, bundle, policy=policy)
    wrong = ExtensionEquals(arc=6, name="github-workflow-ref", value="refs/heads/evil")
    error = _failure(instance, bundle, policy=wrong)
    assert error.check == "github-workflow-ref"
    assert error.detail == (
        'certificate github-workflow-ref "refs/heads/main" does not match '
        'expected "refs/heads/evil"'
    )


def test_absent_github_claim(instance: Instance) -> None:
    wrong = ExtensionEquals(arc=4, name="github-workflow-name", value="release")
    error = _failure(instance, instance.sign(ARTIFACT), policy=wrong)
    assert (
        error.detail == 'certificate github-workflow-name absent does not match expected "release"'
    )


def test_any_of_accepts_one_match(instance: Instance) -> None:
    policy = AnyOf([Identity("bob@example.com"), Identity(ALICE)])
    _verify(instance, instance.sign(ARTIFACT), policy=policy)


@pytest.mark.parametrize("combinator", [AllOf, AnyOf], ids=["empty-allof", "empty-anyof"])
def test_empty_combinators_are_refused(combinator) -> None:
    with pytest.raises(ValueError, match="at least one policy"):
        combinator([])


def test_invalid_regexp_is_refused() -> None:
    with pytest.raises(VerificationError) as info:
        IdentityRegexp("(unclosed")
    assert info.value.check == "policy"


def test_tampered_artifact(instance: Instance) -> None:
    error = _failure(instance, instance.sign(ARTIFACT), sha256=hashlib.sha256(b"evil").digest())
    assert error.check == "message-digest"


def test_tampered_artifact_without_message_digest_hint(instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT)
    del bundle["messageSignature"]["messageDigest"]
    error = _failure(instance, bundle, sha256=hashlib.sha256(b"evil").digest())
    assert error.check == "signature"
    assert error.detail == "the signature over the artifact does not verify with the signing key"


def test_log_entry_swapped_with_another_signing(instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT)
    other = instance.sign(ARTIFACT)
    bundle["verificationMaterial"]["tlogEntries"] = other["verificationMaterial"]["tlogEntries"]
    error = _failure(instance, bundle)
    assert error.check == "log-body"
    assert error.detail == "log entry signature does not match the bundle signature"


def test_certificate_from_a_ca_not_in_the_trust_root(instance: Instance) -> None:
    rogue = Instance(start=START, ct_key=instance.ct_key, log_key=instance.log_key)
    error = _failure(instance, rogue.sign(ARTIFACT))
    assert error.check == "certificate-chain"
    assert "does not chain to a trusted CA" in error.detail


def test_bundle_from_another_instance(instance: Instance, other_instance: Instance) -> None:
    error = _failure(instance, other_instance.sign(ARTIFACT))
    assert error.check == "log-entry"
    assert "is not a transparency log in the trusted root" in error.detail


def test_sct_from_an_untrusted_ct_log(instance: Instance, other_instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT, sct_key=other_instance.ct_key)
    error = _failure(instance, bundle)
    assert error.check == "sct"
    assert error.detail.startswith("no SCT is from a CT log in the trusted root")


def test_a_signing_key_sigstore_has_no_name_for_is_refused(instance: Instance) -> None:
    # secp256k1 has no PublicKeyDetails. Before core.keys, the ECDSA check took any curve and
    # only a Rekor v2 entry's key details (then the string "unsupported") could refuse it.
    bundle = instance.sign(ARTIFACT, signing_key=ec.generate_private_key(ec.SECP256K1()))
    error = _failure(instance, bundle)
    assert error.check == "signature"
    assert error.detail == "unsupported signing key type ECDSA secp256k1"


def test_signed_time_in_the_future(instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT)
    error = _failure(instance, bundle, now=START)
    assert error.check == "time"
    assert "is in the future" in error.detail


def test_log_key_expired_before_integration(instance: Instance) -> None:
    error = _failure(instance, instance.sign(ARTIFACT), log_end=START + timedelta(hours=1))
    assert error.check == "log-entry"
    assert "is outside the validity" in error.detail


def test_sct_time_outside_the_ct_log_key_validity(instance: Instance) -> None:
    error = _failure(instance, instance.sign(ARTIFACT), ct_end=START + timedelta(hours=1))
    assert error.check == "sct"
    # RFC 3339 with Z, as every other time in a verification message (core.encoding).
    assert error.detail.startswith(
        f"SCT time {(START + timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ')} is outside"
    ), error.detail


def test_integrated_time_outside_certificate_validity(instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT)
    late = instance.sign(ARTIFACT, signed_at=START + timedelta(days=2))
    bundle["verificationMaterial"]["tlogEntries"] = late["verificationMaterial"]["tlogEntries"]
    error = _failure(instance, bundle)
    assert error.check == "certificate-validity"
    assert error.detail.startswith("signed time 2025-01-03T00:01:00Z is outside the certificate")


def test_inclusion_proof_hash_flipped(instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT)
    proof = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["hashes"][0] = proof["hashes"][1]
    error = _failure(instance, bundle)
    assert error.check == "inclusion-proof"
    assert error.detail.startswith("inclusion proof does not match checkpoint root")


def test_checkpoint_signed_by_another_log(instance: Instance, other_instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT)
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    forged = other_instance.log_entry(
        json.dumps({}).encode(), integrated_at=START + timedelta(days=1)
    )
    entry["inclusionProof"]["checkpoint"] = forged["inclusionProof"]["checkpoint"]
    error = _failure(instance, bundle)
    assert error.check == "checkpoint"
    assert error.detail == "checkpoint has no signature by the log's key"


def test_set_from_another_entry(instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT)
    other = instance.sign(ARTIFACT)
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["inclusionPromise"] = other["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
    error = _failure(instance, bundle)
    assert error.check == "signed-entry-timestamp"


def test_managed_key_bundle_needs_a_key(instance: Instance) -> None:
    bundle = instance.sign(ARTIFACT)
    verifier = _verifier(instance)
    with pytest.raises(VerificationError) as info:
        verifier.verify_with_key(
            Bundle.from_json(dumps(bundle)),
            sha256=SHA256,
            key=instance.log_key.public_key(),
            now=LATER,
        )
    assert info.value.check == "key-material"


def test_one_verifier_serves_many_threads(instance: Instance) -> None:
    from concurrent.futures import ThreadPoolExecutor

    verifier = _verifier(instance)
    bundles = [Bundle.from_json(dumps(instance.sign(ARTIFACT))) for _ in range(8)]
    bundles.append(Bundle.from_json(dumps(instance.sign(ARTIFACT, identity="eve@example.com"))))

    def verify(bundle: Bundle) -> str:
        try:
            return verifier.verify(bundle, sha256=SHA256, policy=POLICY, now=LATER).identity or ""
        except VerificationError as exc:
            return exc.check

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(verify, bundles * 4))
    assert results == ([ALICE] * 8 + ["identity"]) * 4
