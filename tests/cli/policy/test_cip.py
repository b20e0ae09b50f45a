"""Loading policy files: what loads, what is refused, and the exact line for each problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from keyless.client.oci import parse_reference
from keyless.client.policy import PolicyFileError, load_policy_set, load_trust_file
from keyless.client.policy.evaluator import Evaluator, ResolvedImage

REPO = Path(__file__).parents[3]
ROOTS = REPO / "tests" / "data" / "sigstore-trust-roots"
STAGING = ROOTS / "staging_trusted_root.json"

POLICY = """apiVersion: policy.sigstore.dev/v1beta1
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


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(*paths: Path, **options) -> list[str]:
    with pytest.raises(PolicyFileError) as info:
        load_policy_set(list(paths), **options)
    return info.value.problems


def test_example_config_loads(tmp_path: Path) -> None:
    acme = load_trust_file("acme", STAGING)
    policies = load_policy_set([REPO / "config" / "policy.yaml"], trust_files={"acme": acme})
    assert [p.name for p in policies.policies] == [
        "acme-releases",
        "acme-internal",
        "base-images-audit",
    ]
    releases, internal, audit = policies.policies
    assert releases.authorities[0].signature_format == "bundle"
    assert internal.authorities[0].trust_root == "acme"
    assert len(internal.authorities[0].identities) == 2
    assert audit.mode == "warn"
    assert policies.no_match_policy == "deny"


def test_example_config_needs_its_trust_root() -> None:
    path = REPO / "config" / "policy.yaml"
    assert _problems(path) == [
        f"{path}: document 2 (acme-internal): spec.authorities[0].keyless.trustRootRef: names "
        "no TrustRoot document and no --trust-root: 'acme'"
    ]


