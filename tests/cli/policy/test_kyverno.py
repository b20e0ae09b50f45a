"""Kyverno ClusterPolicies read into the policy model: what loads, how, and the exact line for
each field keyless refuses (Kyverno's own words where Kyverno refuses it too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.client.policy import (
    AuthorityGroup,
    KeyAuthority,
    KeylessAuthority,
    PolicyFileError,
    load_policy_set,
)
from keyless.client.policy.kyverno_identity import KyvernoIdentity
from keyless.client.policy.trustroots import DEFAULT_TRUST_ROOT, production_trust

ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v*"
KEYLESS = f"""- keyless:
            subject: "{SUBJECT}"
            issuer: {ISSUER}
            rekor:
              url: https://rekor.sigstore.dev"""


def _pem(key: ec.EllipticCurvePrivateKey | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def kyverno(
    entries: str = KEYLESS,
    *,
    verify: str = "",
    attestors: str | None = None,
    spec: str = "  validationFailureAction: Enforce\n",
    rule: str = "",
    match: str = "    match:\n      any:\n      - resources:\n          kinds:\n          - Pod\n",
    kind: str = "ClusterPolicy",
    api: str = "kyverno.io/v1",
) -> str:
    """A vendor-style ClusterPolicy: one rule, one verifyImages entry."""
    if attestors is None:
        attestors = f"      attestors:\n      - entries:\n        {entries}\n"
    return f"""apiVersion: {api}
kind: {kind}
metadata:
  name: check-image
spec:
{spec}  rules:
  - name: verify
{match}{rule}    verifyImages:
    - imageReferences:
      - "ghcr.io/acme/*"
{attestors}{verify}"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kyverno.yaml"
    path.write_text(text)
    return path


def _load(tmp_path: Path, text: str, **options):
    return load_policy_set([_write(tmp_path, text)], **options)


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyFileError) as info:
        load_policy_set([path])
    prefix = f"{path}: document 1 (check-image): "
    return [p.removeprefix(prefix) for p in info.value.problems]


def test_vendor_style_keyless_policy_becomes_one_enforcing_group(tmp_path: Path) -> None:
    policies = _load(tmp_path, kyverno())
    (policy,) = policies.policies
    assert policy.name == "check-image.verify"
    assert policy.mode == "enforce"
    assert policy.globs == ("ghcr.io/acme/*",)
    assert (policy.mutate_digest, policy.verify_digest) == (True, True)
    (group,) = policy.authorities
    assert isinstance(group, AuthorityGroup)
    assert (group.name, group.threshold) == ("attestors[0]", 1)
    (member,) = group.members
    assert isinstance(member, KeylessAuthority)
    assert member.name == "entries[0].keyless"
    assert member.trust_root == DEFAULT_TRUST_ROOT
    assert member.identity == KyvernoIdentity(subject=SUBJECT, issuer=ISSUER)
    assert member.describe_expected() == f"subject {SUBJECT}, issuer {ISSUER}"
    assert policies.warnings == ()


def test_count_absent_means_every_entry_and_n_means_at_least_n(tmp_path: Path) -> None:
    three = "\n        ".join([KEYLESS, KEYLESS, KEYLESS])
    (policy,) = _load(tmp_path, kyverno(three)).policies
    assert policy.authorities[0].threshold == 3
    counted = f"      attestors:\n      - count: 2\n        entries:\n        {three}\n"
    (policy,) = _load(tmp_path, kyverno(attestors=counted)).policies
    assert policy.authorities[0].threshold == 2


def test_every_attestor_set_must_pass(tmp_path: Path) -> None:
    sets = f"      attestors:\n      - entries:\n        {KEYLESS}\n      - entries:\n        {KEYLESS}\n"
    (policy,) = _load(tmp_path, kyverno(attestors=sets)).policies
    (top,) = policy.authorities
    assert (top.name, top.threshold) == ("verifyImages", 2)
    assert [m.name for m in top.members] == ["attestors[0]", "attestors[1]"]


def test_several_keys_in_one_block_are_an_entry_each(tmp_path: Path) -> None:
    keys = _pem() + _pem() + _pem()
    entry = f"- keys:\n            publicKeys: |\n{_indent(keys, 14)}"
    (policy,) = _load(tmp_path, kyverno(entry)).policies
    (group,) = policy.authorities
    assert group.threshold == 3  # count absent: all three keys must have signed
    assert [m.name for m in group.members] == [
        "entries[0].keys[0]",
        "entries[0].keys[1]",
        "entries[0].keys[2]",
    ]
    assert all(isinstance(m, KeyAuthority) for m in group.members)
    counted = f"      attestors:\n      - count: 1\n        entries:\n        {entry}\n"
    (policy,) = _load(tmp_path, kyverno(attestors=counted)).policies
    assert policy.authorities[0].threshold == 1


def test_a_nested_attestor_is_a_group_of_its_own(tmp_path: Path) -> None:
    nested = f"""- attestor:
            count: 1
            entries:
            {_indent(KEYLESS, 4).strip()}
            {_indent(KEYLESS, 4).strip()}"""
    (policy,) = _load(tmp_path, kyverno(nested + "\n        " + KEYLESS)).policies
    (group,) = policy.authorities
    assert group.threshold == 2
    inner = group.members[0]
    assert isinstance(inner, AuthorityGroup)
    assert (inner.name, inner.threshold, len(inner.members)) == ("entries[0].attestor", 1, 2)


@pytest.mark.parametrize(
    ("spec", "failure", "mode"),
    [
        ("  validationFailureAction: Enforce\n", "", "enforce"),
        ("  validationFailureAction: enforce\n", "", "enforce"),
        ("  validationFailureAction: Audit\n", "", "warn"),
        ("", "", "warn"),  # Kyverno's default is Audit
        ("  validationFailureAction: Audit\n", "      failureAction: Enforce\n", "enforce"),
        ("  validationFailureAction: Enforce\n", "      failureAction: Audit\n", "warn"),
    ],
)
def test_failure_action_becomes_the_mode(tmp_path: Path, spec, failure, mode) -> None:
    mutate = "      mutateDigest: false\n" if mode == "warn" else ""
    (policy,) = _load(tmp_path, kyverno(spec=spec, verify=failure + mutate)).policies
    assert policy.mode == mode


def test_an_enforcing_entry_makes_its_whole_rule_enforce(tmp_path: Path) -> None:
    text = kyverno(spec="", verify="      failureAction: Audit\n      mutateDigest: false\n")
    text += f"""    - imageReferences: ["ghcr.io/other/*"]
      failureAction: Enforce
      attestors:
      - entries:
        {KEYLESS}
"""
    audit, enforce = _load(tmp_path, text).policies
    assert (audit.name, enforce.name) == (
        "check-image.verify.verifyImages[0]",
        "check-image.verify.verifyImages[1]",
    )
    assert (audit.mode, enforce.mode) == ("enforce", "enforce")


def test_digest_flags_reach_the_model(tmp_path: Path) -> None:
    flags = "      mutateDigest: false\n      verifyDigest: false\n"
    (policy,) = _load(tmp_path, kyverno(verify=flags)).policies
    assert (policy.mutate_digest, policy.verify_digest) == (False, False)


def test_required_false_loads_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, kyverno(verify="      required: false\n"))
    policies = load_policy_set([path])
    assert policies.warnings == (
        f"{path}: document 1 (check-image): spec.rules[0].verifyImages[0].required: keyless "
        "verifies every matching image in its validating webhook whatever `required` says "
        "(Kyverno's false lets an image through when its mutating webhook did not run)",
    )


def test_unanchored_regexps_load_with_one_warning_each(tmp_path: Path) -> None:
    entry = """- keyless:
            subjectRegExp: https://github\\.com/acme/.+
            issuerRegExp: ^https://token\\.actions\\.githubusercontent\\.com$
            rekor:
              url: https://rekor.sigstore.dev"""
    path = _write(tmp_path, kyverno(entry))
    policies = load_policy_set([path])
    assert policies.warnings == (
        f"{path}: document 1 (check-image): spec.rules[0].verifyImages[0].attestors[0]."
        "entries[0].keyless.subjectRegExp: 'https://github\\\\.com/acme/.+' must match the whole "
        "value here, where Kyverno matches it anywhere in the value (write ^...$ to mean the "
        "same in both)",
    )


def test_an_attestor_naming_no_identity_loads_with_a_warning(tmp_path: Path) -> None:
    entry = "- keyless:\n            rekor:\n              url: https://rekor.sigstore.dev"
    path = _write(tmp_path, kyverno(entry))
    policies = load_policy_set([path])
    member = policies.policies[0].authorities[0].members[0]
    assert member.identity.checks_nothing
    assert policies.warnings == (
        f"{path}: document 1 (check-image): spec.rules[0].verifyImages[0].attestors[0]."
        "entries[0].keyless: names no subject, issuer or extension: any certificate of the "
        "trusted CAs passes, as in Kyverno",
    )


def test_deprecated_key_and_image_are_converted_as_kyverno_converts_them(tmp_path: Path) -> None:
    key = _pem()
    text = kyverno(
        attestors=f"      image: ghcr.io/legacy/*\n      key: |\n{_indent(key, 8)}\n",
    )
    (policy,) = _load(tmp_path, text).policies
    assert policy.globs == ("ghcr.io/acme/*", "ghcr.io/legacy/*")
    (group,) = policy.authorities
    assert [m.name for m in group.members] == ["entries[0].keys"]


def test_v2beta1_cluster_policies_are_read_too(tmp_path: Path) -> None:
    policies = _load(tmp_path, kyverno(api="kyverno.io/v2beta1"))
    assert [p.name for p in policies.policies] == ["check-image.verify"]


def test_roots_and_log_keys_build_trust_over_the_default(tmp_path: Path) -> None:
    from tests.cli.conftest import START
    from tests.cli.forge import _ca_cert

    root = _ca_cert("acme-root", ec.generate_private_key(ec.SECP256R1()), None, START)
    roots = root.public_bytes(serialization.Encoding.PEM).decode()
    rekor_key, ct_key = _pem(), _pem()
    entry = f"""- keyless:
            subject: alice@acme.example
            issuer: https://issuer.acme.example
            roots: |
{_indent(roots, 14)}
            rekor:
              url: https://rekor.acme.example
              pubkey: |
{_indent(rekor_key, 16)}
            ctlog:
              pubkey: |
{_indent(ct_key, 16)}"""
    policies = _load(tmp_path, kyverno(entry))
    member = policies.policies[0].authorities[0].members[0]
    assert member.trust_root.startswith("kyverno:")
    material = policies.trust[member.trust_root]
    assert [ca.certificates for ca in material.root.certificate_authorities] == [(root,)]
    (log,) = material.root.tlogs.values()
    assert log.base_url == "https://rekor.acme.example"
    assert log.public_key.public_numbers() == _key(rekor_key).public_numbers()
    (ct,) = material.root.ctlogs.values()
    assert ct.public_key.public_numbers() == _key(ct_key).public_numbers()
    # The rest is the default root's, and the fingerprint follows the attestor's material.
    assert material.root.timestamp_authorities == production_trust().root.timestamp_authorities
    other = kyverno(entry.replace(_indent(rekor_key, 16), _indent(_pem(), 16)))
    assert _load(tmp_path, other).fingerprint != policies.fingerprint


def _key(pem: str):
    return serialization.load_pem_public_key(pem.encode())


def test_a_duplicate_key_is_refused_by_the_strict_loader(tmp_path: Path) -> None:
    text = kyverno().replace(
        "  validationFailureAction: Enforce\n",
        "  validationFailureAction: Audit\n  validationFailureAction: Enforce\n",
    )
    path = _write(tmp_path, text)
    with pytest.raises(PolicyFileError) as info:
        load_policy_set([path])
    assert info.value.problems == [
        f"{path}:7:3: duplicate key 'validationFailureAction' (first at line 6)"
    ]


def test_cip_and_kyverno_documents_load_side_by_side(tmp_path: Path) -> None:
    cip = """apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: acme
spec:
  images:
  - glob: "ghcr.io/acme/**"
  authorities:
  - static:
      action: pass
"""
    policies = _load(tmp_path, cip + "---\n" + kyverno())
    assert [p.name for p in policies.policies] == ["acme", "check-image.verify"]


V = "spec.rules[0].verifyImages[0]"
A = f"{V}.attestors[0].entries[0]"


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        pytest.param(
            kyverno(kind="Policy"),
            [
                "kind: kyverno.io/v1/Policy applies only in its own namespace, and keyless "
                "judges every namespace alike: make it a ClusterPolicy to use it here"
            ],
            id="namespaced-policy",
        ),
        pytest.param(
            kyverno(api="policies.kyverno.io/v1", kind="ImageValidatingPolicy"),
            [
                "kind: policies.kyverno.io/v1/ImageValidatingPolicy (CEL rules) is not "
                "supported yet; keyless reads Kyverno's kyverno.io/v1 ClusterPolicy with "
                "verifyImages rules"
            ],
            id="image-validating-policy",
        ),
        pytest.param(
            kyverno().replace('      - "ghcr.io/acme/*"\n', ""),
            [f"{V}: An image reference is required"],
            id="no-image-reference",
        ),
        pytest.param(
            kyverno().replace("ghcr.io/acme/*", "ghcr.io/{{ request.namespace }}/*"),
            [f"{V}.imageReferences[0]: variables are not allowed in image reference"],
            id="image-reference-variable",
        ),
        pytest.param(
            kyverno().replace("ghcr.io/acme/*", "GHCR.IO/acme/*"),
            [
                f"{V}.imageReferences[0]: 'GHCR.IO/acme/*': write the registry in lowercase "
                "(keyless matches images by the registry a runtime reaches, whatever its spelling)"
            ],
            id="uppercase-registry",
        ),
        pytest.param(
            kyverno(
                attestors="      attestors:\n      - count: 2\n        entries:\n"
                f"        {KEYLESS}\n"
            ),
            [f"{V}.attestors[0]: Count cannot exceed length of entries"],
            id="count-above-entries",
        ),
        pytest.param(
            kyverno(
                attestors=f"      attestors:\n      - count: 0\n        entries:\n        {KEYLESS}\n"
            ),
            [f"{V}.attestors[0].count: must be a whole number, at least 1"],
            id="count-zero",
        ),
        pytest.param(
            kyverno(attestors="      attestors:\n      - entries: []\n"),
            [f"{V}.attestors[0]: An entry is required"],
            id="no-entries",
        ),
        pytest.param(
            kyverno("- {}"),
            [f"{A}: keys, certificates, keyless, or a nested attestor is required"],
            id="empty-attestor",
        ),
        pytest.param(
            kyverno("- keys: {}"),
            [f"{A}.keys: A public key, kms key or secret is required"],
            id="keys-without-key",
        ),
        pytest.param(
            kyverno("- keys:\n            kms: awskms:///alias/release"),
            [
                f"{A}.keys.kms: KMS keys are not supported yet: give the PEM public key in publicKeys"
            ],
            id="kms",
        ),
        pytest.param(
            kyverno("- keys:\n            secret: {name: cosign, namespace: kyverno}"),
            [
                f"{A}.keys.secret: Kubernetes secrets are not read: give the PEM public key in publicKeys"
            ],
            id="secret",
        ),
        pytest.param(
            kyverno("- keys:\n            publicKeys: k8s://kyverno/cosign"),
            [
                f"{A}.keys.publicKeys: not a PEM public key (k8s:// and KMS references are not supported)"
            ],
            id="k8s-reference",
        ),
        pytest.param(
            kyverno("- keys:\n            publicKeys: '{{ keys.data.pub }}'"),
            [f"{A}.keys.publicKeys: variables are not supported: give the PEM public key itself"],
            id="key-variable",
        ),
        pytest.param(
            kyverno("- certificates:\n            cert: x"),
            [
                f"{A}.certificates: certificate attestors are not supported yet: for a key use "
                "keys.publicKeys, for a CA keyless.roots"
            ],
            id="certificates",
        ),
        pytest.param(
            kyverno(KEYLESS + "\n          signatureAlgorithm: sha512"),
            [f"{A}.signatureAlgorithm: 'sha512' is not supported (only sha256)"],
            id="sha512",
        ),
        pytest.param(
            kyverno(KEYLESS + "\n          signatureAlgorithm: md5"),
            [f"{A}.signatureAlgorithm: Invalid signature algorithm provided"],
            id="bad-algorithm",
        ),
        pytest.param(
            kyverno(KEYLESS + "\n          annotations: {env: prod}"),
            [
                f"{A}.annotations: signature annotations are not checked by keyless (Sigstore bundles carry none)"
            ],
            id="annotations",
        ),
        pytest.param(
            kyverno(KEYLESS + "\n          repository: ghcr.io/acme/signatures"),
            [f"{A}.repository: signatures kept in another repository are not supported yet"],
            id="attestor-repository",
        ),
        pytest.param(
            kyverno("- keyless:\n            subject: alice@acme.example"),
            [f"{A}.keyless: Either Rekor URL or roots are required"],
            id="keyless-without-rekor-or-roots",
        ),
        pytest.param(
            kyverno("- keyless:\n            subject: alice@acme.example\n            rekor: {}"),
            [f"{A}.keyless.rekor: An URL is required"],
            id="rekor-without-url",
        ),
        pytest.param(
            kyverno(KEYLESS.replace("https://rekor.sigstore.dev", "'{{ tuf.rekor }}'")),
            [f"{A}.keyless.rekor.url: variables are not supported"],
            id="rekor-url-variable",
        ),
        pytest.param(
            kyverno(KEYLESS + "\n              ignoreTlog: true"),
            [
                f"{A}.keyless.rekor.ignoreTlog: true is not supported: keyless always checks the transparency log"
            ],
            id="ignore-tlog",
        ),
        pytest.param(
            kyverno(KEYLESS + "\n            ctlog:\n              ignoreSCT: true"),
            [
                f"{A}.keyless.ctlog.ignoreSCT: true is not supported: keyless always checks the certificate's SCT"
            ],
            id="ignore-sct",
        ),
        pytest.param(
            kyverno(KEYLESS + "\n            ctlog:\n              tsaCertChain: x"),
            [
                f"{A}.keyless.ctlog.tsaCertChain: is not supported yet: put the TSA in a "
                "trusted_root.json given with --trusted-root"
            ],
            id="tsa-cert-chain",
        ),
        pytest.param(
            kyverno(KEYLESS + "\n            roots: not a certificate"),
            [f"{A}.keyless.roots: not PEM certificates"],
            id="bad-roots",
        ),
        pytest.param(
            kyverno(KEYLESS + "\n            additionalExtensions: {githubWorkflowColour: blue}"),
            [
                f"{A}.keyless.additionalExtensions.githubWorkflowColour: invalid certificate extension githubWorkflowColour"
            ],
            id="unknown-extension",
        ),
        pytest.param(
            kyverno(KEYLESS.replace(f'subject: "{SUBJECT}"', "subjectRegExp: '(unclosed'")),
            [
                f"{A}.keyless.subjectRegExp: '(unclosed' is not a valid regexp: missing ), "
                "unterminated subpattern at position 0"
            ],
            id="bad-regexp",
        ),
        pytest.param(
            kyverno(KEYLESS.replace(f'subject: "{SUBJECT}"', "subjectRegExp: 'alice(?=@)'")),
            [
                f"{A}.keyless.subjectRegExp: 'alice(?=@)' uses syntax Go regexps (and so "
                "Kyverno) do not have: lookaround, backreferences, possessive quantifiers, "
                "comments, \\Z or the a, L, u, x flags"
            ],
            id="not-re2",
        ),
        pytest.param(
            kyverno(verify="      type: Notary\n"),
            [f"{V}.type: Notary signatures are not supported (Cosign or SigstoreBundle)"],
            id="notary",
        ),
        pytest.param(
            kyverno(verify="      repository: ghcr.io/acme/signatures\n"),
            [f"{V}.repository: signatures kept in another repository are not supported yet"],
            id="repository",
        ),
        pytest.param(
            kyverno(verify="      imageRegistryCredentials: {secrets: [regcred]}\n"),
            [
                f"{V}.imageRegistryCredentials: registry credentials are not read from policies: "
                "keyless uses those of the pipeline or the gate it runs in"
            ],
            id="registry-credentials",
        ),
        pytest.param(
            kyverno(verify="      validate:\n        deny: {conditions: {any: []}}\n"),
            [f"{V}.validate: validate.deny checks across attestations are not supported yet"],
            id="validate-deny",
        ),
        pytest.param(
            kyverno(spec="  validationFailureAction: Audit\n"),
            [
                f"{V}.mutateDigest: mutateDigest must be set to false for \u2018Audit\u2019 failure action"
            ],
            id="audit-with-mutate-digest",
        ),
        pytest.param(
            kyverno(attestors=""),
            [
                f"{V}: attestors or attestations: neither is given, so Kyverno only checks "
                "digests, and keyless does not judge images by their digest alone"
            ],
            id="digest-only",
        ),
        pytest.param(
            kyverno(verify="      subject: alice@acme.example\n"),
            [
                f"{V}.subject: is deprecated, and Kyverno ignores it without image, key or issuer: use attestors"
            ],
            id="ignored-deprecated-subject",
        ),
        pytest.param(
            kyverno(verify="      additionalExtensions: {githubWorkflowTrigger: push}\n"),
            [
                f"{V}.additionalExtensions: is deprecated, and Kyverno ignores it here: put it "
                "under attestors[].entries[].keyless.additionalExtensions"
            ],
            id="ignored-deprecated-extensions",
        ),
        pytest.param(
            kyverno(
                match="    match:\n      any:\n      - resources:\n          kinds: [Deployment]\n"
            ),
            [
                "spec.rules[0].match: keyless judges the images of every Pod and pod controller, "
                "so a rule must match Pod (Kyverno extends a Pod rule to Deployments, CronJobs "
                "and the other pod controllers)"
            ],
            id="match-without-pod",
        ),
        pytest.param(
            kyverno(
                match="    match:\n      any:\n      - resources:\n          kinds: [Pod]\n"
                "          namespaces: [prod]\n"
            ),
            [
                "spec.rules[0].match.any[0].resources.namespaces: matching by namespace, name, "
                "labels, annotations or operation is not supported yet: keyless judges every "
                "object's images alike"
            ],
            id="match-namespaces",
        ),
        pytest.param(
            kyverno(match=""),
            ["spec.rules[0].match: missing (a rule must match Pod)"],
            id="no-match",
        ),
        pytest.param(
            kyverno(
                rule="    exclude:\n      any:\n      - resources: {namespaces: [kube-system]}\n"
            ),
            [
                "spec.rules[0].exclude: excluding resources is not supported yet: keyless would judge what Kyverno exempts"
            ],
            id="exclude",
        ),
        pytest.param(
            kyverno(
                rule="    context:\n    - name: keys\n      configMap: {name: keys, namespace: x}\n"
            ),
            [
                "spec.rules[0].context: context entries (ConfigMaps, API calls, variables) are not supported"
            ],
            id="context",
        ),
        pytest.param(
            kyverno(rule="    preconditions:\n      all: []\n"),
            ["spec.rules[0].preconditions: preconditions are not supported"],
            id="preconditions",
        ),
        pytest.param(
            kyverno(rule="    validate:\n      message: no\n"),
            [
                "spec.rules[0].validate: keyless reads verifyImages rules only, and refuses a "
                "policy with other rules rather than apply half of it"
            ],
            id="validate-rule",
        ),
        pytest.param(
            kyverno(spec="  validationFailureAction: Enforce\n  failurePolicy: Ignore\n"),
            [
                "spec.failurePolicy: Ignore is not supported: it admits what could not be "
                "judged, and keyless never takes an error for a pass (use Fail)"
            ],
            id="failure-policy-ignore",
        ),
        pytest.param(
            kyverno(
                spec="  validationFailureAction: Enforce\n  failurePolicy: Fail\n"
                "  webhookConfiguration: {failurePolicy: Fail}\n"
            ),
            [
                "spec.failurePolicy: remove the deprecated field and use "
                "spec.webhookConfiguration.failurePolicy instead"
            ],
            id="failure-policy-twice",
        ),
        pytest.param(
            kyverno(spec="  validationFailureAction: Enforce\n  admission: false\n"),
            [
                "spec.admission: false is not supported: such a policy never runs at admission, "
                "and keyless judges admissions and pipelines only"
            ],
            id="admission-false",
        ),
        pytest.param(
            kyverno(spec="  validationFailureAction: Enforce\n  applyRules: One\n"),
            ["spec.applyRules: 'One' is not supported: keyless applies every rule (All)"],
            id="apply-rules-one",
        ),
        pytest.param(
            kyverno(spec="  validationFailureAction: Block\n"),
            ["spec.validationFailureAction: must be Audit or Enforce, not 'Block'"],
            id="bad-action",
        ),
        pytest.param(
            kyverno(
                spec="  validationFailureAction: Enforce\n  validationFailureActionOverrides: []\n"
            ),
            [
                "spec.validationFailureActionOverrides: actions per namespace are not supported: "
                "keyless judges every namespace alike"
            ],
            id="action-overrides",
        ),
        pytest.param(
            kyverno(spec="  validationFailureAction: Enforce\n  webhookTimeoutSeconds: 90\n"),
            ["spec.webhookTimeoutSeconds: must be a whole number of seconds from 1 to 30"],
            id="timeout",
        ),
        pytest.param(
            kyverno(verify="      colour: blue\n"),
            [f"{V}.colour: unknown field"],
            id="unknown-field",
        ),
        pytest.param(
            kyverno(verify="      mutateDigest: yes please\n"),
            [f"{V}.mutateDigest: must be true or false"],
            id="not-a-bool",
        ),
        pytest.param(
            kyverno().replace("  - name: verify\n", "  - name: verify\n")
            + kyverno().split("  rules:\n", 1)[1],
            ["spec.rules[1].name: Duplicate rule name: 'verify'"],
            id="duplicate-rule",
        ),
    ],
)
def test_refusals(tmp_path: Path, text: str, problems: list[str]) -> None:
    assert _problems(tmp_path, text) == problems


