"""`keyless policy check` end to end: ClusterImagePolicy files judged against a real registry.

Real pieces only: the dev-mode keyless server (CA, logs, dev tokens for alice and bob, a
GitHub-shaped issuer), Debian's docker-registry on loopback, `keyless sign IMAGE`, and
`cli.main.main` in-process. The server's trust root is saved to a file and named with
`--trust-root`, next to public Sigstore's root as the default, as a team trusting both would.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from pathlib import Path

import pytest
import requests

from keyless.cli.main import main
from tests.gate.webhook import cip, static
from tests.registry import Pusher

ALICE = "alice@example.com"
BOB = "bob@example.com"


def _sign(server, image: str, token: str, *extra: str) -> None:
    argv = ["sign", "--server", server.url, "--identity-token", token, "--allow-insecure-registry"]
    assert main([*argv, *extra, image]) == 0


def _check(*argv: str) -> int:
    return main(["policy", "check", "--allow-insecure-registry", *argv])


def _keyless(server, email: str, *, name: str = "dev", trust: str = "keyless-dev") -> str:
    return f"""  - name: {name}
    keyless:
      url: {server.url}
      trustRootRef: {trust}
      identities:
      - issuer: {server.url}/oidc
        subject: {email}
"""


@pytest.fixture(scope="module")
def trust_file(server, tmp_path_factory) -> Path:
    response = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30)
    response.raise_for_status()
    path = tmp_path_factory.mktemp("trust") / "keyless-dev.trusted_root.json"
    path.write_bytes(response.content)
    return path


@pytest.fixture
def write(tmp_path):
    def writer(text: str, name: str = "policy.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return writer


@pytest.fixture
def signed(server, registry, pusher: Pusher, capsys, request):
    """An image pushed as `<test>:1.0` and signed by alice."""
    repository = "policy/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    image = pusher.push_image(repository, "1.0", seed=request.node.name)
    _sign(server, image.reference, server.email_token(ALICE))
    capsys.readouterr()
    return image


def _pinned(registry, image) -> str:
    return f"{registry.host}/{image.reference.split('/', 1)[1].rsplit(':', 1)[0]}@{image.digest}"


def test_policy_naming_alice_passes_and_json_says_who_signed(
    server, registry, signed, trust_file, write, capsys
):
    policy = write(cip("acme", _keyless(server, ALICE)))
    trust = f"keyless-dev={trust_file}"
    assert _check("--policy", policy, "--trust-root", trust, signed.reference) == 0
    captured = capsys.readouterr()
    pinned = _pinned(registry, signed)
    assert captured.out == (f"PASS {pinned} (acme/dev: signed by {ALICE} ({server.url}/oidc))\n")
    assert "error" not in captured.err

    assert _check("--policy", policy, "--trust-root", trust, "-o", "json", signed.reference) == 0
    (verdict,) = json.loads(capsys.readouterr().out)["images"]
    assert verdict["digest"] == signed.digest
    assert verdict["image"] == pinned
    assert verdict["outcome"] == "pass"
    assert verdict["messages"] == []
    (policy_result,) = verdict["policies"]
    assert policy_result["name"] == "acme"
    assert policy_result["mode"] == "enforce"
    assert policy_result["passed"] is True
    (authority,) = policy_result["authorities"]
    signatures = authority.pop("signatures")
    assert authority == {
        "name": "dev",
        "passed": True,
        "message": f"signed by {ALICE} ({server.url}/oidc)",
        "identity": ALICE,
        "issuer": f"{server.url}/oidc",
    }
    # The signature that passed, in `keyless verify -o json`'s shape: the bundle, found first;
    # cosign's legacy signature (which needs a log lookup) is not even read once one passed.
    assert [s["source"] for s in signatures] == ["fallback-tag"]
    for signature in signatures:
        assert (signature["identity"], signature["issuer"]) == (ALICE, f"{server.url}/oidc")
        assert signature["log"]["url"] == server.url


def test_policy_naming_bob_refuses_and_says_who_signed(
    server, registry, signed, trust_file, write, capsys
):
    policy = write(cip("acme", _keyless(server, BOB)))
    code = _check("--policy", policy, "--trust-root", f"keyless-dev={trust_file}", signed.reference)
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == f"FAIL {_pinned(registry, signed)}\n"
    assert captured.err == (
        f"error: acme/dev: signed by {ALICE} ({server.url}/oidc) but the policy wants "
        f"{BOB} ({server.url}/oidc)\n"
    )


def test_unsigned_image_is_refused_with_no_signature_found(
    server, registry, pusher, trust_file, write, capsys
):
    image = pusher.push_image("policy/unsigned", "1.0", seed="never signed")
    policy = write(cip("acme", _keyless(server, ALICE)))
    code = _check("--policy", policy, "--trust-root", f"keyless-dev={trust_file}", image.reference)
    assert code == 1
    assert capsys.readouterr().err == (
        f"error: acme/dev: no signature found for {registry.host}/policy/unsigned@{image.digest}\n"
    )


def test_warn_mode_passes_with_a_warning(server, registry, signed, trust_file, write, capsys):
    policy = write(cip("acme-audit", _keyless(server, BOB), mode="warn"))
    code = _check("--policy", policy, "--trust-root", f"keyless-dev={trust_file}", signed.reference)
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out == f"WARN {_pinned(registry, signed)}\n"
    assert captured.err == (
        f"warning: acme-audit/dev: signed by {ALICE} ({server.url}/oidc) but the policy wants "
        f"{BOB} ({server.url}/oidc)\n"
    )


def test_every_matching_policy_must_pass_and_any_authority_is_enough(
    server, registry, signed, trust_file, write, capsys
):
    either = _keyless(server, BOB, name="bob") + _keyless(server, ALICE, name="alice")
    policies = write(
        cip("either", either) + "---" + cip("only-bob", _keyless(server, BOB), glob="127.0.0.1*/**")
    )
    code = _check(
        "--policy", policies, "--trust-root", f"keyless-dev={trust_file}", signed.reference
    )
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"error: only-bob/dev: signed by {ALICE} ({server.url}/oidc) but the policy wants "
        f"{BOB} ({server.url}/oidc)"
    ]
    code = _check(
        "--policy",
        policies,
        "--trust-root",
        f"keyless-dev={trust_file}",
        "-o",
        "json",
        signed.reference,
    )
    (verdict,) = json.loads(capsys.readouterr().out)["images"]
    either_result = verdict["policies"][0]
    assert either_result["passed"] is True
    assert [a["passed"] for a in either_result["authorities"]] == [False, True]


def test_public_sigstore_default_and_private_root_side_by_side(
    server, registry, signed, trust_file, write, capsys
):
    public = """  - name: public
    keyless:
      url: https://fulcio.sigstore.dev
      identities:
      - issuer: https://token.actions.githubusercontent.com
        subjectRegExp: 'https://github\\.com/acme/.+'
    ctlog:
      url: https://rekor.sigstore.dev
