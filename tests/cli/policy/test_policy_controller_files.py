"""policy-controller's own policy files (tests/data/policy-controller) through the loader.

Its examples load, or are refused with one clear line per feature keyless does not implement.
The policies its tests call invalid are refused here too; the ones they call valid are refused
only for unsupported features. The expected lines are keyless's own messages, one per problem.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.client.policy import PolicyFileError, load_policy_set

DATA = Path(__file__).parents[2] / "data" / "policy-controller"

EXAMPLES: dict[str, list[str]] = {
    "allow-only-pods.yaml": [
        "(image-policy-typemeta-allow-only-pods): spec.policy: CIP-level (cue/rego) policies are not supported yet",
    ],
    "custom-key-attestation-sbom-spdxjson.yaml": [
        "(custom-key-attestation-sbom-spdxjson): spec.authorities[0].attestations[0].policy.type: CUE policies are not supported (Rego only)",
        "(custom-key-attestation-sbom-spdxjson): spec.authorities[0].attestations: attestations are supported with keyless only",
    ],
    "keyless-attestation-sbom-spdxjson.yaml": [
        "(keyless-attestation-sbom-spdxjson): spec.authorities[0].attestations[0].policy.type: CUE policies are not supported (Rego only)",
    ],
    "release-signed-by-github-actions.yaml": [],
    "signed-by-aws-kms-key.yaml": [
        "(image-is-signed-by-aws-kms-key): spec.authorities[0].key.kms: KMS keys are not supported here; give the PEM key as data or file",
    ],
    "signed-by-gcp-kms-key.yaml": [
        "(image-is-signed-by-gcp-kms-key): spec.authorities[0].key.kms: KMS keys are not supported here; give the PEM key as data or file",
    ],
    "signed-by-github-actions.yaml": [],
}
INVALID: dict[str, list[str]] = {
    "empty-keyref-and-keylessref.yaml": [
        "(image-policy): spec.authorities[0]: expected exactly one of key, keyless, static, got key, keyless",
    ],
    "empty-keyref.yaml": [
        "(image-policy): spec.authorities[0].key: expected exactly one of data, file",
    ],
    "invalid-authority.yaml": [
        "(invalid-authority): spec.authorities[0]: expected exactly one of key, keyless, static",
    ],
    "invalid-glob.yaml": [
        "(image-policy): spec.images[0].glob: invalid glob '[': only letters, digits and -_:/*.@ are allowed",
    ],
    "invalid-keyref-awskms.yaml": [
        "(image-policy): spec.authorities[0].key.kms: KMS keys are not supported here; give the PEM key as data or file",
        "(image-policy): spec.authorities[1].key.kms: KMS keys are not supported here; give the PEM key as data or file",
        "(image-policy): spec.authorities[2].key.kms: KMS keys are not supported here; give the PEM key as data or file",
        "(image-policy): spec.authorities[3].key.kms: KMS keys are not supported here; give the PEM key as data or file",
    ],
    "invalid-mode.yaml": [
        "(invalid-mode): spec.mode: must be enforce or warn, not 'garbage'",
    ],
    "invalid-pubkey.yaml": [
        "(image-policy): spec.authorities[0].key.data: not a PEM public key",
    ],
    "keylessref-with-empty-authorities.yaml": [
        "(image-policy): spec.authorities: missing (at least one authority)",
    ],
    "keylessref-with-malformed-issuer.yaml": [
        '(image-policy): spec.authorities[0].keyless.identities[0].issuerRegExp: "****" is not a valid regexp: nothing to repeat at position 0',
        "(image-policy): spec.authorities[0].keyless.identities[0]: expected exactly one of subject, subjectRegExp",
    ],
    "keylessref-with-malformed-subject.yaml": [
        "(image-policy): spec.authorities[0].keyless.identities[0]: expected exactly one of issuer, issuerRegExp",
        '(image-policy): spec.authorities[0].keyless.identities[0].subjectRegExp: "****" is not a valid regexp: nothing to repeat at position 0',
    ],
    "keylessref-with-multiple-properties.yaml": [
        "(image-policy): spec.authorities[0].keyless: expected exactly one of url, ca-cert, got both",
        "(image-policy): spec.authorities[0].keyless.ca-cert: is not supported; name the CA's trust root with trustRootRef (a TrustRoot document or --trust-root NAME=FILE)",
    ],
    "keyref-with-multiple-properties.yaml": [
        "(image-policy): spec.authorities[0].key: expected exactly one of data, file, kms, secretRef, got data, kms",
    ],
    "missing-identity.yaml": [
        "(image-policy-missing-identity): spec.authorities[0].keyless.identities: missing (at least one issuer and subject)",
    ],
    "missing-issuer.yaml": [
        "(image-policy-missing-issuer): spec.authorities[0].keyless.identities[0]: expected exactly one of issuer, issuerRegExp",
    ],
    "missing-subject.yaml": [
        "(image-policy-missing-subject): spec.authorities[0].keyless.identities[0]: expected exactly one of subject, subjectRegExp",
    ],
    "v1beta1-empty-keyref-and-keylessref.yaml": [
        "(image-policy): spec.authorities[0].key: expected exactly one of data, file",
    ],
    "v1beta1-empty-keyref.yaml": [
        "(image-policy): spec.authorities[0].key: expected exactly one of data, file",
    ],
    "v1beta1-invalid-glob.yaml": [
        "(image-policy): spec.images[0].glob: invalid glob '[': only letters, digits and -_:/*.@ are allowed",
    ],
    "v1beta1-invalid-hash-algo.yaml": [
        "(image-policy): spec.authorities[0].key.hashAlgorithm: 'shaINVALID' is not supported (only sha256)",
        "(image-policy): spec.authorities[1].key.kms: KMS keys are not supported here; give the PEM key as data or file",
        "(image-policy): spec.authorities[2].key.secretRef: Kubernetes secrets are not supported here; give the PEM key as data or file",
    ],
    "v1beta1-invalid-keyref-awskms.yaml": [
        "(image-policy): spec.authorities[0].key.kms: KMS keys are not supported here; give the PEM key as data or file",
        "(image-policy): spec.authorities[1].key.kms: KMS keys are not supported here; give the PEM key as data or file",
        "(image-policy): spec.authorities[2].key.kms: KMS keys are not supported here; give the PEM key as data or file",
        "(image-policy): spec.authorities[3].key.kms: KMS keys are not supported here; give the PEM key as data or file",
    ],
    "v1beta1-invalid-match-resource.yaml": [
        "(image-match-resource): spec.match: matching by resource kind and labels is not supported yet",
    ],
    "v1beta1-invalid-mode.yaml": [
        "(invalid-mode): spec.mode: must be enforce or warn, not 'garbage'",
    ],
    "v1beta1-invalid-pubkey.yaml": [
        "(image-policy): spec.authorities[0].key.data: not a PEM public key",
    ],
    "v1beta1-keylessref-with-empty-authorities.yaml": [
        "(image-policy): spec.authorities: missing (at least one authority)",
    ],
    "v1beta1-keylessref-with-malformed-issuer.yaml": [
        '(image-policy): spec.authorities[0].keyless.identities[0].issuerRegExp: "****" is not a valid regexp: nothing to repeat at position 0',
        "(image-policy): spec.authorities[0].keyless.identities[0]: expected exactly one of subject, subjectRegExp",
    ],
    "v1beta1-keylessref-with-malformed-subject.yaml": [
        "(image-policy): spec.authorities[0].keyless.identities[0]: expected exactly one of issuer, issuerRegExp",
        '(image-policy): spec.authorities[0].keyless.identities[0].subjectRegExp: "****" is not a valid regexp: nothing to repeat at position 0',
    ],
    "v1beta1-keylessref-with-multiple-properties.yaml": [
        "(image-policy): spec.authorities[0].keyless: expected exactly one of url, ca-cert, got both",
        "(image-policy): spec.authorities[0].keyless.ca-cert: is not supported; name the CA's trust root with trustRootRef (a TrustRoot document or --trust-root NAME=FILE)",
    ],
    "v1beta1-keyref-with-multiple-properties.yaml": [
        "(image-policy): spec.authorities[0].key: expected exactly one of data, file, kms, secretRef, got data, kms",
    ],
    "v1beta1-missing-identity.yaml": [
        "(image-policy-missing-identity-v1beta1): spec.authorities[0].keyless.identities: missing (at least one issuer and subject)",
    ],
    "v1beta1-missing-issuer.yaml": [
        "(image-policy-missing-issuer-v1beta1): spec.authorities[0].keyless.identities[0]: expected exactly one of issuer, issuerRegExp",
    ],
    "v1beta1-missing-subject.yaml": [
        "(image-policy-missing-subject-v1beta1): spec.authorities[0].keyless.identities[0]: expected exactly one of subject, subjectRegExp",
    ],
    "v1beta1-valid-keyref-and-keylessref.yaml": [
        "(image-policy): spec.authorities[0]: expected exactly one of key, keyless, static, got key, keyless",
    ],
    "valid-keyref-and-keylessref.yaml": [
        "(image-policy): spec.authorities[0]: expected exactly one of key, keyless, static, got key, keyless",
    ],
}

UNSUPPORTED = ("not supported",)


def _problems(path: Path) -> list[str]:
    try:
        load_policy_set([path])
    except PolicyFileError as exc:
        return [line.replace(f"{path}: document 1 ", "") for line in exc.problems]
    return []


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples(name: str) -> None:
    assert _problems(DATA / "examples" / "policies" / name) == EXAMPLES[name]


def test_every_example_is_in_the_table() -> None:
    assert sorted(p.name for p in (DATA / "examples" / "policies").glob("*.yaml")) == sorted(
        EXAMPLES
    )


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_policies_are_refused(name: str) -> None:
    problems = _problems(DATA / "invalid" / name)
    assert problems == INVALID[name]
    assert problems


def test_every_invalid_policy_is_in_the_table() -> None:
    assert sorted(p.name for p in (DATA / "invalid").glob("*.yaml")) == sorted(INVALID)


@pytest.mark.parametrize("path", sorted((DATA / "valid").glob("*.yaml")), ids=lambda p: p.name)
def test_valid_policies_are_refused_only_for_unsupported_features(path: Path) -> None:
    problems = _problems(path)
    assert problems, "each of these uses a feature keyless does not implement"
    for problem in problems:
        assert "not supported" in problem, problem


def test_signed_by_github_actions_example_reads_as_written() -> None:
    policies = load_policy_set([DATA / "examples" / "policies" / "signed-by-github-actions.yaml"])
    (policy,) = policies.policies
    assert policy.name == "image-is-signed-by-github-actions"
    assert policy.globs == ("**",)
    assert policy.mode == "enforce"
    (authority,) = policy.authorities
    assert authority.name == "authority-0"
    assert authority.kind == "keyless"
    assert authority.tlog_url == "https://rekor.sigstore.dev"
    (identity,) = authority.identities
    assert identity.issuer == "https://token.actions.githubusercontent.com"
    assert identity.subject == (
        "https://github.com/sigstore/policy-controller/.github/workflows/"
        "policy-tester-examples.yml@refs/heads/main"
    )


def test_the_tester_policy_loads() -> None:
    (policy,) = load_policy_set([DATA / "tester" / "cip-public-keyless.yaml"]).policies
    (identity,) = policy.authorities[0].identities
    assert identity.issuer_regexp == ".*accounts.google.com.*"