def test_directory_of_files_and_multi_document_yaml(tmp_path: Path) -> None:
    second = POLICY.replace("name: acme", "name: second")
    _write(tmp_path, POLICY + "---\n" + second.replace("name: second", "name: third"), "a.yaml")
    _write(tmp_path, second, "b.yml")
    _write(tmp_path, "not a policy file", "notes.txt")
    policies = load_policy_set([tmp_path])
    assert [p.name for p in policies.policies] == ["acme", "third", "second"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- 1\n- 2\n", "document 1: must be a mapping"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
            "document 1 (x): kind: v1/Pod is not a policy document (expected "
            "ClusterImagePolicy, a Kyverno ClusterPolicy, TrustRoot, or the "
            "config-policy-controller ConfigMap)",
        ),
        (
            POLICY.replace("kind: ClusterImagePolicy", "kind: ClusterImagePolicy\nextra: 1"),
            "document 1 (acme): extra: unknown field",
        ),
        (
            POLICY.replace("  images:", "  colour: blue\n  images:"),
            "document 1 (acme): spec.colour: unknown field",
        ),
        (
            POLICY.replace('- glob: "ghcr.io/acme/**"', '- glob: "ghcr.io/acme/**"\n    regex: x'),
            "document 1 (acme): spec.images[0].regex: unknown field",
        ),
        (POLICY.replace("name: acme", "name: Acme"), "document 1 (Acme): metadata.name: must be"),
        (
            POLICY.replace("action: pass", "action: pass\n      colour: red"),
            "document 1 (acme): spec.authorities[0].static.colour: unknown field",
        ),
        (
            POLICY + "  mode: Enforce\n",
            "document 1 (acme): spec.mode: must be enforce or warn, not 'Enforce'",
        ),
        (
            POLICY + "  match:\n  - {resource: pods, version: v1}\n",
            "document 1 (acme): spec.match: matching by resource kind and labels is not "
            "supported yet",
        ),
        (
            POLICY.replace(
                "  - static:\n      action: pass\n",
                "  - name: x\n    static:\n      action: pass\n    signatureFormat: sigstore\n",
            ),
            "document 1 (acme): spec.authorities[0].signatureFormat: must be legacy or bundle, "
            "not 'sigstore'",
        ),
    ],
    ids=[
        "not-a-mapping",
        "other-kind",
        "unknown-top-level",
        "unknown-spec-field",
        "unknown-image-field",
        "bad-name",
        "unknown-static-field",
        "bad-mode",
        "match",
        "bad-signature-format",
    ],
)
def test_refusals(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    (line,) = _problems(path)
    assert line.startswith(f"{path}: {problem}")


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    bad = POLICY.replace("action: pass", "action: maybe") + "  mode: loud\n"
    path = _write(tmp_path, bad + "---\n" + bad.replace("name: acme", "name: acme2"))
    assert _problems(path) == [
        f"{path}: document 1 (acme): spec.mode: must be enforce or warn, not 'loud'",
        f"{path}: document 1 (acme): spec.authorities[0].static.action: must be pass or fail, "
        "not 'maybe'",
        f"{path}: document 2 (acme2): spec.mode: must be enforce or warn, not 'loud'",
        f"{path}: document 2 (acme2): spec.authorities[0].static.action: must be pass or fail, "
        "not 'maybe'",
    ]


def test_duplicate_names(tmp_path: Path) -> None:
    path = _write(tmp_path, POLICY + "---\n" + POLICY)
    assert _problems(path) == [
        f"{path}: document 2 (acme): metadata.name: policy 'acme' is defined twice"
    ]
    authorities = POLICY.replace(
        "  - static:\n      action: pass\n",
        "  - name: a\n    static: {action: pass}\n  - name: a\n    static: {action: fail}\n",
    )
    path = _write(tmp_path, authorities, "two.yaml")
    assert _problems(path) == [
        f"{path}: document 1 (acme): spec.authorities[1].name: 'a' is used twice"
    ]


def test_missing_paths_and_empty_input(tmp_path: Path) -> None:
    assert _problems(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: no such file or directory"
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _problems(empty) == [f"{empty}: the directory holds no .yaml, .yml or .json file"]
    path = _write(tmp_path, "---\n")
    assert _problems(path) == [f"{path}: no ClusterImagePolicy or Kyverno ClusterPolicy found"]


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = _write(tmp_path, "#" * (1024 * 1024 + 1))
    assert _problems(path) == [f"{path}: larger than 1048576 bytes"]


def test_keyless_authority_fields(tmp_path: Path) -> None:
    authority = """  - name: ci
    keyless:
      url: https://fulcio.sigstore.dev
      insecureIgnoreSCT: true
      ca-cert:
        data: x
      identities:
      - issuer: https://a
        issuerRegExp: https://.*
        subject: s
      - subjectRegExp: 'a{2'
        issuerRegExp: '('
    rfc3161timestamp:
      trustRootRef: elsewhere
"""
    path = _write(tmp_path, POLICY.replace("  - static:\n      action: pass\n", authority))
    where = f"{path}: document 1 (acme): spec.authorities[0]"
    assert _problems(path) == [
        f"{where}.keyless: expected exactly one of url, ca-cert, got both",
        f"{where}.keyless.ca-cert: is not supported; name the CA's trust root with trustRootRef "
        "(a TrustRoot document or --trust-root NAME=FILE)",
        f"{where}.keyless.insecureIgnoreSCT: true is not supported: keyless always checks the "
        "certificate's SCT",
        f"{where}.keyless.identities[0]: expected exactly one of issuer, issuerRegExp, got both",
        f'{where}.keyless.identities[1].issuerRegExp: "(" is not a valid regexp: missing ), '
        "unterminated subpattern at position 0",
        f"{where}.rfc3161timestamp.trustRootRef: names no TrustRoot document and no "
        "--trust-root: 'elsewhere'",
    ]


def test_trust_root_refs_must_agree(tmp_path: Path) -> None:
    authority = """  - keyless:
      trustRootRef: one
      identities: [{issuer: https://a, subject: s}]
    ctlog:
      trustRootRef: two
"""
    path = _write(tmp_path, POLICY.replace("  - static:\n      action: pass\n", authority))
    trust = {"one": load_trust_file("one", STAGING), "two": load_trust_file("two", STAGING)}
    assert _problems(path, trust_files=trust) == [
        f"{path}: document 1 (acme): spec.authorities[0].ctlog.trustRootRef: must name the same "
        "trust root as the rest of spec.authorities[0]"
    ]


def test_ctlog_url_must_be_a_log_of_the_trust_root(tmp_path: Path) -> None:
    authority = """  - keyless:
      identities: [{issuer: https://a, subject: s}]
    ctlog:
      url: https://rekor.example.com
"""
    path = _write(tmp_path, POLICY.replace("  - static:\n      action: pass\n", authority))
    assert _problems(path) == [
        f"{path}: document 1 (acme): spec.authorities[0].ctlog.url: https://rekor.example.com is "
        "not a transparency log of the trust root default (public Sigstore) (it has: "
        "https://log2025-1.rekor.sigstore.dev, https://rekor.sigstore.dev)"
    ]


def test_static_cannot_be_combined(tmp_path: Path) -> None:
    authority = """  - static: {action: pass}
    attestations: [{name: a, predicateType: x}]
    source: [{oci: ghcr.io/x}]
"""
    path = _write(tmp_path, POLICY.replace("  - static:\n      action: pass\n", authority))
    where = f"{path}: document 1 (acme): spec.authorities[0]"
    assert _problems(path) == [
        f"{where}: static cannot be combined with attestations",
        f"{where}: static cannot be combined with source",
        f"{where}.source: signatures kept in another repository are not supported yet",
    ]


def test_key_authority_from_data_and_file(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "cosign.pub").write_bytes(pem)
    data = "\n".join("        " + line for line in pem.decode().splitlines())
    authorities = f"""  - name: inline
    key:
      data: |
{data}
  - name: from-file
    key:
      file: keys/cosign.pub
"""
    path = _write(tmp_path, POLICY.replace("  - static:\n      action: pass\n", authorities))
    (policy,) = load_policy_set([path]).policies
    assert [a.kind for a in policy.authorities] == ["key", "key"]
    assert policy.authorities[0].keys[0].public_key.public_numbers() == (
        policy.authorities[1].keys[0].public_key.public_numbers()
    )
    missing = _write(
        tmp_path,
        POLICY.replace("  - static:\n      action: pass\n", "  - key: {file: keys/none.pub}\n"),
        "m.yaml",
    )
    assert _problems(missing) == [
        f"{missing}: document 1 (acme): spec.authorities[0].key.file: cannot read "
        f"{tmp_path / 'keys' / 'none.pub'}: No such file or directory"
    ]


def test_trust_root_forms(tmp_path: Path) -> None:
    remote = """apiVersion: policy.sigstore.dev/v1alpha1
kind: TrustRoot
metadata: {name: tuf}
spec:
  remote: {root: eA==, mirror: https://tuf.example}
"""
    wrapper = """apiVersion: keyless.dev/v1alpha1
kind: TrustRoot
metadata: {name: mine}
spec:
  trustedRootFile: missing.json
"""
    keys = {
        "apiVersion": "policy.sigstore.dev/v1alpha1",
        "kind": "TrustRoot",
        "metadata": {"name": "byo"},
        "spec": {
            "sigstoreKeys": {
                "certificateAuthorities": [{"certChain": "!!"}],
                "tLogs": [{"baseURL": "https://log", "publicKey": "eA=="}],
                "extra": 1,
            }
        },
    }
    path = _write(
        tmp_path, remote + "---\n" + wrapper + "---\n" + json.dumps(keys) + "\n---\n" + POLICY
    )
    assert _problems(path) == [
        f"{path}: document 1 (tuf): spec.remote: TUF trust roots are not supported; use "
        "sigstoreKeys, or save the trusted_root.json and name it with --trust-root NAME=FILE",
        f"{path}: document 2 (mine): spec.trustedRootFile: cannot read trusted root "
        f"{tmp_path / 'missing.json'}: No such file or directory",
        f"{path}: document 3 (byo): spec.sigstoreKeys.extra: unknown field",
        f"{path}: document 3 (byo): spec.sigstoreKeys.certificateAuthorities[0].certChain: not "
        "valid base64",
        f"{path}: document 3 (byo): spec.sigstoreKeys.tLogs[0].publicKey: not base64 of a PEM "
        "public key",
    ]


def test_no_match_policy_sources(tmp_path: Path) -> None:
    config = """apiVersion: v1
kind: ConfigMap
metadata: {name: config-policy-controller}
data:
  no-match-policy: %s
"""
    path = _write(tmp_path, config % "warn" + "---\n" + POLICY)
    assert load_policy_set([path]).no_match_policy == "warn"
    assert load_policy_set([path], no_match_policy="allow").no_match_policy == "allow"
    bad = _write(tmp_path, config % "maybe" + "---\n" + POLICY, "bad.yaml")
    assert _problems(bad) == [
        f"{bad}: document 1 (config-policy-controller): data.no-match-policy: must be deny, "
        "warn or allow, not 'maybe'"
    ]
    assert load_policy_set([_write(tmp_path, POLICY, "plain.yaml")]).no_match_policy == "deny"


def test_fingerprint_follows_content_trust_and_no_match(tmp_path: Path) -> None:
    path = _write(tmp_path, POLICY)
    base = load_policy_set([path]).fingerprint
    assert base == load_policy_set([path]).fingerprint
    assert len(base) == 64
    assert load_policy_set([path], no_match_policy="allow").fingerprint != base
    staging = load_trust_file("", STAGING)
    assert load_policy_set([path], default_trust=staging).fingerprint != base
    _write(tmp_path, POLICY.replace("action: pass", "action: fail"))
    assert load_policy_set([path]).fingerprint != base


def test_evaluator_matching_uses_the_pinned_and_the_tag_names(tmp_path: Path) -> None:
    text = (
        POLICY
        + "---\n"
        + POLICY.replace("name: acme", "name: hub").replace(
            '"ghcr.io/acme/**"', '"index.docker.io/library/nginx:1.25"'
        )
    )
    policies = load_policy_set([_write(tmp_path, text)])
    evaluator = Evaluator(policies, registry=lambda: pytest.fail("no registry call expected"))
    digest = "sha256:" + "a" * 64
    tagged = ResolvedImage.from_reference(parse_reference("nginx:1.25"), digest)
    assert tagged.reference == f"index.docker.io/library/nginx@{digest}"
    assert [p.name for p in evaluator.match(tagged).policies] == ["hub"]
    pinned = evaluator.resolve(f"docker.io/library/nginx@{digest}")
    assert evaluator.match(pinned).policies == ()
    # A tag written beside a digest is decoration: nothing binds it, so it selects nothing.
    decorated = evaluator.resolve(f"nginx:1.25@{digest}")
    assert decorated.tag is None
    assert evaluator.match(decorated).policies == ()
    verdict = evaluator.evaluate(pinned)
    assert (verdict.outcome, verdict.messages) == (
        "fail",
        (f"no matching policies for index.docker.io/library/nginx@{digest}",),
    )
    static = evaluator.evaluate(evaluator.resolve(f"ghcr.io/acme/app@{digest}"))
    assert static.outcome == "pass"
    assert static.policies[0].authorities[0].message == "allowed by static policy"


def test_readme_policy_example_loads(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("### A policy: images of a GitHub Actions release workflow", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (policy,) = load_policy_set([_write(tmp_path, example)]).policies
    (identity,) = policy.authorities[0].identities
    pattern = identity.subject_regexp
    workflow = "https://github.com/acme/api/.github/workflows/release.yml"
    assert re.fullmatch(pattern, f"{workflow}@refs/tags/v1.4.2")
    assert not re.fullmatch(pattern, f"{workflow}@refs/heads/main")
    assert not re.fullmatch(pattern, f"{workflow}@refs/tags/v1.4.2-evil")


def test_yaml_problems_name_the_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "a: [")
    assert _problems(path) == [
        f"{path}:1:5: not valid YAML: expected the node content, but found '<stream end>'"
    ]


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    path = _write(tmp_path, bomb + "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n")
    assert _problems(path) == [f"{path}:1:4: YAML anchors (&a) are not allowed"]


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys: `mode: warn` then `mode: enforce` read as
    enforce, so the policy its reviewer read was not the one the gate ran."""
    path = _write(
        tmp_path, POLICY.replace("  authorities:", "  mode: warn\n  mode: enforce\n  authorities:")
    )
    assert _problems(path) == [f"{path}:9:3: duplicate key 'mode' (first at line 8)"]


def test_a_duplicate_key_in_a_trust_root_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "staging.json").write_bytes(STAGING.read_bytes())
    (tmp_path / "other.json").write_bytes(STAGING.read_bytes())
    trust_root = """apiVersion: keyless.dev/v1alpha1
kind: TrustRoot
metadata: {name: acme}
spec:
  trustedRootFile: staging.json
  trustedRootFile: other.json
"""
    path = _write(tmp_path, trust_root + "---\n" + POLICY)
    assert _problems(path) == [f"{path}:6:3: duplicate key 'trustedRootFile' (first at line 5)"]


def test_rfc3161timestamp_needs_a_trust_root_with_a_tsa(instance, tmp_path: Path) -> None:
    root = _write(tmp_path, json.dumps(instance.trusted_root()), "root.json")
    authority = """  - keyless:
      identities: [{issuer: https://a, subject: s}]
    rfc3161timestamp: {}
"""
    path = _write(tmp_path, POLICY.replace("  - static:\n      action: pass\n", authority))
    problems = _problems(path, default_trust=load_trust_file("", root))
    assert problems == [
        f"{path}: document 1 (acme): spec.authorities[0].rfc3161timestamp: the trust root "
        f"default ({root}) lists no timestamp authority"
    ]
    (policy,) = load_policy_set([path]).policies  # public Sigstore lists its TSA
    assert policy.authorities[0].require_timestamp is True


def test_the_model_is_typed_per_authority_kind_and_modes_are_enums(tmp_path: Path) -> None:
    from keyless.client.policy import (
        KeylessAuthority,
        Mode,
        NoMatchPolicy,
        Outcome,
        StaticAuthority,
    )

    text = (
        POLICY
        + "---\n"
        + POLICY.replace("name: acme", "name: audit").replace("spec:\n", "spec:\n  mode: warn\n")
    )
    policies = load_policy_set([_write(tmp_path, text)])
    acme, audit = policies.policies
    (static,) = acme.authorities
    assert isinstance(static, StaticAuthority) and static.passes and static.kind == "static"
    assert (acme.mode, audit.mode) == (Mode.ENFORCE, Mode.WARN)
    assert policies.no_match_policy is NoMatchPolicy.DENY
    # The enums are the strings the files and the JSON output spell.
    assert Mode.WARN == "warn" and json.dumps(Outcome.ERROR) == '"error"'
    assert not hasattr(KeylessAuthority, "flag_policy")


def test_a_verdict_says_what_the_modes_make_of_a_failure(tmp_path: Path) -> None:
    failing = POLICY.replace("action: pass", "action: fail")
    text = (
        failing
        + "---\n"
        + failing.replace("name: acme", "name: audit")
        .replace("spec:\n", "spec:\n  mode: warn\n")
        .replace('"ghcr.io/acme/**"', '"ghcr.io/audit/**"')
    )
    evaluator = Evaluator(
        load_policy_set([_write(tmp_path, text)]),
        registry=lambda: pytest.fail("no registry call expected"),
    )
    digest = "sha256:" + "a" * 64
    enforced = evaluator.evaluate(evaluator.resolve(f"ghcr.io/acme/app@{digest}"))
    assert (enforced.outcome, enforced.enforced, enforced.warn_only) == ("fail", True, False)
    warned = evaluator.evaluate(evaluator.resolve(f"ghcr.io/audit/app@{digest}"))
    assert (warned.outcome, warned.enforced, warned.warn_only) == ("warn", False, True)
    unmatched = evaluator.evaluate(evaluator.resolve(f"ghcr.io/other/app@{digest}"))
    assert (unmatched.enforced, unmatched.warn_only) == (False, False)