"""
    policy = write(cip("both", public + _keyless(server, ALICE, name="private")))
    trust = f"keyless-dev={trust_file}"
    assert _check("--policy", policy, "--trust-root", trust, signed.reference) == 0
    capsys.readouterr()
    only_public = write(cip("public-only", public), "public.yaml")
    assert _check("--policy", only_public, "--trust-root", trust, signed.reference) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: public-only/public: no valid signature by a trusted signer for "
        f"{_pinned(registry, signed)}: 2 found, none verifies"
    )


def test_trust_root_document_with_sigstore_keys(
    server, registry, signed, trust_file, write, capsys
):
    document = _sigstore_keys_document(json.loads(trust_file.read_text()), "byo")
    policy = write(document + "---" + cip("acme", _keyless(server, ALICE, trust="byo")))
    assert _check("--policy", policy, signed.reference) == 0
    assert capsys.readouterr().out.startswith("PASS ")


def test_keyless_wrapper_names_a_trusted_root_file(
    server, registry, signed, trust_file, write, capsys, tmp_path
):
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "dev.json").write_bytes(trust_file.read_bytes())
    wrapper = """apiVersion: keyless.dev/v1alpha1
kind: TrustRoot
metadata:
  name: dev
spec:
  trustedRootFile: roots/dev.json