def test_sigstore_bundle_type_needs_both_subject_and_issuer(tmp_path: Path) -> None:
    entry = "- keyless:\n            subject: alice@acme.example\n            rekor: {url: https://rekor.sigstore.dev}"
    assert _problems(tmp_path, kyverno(entry, verify="      type: SigstoreBundle\n")) == [
        f"{A}.keyless: issuer or issuerRegExp is required for SigstoreBundle: without both a "
        "subject and an issuer Kyverno checks no identity"
    ]
    (policy,) = _load(tmp_path, kyverno(verify="      type: SigstoreBundle\n")).policies
    member = policy.authorities[0].members[0]
    assert member.signature_format == "bundle"
    # sigstore-go compares exactly: the subject's `*` is a character there, not a wildcard.
    assert member.identities[0].subject == SUBJECT


def test_a_refused_document_gives_no_policy_even_beside_good_ones(tmp_path: Path) -> None:
    bad = kyverno(verify="      colour: blue\n").replace("name: check-image", "name: bad")
    path = _write(tmp_path, kyverno() + "---\n" + bad)
    with pytest.raises(PolicyFileError) as info:
        load_policy_set([path])
    assert info.value.problems == [
        f"{path}: document 2 (bad): spec.rules[0].verifyImages[0].colour: unknown field"
    ]
