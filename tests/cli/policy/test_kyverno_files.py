"""Kyverno's own conformance policies (tests/data/kyverno, see its README): each loads into the
model as Kyverno reads it, or is refused whole, one exact line per feature keyless does not
honour. Nothing is half-applied: a refused file gives no policy at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.client.policy import (
    AuthorityGroup,
    KeyAuthority,
    KeylessAuthority,
    PolicyFileError,
    load_policy_set,
)

DATA = Path(__file__).parents[2] / "data" / "kyverno"
V = "spec.rules[0].verifyImages[0]"
IGNORE_TLOG = "rekor.ignoreTlog: true is not supported: keyless always checks the transparency log"

REFUSED = {
    "verify-images/keyed-basic": [
        f"document 1 (keyed-basic-policy): {V}.attestors[0].entries[0].keys.{IGNORE_TLOG}",
    ],
    "verify-images/multiple-attestors": [
        f"document 1 (validate-signatures): {V}.attestors[0].entries[0].keys.{IGNORE_TLOG}",
        "document 1 (validate-signatures): spec.rules[1].verifyImages[0].attestors[0]."
        f"entries[0].keys.{IGNORE_TLOG}",
    ],
    "verify-images/keyed-secret": [
        f"document 1 (secret-in-keys): {V}.attestors[0].entries[0].keys.secret: Kubernetes "
        "secrets are not read: give the PEM public key in publicKeys",
    ],
    "verify-images/keyed-basic-namespace-selector": [
        "document 1 (keyed-basic-ns-selector-policy): spec.rules[0].match.all[0].resources."
        "namespaceSelector: matching by namespace, name, labels, annotations or operation is "
        "not supported yet: keyless judges every object's images alike",
        f"document 1 (keyed-basic-ns-selector-policy): {V}.attestors[0].entries[0].keys."
        f"{IGNORE_TLOG}",
    ],
    "verify-images/keyless-mutatedigest-verifydigest-required": [
        f"document 1 (keyless-mutatedigest-verifydigest-required): {V}.attestors[0].entries[0]."
        "keyless.ctlog.ignoreSCT: true is not supported: keyless always checks the "
        "certificate's SCT",
    ],
    "verify-images/keyless-attestations-multiple-subjects-counts-1": [
        f"document 1 (check-slsa-attestations-pass-3): {V}.attestations[0].conditions[0].all[0]."
        "key: nested {{ }} variables are not supported",
    ],
    "verify-images/keyless-attestations-multiple-subjects-4": [
        f"document 1 (check-slsa-attestations-pass-4): {V}.attestations[0].conditions[0].all[0]."
        "key: nested {{ }} variables are not supported",
        f"document 1 (check-slsa-attestations-pass-4): {V}.attestations[0].attestors: missing: "
        "Kyverno then accepts attestations by any signer of the public Sigstore CA; name the "
        "attestors",
    ],
    "verify-images/mutateDigest-noverifyDigest-norequired": [
        f"document 1 (mutatedigest-policy): {V}: attestors or attestations: neither is given, so "
        "Kyverno only checks digests, and keyless does not judge images by their digest alone",
    ],
    "verify-images/notary-image-verification-secret-from-policy": [
        "document 1 (secret-in-policy): spec.rules[0].context: context entries (ConfigMaps, API "
        "calls, variables) are not supported",
        f"document 1 (secret-in-policy): {V}.type: Notary signatures are not supported (Cosign "
        "or SigstoreBundle)",
        f"document 1 (secret-in-policy): {V}.imageRegistryCredentials: registry credentials are "
        "not read from policies: keyless uses those of the pipeline or the gate it runs in",
        f"document 1 (secret-in-policy): {V}.attestors[0].entries[0].certificates: certificate "
        "attestors are not supported yet: for a key use keys.publicKeys, for a CA keyless.roots",
    ],
    "verify-images/rollback-image-verification": [
        "document 1 (verify-images): kind: v1/Namespace is not a policy document (expected "
        "ClusterImagePolicy, a Kyverno ClusterPolicy, TrustRoot, or the config-policy-controller "
        "ConfigMap)",
        "document 2 (check-image): spec.rules[0].match: keyless judges the images of every Pod "
        "and pod controller, so a rule must match Pod (Kyverno extends a Pod rule to "
        "Deployments, CronJobs and the other pod controllers)",
        f"document 2 (check-image): {V}.attestors[0].entries[0].keys.{IGNORE_TLOG}",
    ],
    "verify-images/imageExtractors-simple": [
        "document 1 (tasks-simple): spec.rules[0].preconditions: preconditions are not supported",
        "document 1 (tasks-simple): spec.rules[0].imageExtractors: custom image extractors are "
        "not supported: keyless judges the images of containers, init containers and ephemeral "
        "containers",
        "document 1 (tasks-simple): spec.rules[0].match: keyless judges the images of every Pod "
        "and pod controller, so a rule must match Pod (Kyverno extends a Pod rule to "
        "Deployments, CronJobs and the other pod controllers)",
    ],
    "custom-sigstore/basic": [
        "document 1 (basic-sigstore-test-policy): spec.rules[0].context: context entries "
        "(ConfigMaps, API calls, variables) are not supported",
        f"document 1 (basic-sigstore-test-policy): {V}.attestors[0].entries[0].keyless.rekor."
        "url: variables are not supported",
    ],
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_whole_with_one_line_per_feature(case: str) -> None:
    path = DATA / case / "policy.yaml"
    with pytest.raises(PolicyFileError) as info:
        load_policy_set([path])
    assert [p.removeprefix(f"{path}: ") for p in info.value.problems] == REFUSED[case]


def _only(path: Path):
    policies = load_policy_set([path])
    (policy,) = policies.policies
    return policies, policy


def test_keyed_policy_with_count_and_no_digest_checks() -> None:
    _, policy = _only(DATA / "verify-images/update-multi-containers/policy.yaml")
    assert policy.name == "verify-image-signature.verify-image"
    assert (policy.mode, policy.mutate_digest, policy.verify_digest) == ("enforce", False, False)
    assert policy.globs == ("ghcr.io/stefanprodan/*",)
    (group,) = policy.authorities
    assert isinstance(group, AuthorityGroup) and group.threshold == 1
    (key,) = group.members
    assert isinstance(key, KeyAuthority) and key.signature_format == "legacy"


def test_sigstore_bundle_image_verification() -> None:
    _, policy = _only(DATA / "verify-images/sigstore-image-verification-test/policy.yaml")
    (member,) = policy.authorities[0].members
    assert isinstance(member, KeylessAuthority)
    assert member.signature_format == "bundle"
    (identity,) = member.identities
    assert identity.issuer == "https://token.actions.githubusercontent.com"
    assert identity.subject == (
        "https://github.com/vishal-chdhry/artifact-attestation-example/.github/workflows/"
        "build-attested-image.yaml@refs/heads/main"
    )
    assert policy.matches(("ghcr.io/anything@sha256:" + "0" * 64,))  # imageReferences: "*"


def test_sigstore_bundle_attestation_with_conditions() -> None:
    _, policy = _only(DATA / "verify-images/sigstore-attestation-verification-test/policy.yaml")
    (attestation,) = policy.authorities
    assert attestation.name == "attestations[0]"
    (attestors,) = attestation.members
    (member,) = attestors.members
    (rule,) = member.attestations
    assert rule.predicate_type == "https://slsa.dev/provenance/v1"
    provenance = {
        "predicateType": rule.predicate_type,
        "predicate": {
            "buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"}
        },
    }
    rule.conditions.check(provenance)


def test_unanchored_regexp_of_kyverno_loads_with_its_warning() -> None:
    path = DATA / "verify-images/sigstore-attestation-verification-regexp/policy.yaml"
    policies, _ = _only(path)
    assert policies.warnings == (
        f"{path}: document 1 (sigstore-attestation-verification-regexp): {V}.attestations[0]."
        "attestors[0].entries[0].keyless.subjectRegExp: 'https://github.com/vishal-chdhry/"
        "artifact-attestation-example/.github/workflows/.+' must match the whole value here, "
        "where Kyverno matches it anywhere in the value (write ^...$ to mean the same in both)",
    )