"""
    policy = write(wrapper + "---" + cip("acme", _keyless(server, ALICE, trust="dev")))
    assert _check("--policy", policy, signed.reference) == 0


def test_github_release_workflow_with_an_anchored_subject_regexp(
    server, registry, pusher, trust_file, write, capsys
):
    image = pusher.push_image("policy/gha", "v1.0.0", seed="gha release")
    _sign(server, image.reference, server.github_token(ref="refs/tags/v1.0.0"))
    issuer = server.issuer.github_issuer_url
    subject = r"https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*"
    authority = f"""  - name: release
    keyless:
      url: {server.url}
      trustRootRef: keyless-dev
      identities:
      - issuer: {issuer}
        subjectRegExp: '{subject}'
"""
    policy = write(cip("releases", authority))
    trust = f"keyless-dev={trust_file}"
    capsys.readouterr()
    assert _check("--policy", policy, "--trust-root", trust, image.reference) == 0
    out = capsys.readouterr().out
    assert (
        "signed by https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
        in out
    )
    # Anchored: a prefix of the real identity is not enough.
    prefix = write(cip("releases", authority.replace("@refs/tags/v.*", "")), "prefix.yaml")
    assert _check("--policy", prefix, "--trust-root", trust, image.reference) == 1
    assert "but the policy wants /https://github" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rule", "code", "line"),
    [
        ("deny", 1, "error: no matching policies for "),
        ("warn", 0, "warning: no matching policies for "),
        ("allow", 0, None),
    ],
)
def test_no_match_policy(server, registry, signed, write, capsys, rule, code, line):
    policy = write(cip("elsewhere", "  - static: {action: pass}\n", glob="ghcr.io/acme/**"))
    assert _check("--policy", policy, "--no-match-policy", rule, signed.reference) == code
    err = capsys.readouterr().err
    if line is None:
        assert err == ""
    else:
        assert err == f"{line}{_pinned(registry, signed)}\n"


def test_no_match_policy_from_the_policy_controller_config_map(registry, signed, write, capsys):
    config = """apiVersion: v1
kind: ConfigMap
metadata:
  name: config-policy-controller
data:
  no-match-policy: allow
"""
    policy = write(config + "---" + cip("x", "  - static: {action: fail}\n", glob="ghcr.io/**"))
    assert _check("--policy", policy, signed.reference) == 0


def test_static_fail_says_so(registry, signed, write, capsys):
    authority = "  - static:\n      action: fail\n      message: frozen for the release\n"
    policy = write(cip("freeze", authority))
    assert _check("--policy", policy, signed.reference) == 1
    assert capsys.readouterr().err == (
        "error: freeze/authority-0: disallowed by static policy: frozen for the release\n"
    )


def test_unreachable_registry_is_exit_3_never_a_pass(write, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = write(cip("pass-all", "  - static: {action: pass}\n"))
    image = f"127.0.0.1:{port}/app:1.0"
    assert _check("--policy", policy, image) == 3
    captured = capsys.readouterr()
    assert captured.out == f"ERROR {image}\n"
    assert captured.err.startswith(f"error: could not resolve {image}: ")


def test_unreachable_registry_for_a_pinned_image_is_exit_3(server, write, capsys, trust_file):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    image = f"127.0.0.1:{port}/app@sha256:{'ab' * 32}"
    policy = write(cip("acme", _keyless(server, ALICE)))
    code = _check("--policy", policy, "--trust-root", f"keyless-dev={trust_file}", image)
    assert code == 3
    assert capsys.readouterr().err.startswith(f"error: could not read the signatures of {image}: ")


def test_bad_policy_file_is_exit_2_with_one_line_per_problem(write, capsys):
    bad = """apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: bad
spec:
  images:
  - glob: "ghcr.io/[a-z]*"
  mode: audit
  authorities:
  - keyless:
      url: https://fulcio.sigstore.dev
      identities:
      - issuer: https://issuer
        subjectRegExp: "(unclosed"
      trustRootRef: nowhere
    colour: blue
"""
    path = write(bad)
    assert _check("--policy", path, "ghcr.io/acme/app:1") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: document 1 (bad): spec.images[0].glob: invalid glob 'ghcr.io/[a-z]*': "
        "only letters, digits and -_:/*.@ are allowed",
        f"error: {path}: document 1 (bad): spec.mode: must be enforce or warn, not 'audit'",
        f"error: {path}: document 1 (bad): spec.authorities[0].colour: unknown field",
        f"error: {path}: document 1 (bad): spec.authorities[0].keyless.identities[0]."
        'subjectRegExp: "(unclosed" is not a valid regexp: missing ), unterminated '
        "subpattern at position 0",
        f"error: {path}: document 1 (bad): spec.authorities[0].keyless.trustRootRef: names no "
        "TrustRoot document and no --trust-root: 'nowhere'",
    ]


def test_a_duplicate_mode_is_exit_2_with_its_line_and_nothing_is_judged(write, capsys):
    """`mode: warn` then `mode: enforce`: PyYAML would keep enforce, so a pipeline would run
    another policy than its reviewer read. The file is refused and no image gets a verdict."""
    text = cip("dup", static("fail"), mode="warn").replace(
        "  mode: warn\n", "  mode: warn\n  mode: enforce\n"
    )
    path = write(text)
    image = "127.0.0.1:9/acme/app@sha256:" + "a" * 64
    assert _check("--policy", path, image) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {path}:10:3: duplicate key 'mode' (first at line 9)\n"


def test_usage_errors_are_exit_2(write, capsys):
    policy = write(cip("x", "  - static: {action: pass}\n"))
    with pytest.raises(SystemExit) as info:
        _check("--policy", policy)
    assert info.value.code == 2
    assert "give at least one IMAGE or --resource" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        _check("--policy", policy, "--trust-root", "no-equals-sign", "ghcr.io/a/b:1")
    assert info.value.code == 2
    assert "--trust-root wants NAME=FILE, not 'no-equals-sign'" in capsys.readouterr().err


def test_invalid_image_reference_is_refused(write, capsys):
    policy = write(cip("x", "  - static: {action: pass}\n"))
    assert _check("--policy", policy, "Not/A/Valid/Ref") == 1
    captured = capsys.readouterr()
    assert captured.out == "FAIL Not/A/Valid/Ref\n"
    assert captured.err == (
        "error: Not/A/Valid/Ref: invalid reference format: repository name (A/Valid/Ref) "
        "must be lowercase\n"
    )


def _sigstore_keys_document(root: dict, name: str) -> str:
    """A policy-controller TrustRoot (sigstoreKeys form) holding the same keys as `root`."""

    def pem(kind: str, der_b64: str) -> str:
        body = base64.encodebytes(base64.b64decode(der_b64)).decode().replace("\n", "")
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        text = f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"
        return base64.b64encode(text.encode()).decode()

    def chain(ca: dict) -> str:
        pems = [
            base64.b64decode(pem("CERTIFICATE", c["rawBytes"])).decode()
            for c in ca["certChain"]["certificates"]
        ]
        return base64.b64encode("".join(pems).encode()).decode()

    def log(entry: dict) -> dict:
        return {
            "baseURL": entry["baseUrl"],
            "hashAlgorithm": "sha-256",
            "publicKey": pem("PUBLIC KEY", entry["publicKey"]["rawBytes"]),
        }

    keys = {
        "certificateAuthorities": [
            {"subject": ca.get("subject", {}), "uri": ca["uri"], "certChain": chain(ca)}
            for ca in root["certificateAuthorities"]
        ],
        "tLogs": [log(t) for t in root["tlogs"]],
        "ctLogs": [log(t) for t in root["ctlogs"]],
    }
    document = {
        "apiVersion": "policy.sigstore.dev/v1alpha1",
        "kind": "TrustRoot",
        "metadata": {"name": name},
        "spec": {"sigstoreKeys": keys},
    }
    return json.dumps(document) + "\n"


def test_signature_format_bundle_ignores_cosign_legacy_signatures(
    server, registry, pusher, trust_file, write, capsys
):
    image = pusher.push_image("policy/legacy-only", "1", seed="legacy only")
    _sign(server, image.reference, server.email_token(ALICE))
    index = requests.get(
        f"{registry.url}/v2/policy/legacy-only/manifests/sha256-{image.digest[7:]}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        timeout=30,
    )
    pusher.delete_manifest("policy/legacy-only", index.headers["Docker-Content-Digest"])
    capsys.readouterr()
    trust = f"keyless-dev={trust_file}"
    legacy = write(cip("acme", _keyless(server, ALICE)))
    assert _check("--policy", legacy, "--trust-root", trust, image.reference) == 0
    capsys.readouterr()
    bundles = write(
        cip("acme", _keyless(server, ALICE) + "    signatureFormat: bundle\n"), "bundle.yaml"
    )
    assert _check("--policy", bundles, "--trust-root", trust, image.reference) == 1
    assert capsys.readouterr().err == (
        f"error: acme/dev: no signature found for {registry.host}/policy/legacy-only@"
        f"{image.digest} (only cosign legacy signatures; the policy wants Sigstore bundles, "
        "signatureFormat: bundle)\n"
    )


def test_unreadable_trust_roots_are_exit_2(write, capsys, tmp_path):
    policy = write(cip("x", "  - static: {action: pass}\n"))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    missing = tmp_path / "missing.json"
    argv = ["--policy", policy, "--trust-root", f"a={missing}", "--trusted-root", str(bad)]
    assert _check(*argv, "ghcr.io/acme/app:1") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --trust-root a: cannot read trusted root {missing}: No such file or directory",
        "error: --trusted-root: malformed trusted root: mediaType: Field required",
    ]


def test_rfc3161timestamp_requires_a_tsa_timestamp(
    server, registry, signed, trust_file, write, capsys
):
    stamped = _keyless(server, ALICE) + "    rfc3161timestamp:\n      trustRootRef: keyless-dev\n"
    policy = write(cip("acme", stamped))
    code = _check("--policy", policy, "--trust-root", f"keyless-dev={trust_file}", signed.reference)
    assert code == 1
    assert capsys.readouterr().err == (
        f"error: acme/dev: no valid signature by a trusted signer for {_pinned(registry, signed)}"
        ": 2 found, none verifies (fallback-tag: it has no verified RFC 3161 timestamp, and the "
        "policy requires one)\n"
    )


def test_resource_checks_every_image_of_the_manifest(
    server, registry, signed, pusher, trust_file, write, capsys, tmp_path
):
    unsigned = pusher.push_image("policy/sidecar", "2.0", seed="unsigned sidecar")
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(
        f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: {signed.reference}
      containers:
      - name: app
        image: {signed.reference}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: job
            image: {unsigned.reference}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  key: value
"""
    )
    policy = write(cip("acme", _keyless(server, ALICE)))
    trust = f"keyless-dev={trust_file}"
    code = _check("--policy", policy, "--trust-root", trust, "--resource", str(manifest))
    assert code == 1
    captured = capsys.readouterr()
    # The same image twice is judged once.
    assert captured.out.splitlines() == [
        f"PASS {_pinned(registry, signed)} (acme/dev: signed by {ALICE} ({server.url}/oidc))",
        f"FAIL {registry.host}/policy/sidecar@{unsigned.digest}",
    ]
    assert captured.err == (
        f"error: acme/dev: no signature found for {registry.host}/policy/sidecar@"
        f"{unsigned.digest}\n"
    )


def test_unreadable_resource_is_exit_2(write, capsys, tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: 7\n")
    policy = write(cip("x", "  - static: {action: pass}\n"))
    assert _check("--policy", policy, "--resource", str(manifest)) == 2
    assert capsys.readouterr().err == (
        f"error: {manifest}: document 1: spec.containers: must be a list, not a number\n"
    )
