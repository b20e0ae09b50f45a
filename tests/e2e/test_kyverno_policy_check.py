"""Kyverno ClusterPolicies judged end to end by `keyless policy check` and by the gate.

Real pieces only: the dev-mode keyless server (CA, logs, dev tokens for alice and bob),
Debian's docker-registry on loopback, `keyless sign IMAGE` and `keyless attest IMAGE`, and
`cli.main.main` in-process; the gate is `create_gate_app` with werkzeug's test client, over the
same registry. The server's trust root is the default (`--trusted-root`), as a team trusting
its own Sigstore would run it; one test builds the same trust from the attestor's `roots`,
`rekor.pubkey` and `ctlog.pubkey` instead.

Kyverno's conformance tests sign images on ghcr.io with public Sigstore; the policies here have
the same shapes (tests/data/kyverno holds Kyverno's own files, judged at load).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import requests
from werkzeug.test import Client

from keyless.cli.main import main
from keyless.client.policy import load_policy_set
from keyless.server.gate.app import create_gate_app
from keyless.server.gate.gate import GateSettings
from tests.gate.webhook import admission_review, cip, decoded_patch, pod
from tests.registry import Pusher

ALICE = "alice@example.com"
BOB = "bob@example.com"
SLSA_V1 = "https://slsa.dev/provenance/v1"
WORKFLOW_BUILD = "https://actions.github.io/buildtypes/workflow/v1"


def _keyless(server, subject: str, extra: str = "") -> str:
    return f"""- keyless:
            subject: "{subject}"
            issuer: {server.url}/oidc
            rekor:
              url: {server.url}{extra}"""


def kyverno(
    entries: str,
    *,
    count: int | None = None,
    action: str = "Enforce",
    verify: str = "",
    references: str = '"127.0.0.1*"',
) -> str:
    counted = f"count: {count}\n        " if count else ""
    return f"""apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-image
spec:
  validationFailureAction: {action}
  webhookTimeoutSeconds: 30
  rules:
  - name: verify
    match:
      any:
      - resources:
          kinds:
          - Pod
    verifyImages:
    - imageReferences:
      - {references}
{verify}      attestors:
      - {counted}entries:
        {entries}
"""


@pytest.fixture(scope="module")
def trust_file(server, tmp_path_factory) -> Path:
    response = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30)
    response.raise_for_status()
    path = tmp_path_factory.mktemp("trust") / "keyless-dev.trusted_root.json"
    path.write_bytes(response.content)
    return path


def _sign(server, image: str, email: str) -> None:
    argv = ["sign", "--server", server.url, "--identity-token", server.email_token(email)]
    assert main([*argv, "--allow-insecure-registry", image]) == 0


@pytest.fixture
def signed(server, pusher: Pusher, capsys, request):
    """An image pushed as `<test>:1.0` and signed by alice."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    image = pusher.push_image(f"kyverno/{name}", "1.0", seed=request.node.name)
    _sign(server, image.reference, ALICE)
    capsys.readouterr()
    return image


@pytest.fixture
def check(tmp_path, trust_file):
    def run(text: str, image: str, *extra: str, trusted: bool = True) -> int:
        path = tmp_path / "policy.yaml"
        path.write_text(text)
        argv = ["policy", "check", "--allow-insecure-registry", "--policy", str(path)]
        if trusted:
            argv += ["--trusted-root", str(trust_file)]
        return main([*argv, *extra, image])

    return run


def _pinned(registry, image) -> str:
    return f"{registry.host}/{image.reference.split('/', 1)[1].rsplit(':', 1)[0]}@{image.digest}"


def test_vendor_style_policy_passes_and_json_says_who_signed(
    server, registry, signed, check, capsys
) -> None:
    assert check(kyverno(_keyless(server, "*@example.com")), signed.reference) == 0
    out = capsys.readouterr().out
    assert out == (
        f"PASS {_pinned(registry, signed)} (check-image.verify/attestors[0]: entries[0].keyless: "
        f"signed by {ALICE} ({server.url}/oidc))\n"
    )
    assert check(kyverno(_keyless(server, ALICE)), signed.reference, "-o", "json") == 0
    (verdict,) = json.loads(capsys.readouterr().out)["images"]
    (policy,) = verdict["policies"]
    assert (policy["name"], policy["mode"], policy["passed"]) == (
        "check-image.verify",
        "enforce",
        True,
    )
    (group,) = policy["authorities"]
    assert (group["name"], group["identity"]) == ("attestors[0]", ALICE)
    (member,) = group["authorities"]
    assert member["name"] == "entries[0].keyless"
    assert [s["identity"] for s in member["signatures"]] == [ALICE]


def test_wrong_signer_is_refused_and_named(server, registry, signed, check, capsys) -> None:
    assert check(kyverno(_keyless(server, BOB)), signed.reference) == 1
    captured = capsys.readouterr()
    assert captured.out == f"FAIL {_pinned(registry, signed)}\n"
    assert captured.err == (
        "error: check-image.verify/attestors[0]: needs 1 of 1, 0 passed: entries[0].keyless: "
        f"signed by {ALICE} ({server.url}/oidc) but the policy wants subject {BOB}, "
        f"issuer {server.url}/oidc\n"
    )


def test_unsigned_image_is_refused(server, registry, pusher, check, capsys) -> None:
    image = pusher.push_image("kyverno/unsigned", "1.0", seed="kyverno never signed")
    assert check(kyverno(_keyless(server, ALICE)), image.reference) == 1
    assert capsys.readouterr().err == (
        "error: check-image.verify/attestors[0]: needs 1 of 1, 0 passed: entries[0].keyless: "
        f"no signature found for {_pinned(registry, image)}\n"
    )


def test_count_absent_needs_every_entry_and_count_one_needs_one(
    server, registry, signed, check, capsys
) -> None:
    entries = _keyless(server, BOB) + "\n        " + _keyless(server, ALICE)
    assert check(kyverno(entries), signed.reference) == 1
    # bob's entry fails first; alice's is not even tried, since 2 of 2 can no longer pass.
    assert capsys.readouterr().err == (
        "error: check-image.verify/attestors[0]: needs 2 of 2, 0 passed: entries[0].keyless: "
        f"signed by {ALICE} ({server.url}/oidc) but the policy wants subject {BOB}, "
        f"issuer {server.url}/oidc\n"
    )
    assert check(kyverno(entries, count=1), signed.reference) == 0
    assert capsys.readouterr().out.endswith(
        f"entries[1].keyless: signed by {ALICE} ({server.url}/oidc))\n"
    )
    # Signed by bob too: now both entries pass, and the policy without count admits it.
    _sign(server, signed.reference, BOB)
    capsys.readouterr()
    assert check(kyverno(entries), signed.reference) == 0


def test_audit_warns_and_passes(server, registry, signed, check, capsys) -> None:
    text = kyverno(_keyless(server, BOB), action="Audit", verify="      mutateDigest: false\n")
    assert check(text, signed.reference) == 0
    captured = capsys.readouterr()
    assert captured.out == f"WARN {_pinned(registry, signed)}\n"
    assert captured.err.startswith("warning: check-image.verify/attestors[0]: needs 1 of 1")


def test_skip_image_references_leave_the_image_to_the_no_match_rule(
    server, registry, signed, check, capsys
) -> None:
    text = kyverno(_keyless(server, BOB)).replace(
        "    - imageReferences:\n",
        '    - skipImageReferences: ["127.0.0.1*/kyverno/*"]\n      imageReferences:\n',
    )
    assert check(text, signed.reference) == 1
    assert capsys.readouterr().err == (
        f"error: no matching policies for {_pinned(registry, signed)}\n"
    )
    assert check(text, signed.reference, "--no-match-policy", "allow") == 0


def test_unanchored_regexp_warns_at_load_and_is_matched_whole(
    server, registry, signed, check, capsys
) -> None:
    prefix = _keyless(server, ALICE).replace(f'subject: "{ALICE}"', "subjectRegExp: alice")
    assert check(kyverno(prefix), signed.reference) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: ") and err[0].endswith(
        "keyless.subjectRegExp: 'alice' must match the whole value here, where Kyverno matches it "
        "anywhere in the value (write ^...$ to mean the same in both)"
    )
    assert err[1].endswith(f"but the policy wants subject /alice/, issuer {server.url}/oidc")
    whole = _keyless(server, ALICE).replace(f'subject: "{ALICE}"', "subjectRegExp: ^alice@.+$")
    assert check(kyverno(whole), signed.reference) == 0
    assert "warning" not in capsys.readouterr().err


def _pem(kind: str, der_b64: str) -> str:
    body = base64.encodebytes(base64.b64decode(der_b64)).decode()
    return f"-----BEGIN {kind}-----\n{body}-----END {kind}-----\n"


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def test_roots_and_log_keys_in_the_policy_replace_the_default_trust(
    server, registry, signed, check, trust_file, capsys
) -> None:
    """No --trusted-root: public Sigstore is the default, and only the attestor's own roots,
    rekor.pubkey and ctlog.pubkey make the server's signatures verify."""
    root = json.loads(trust_file.read_text())
    roots = "".join(
        _pem("CERTIFICATE", c["rawBytes"])
        for ca in root["certificateAuthorities"]
        for c in ca["certChain"]["certificates"]
    )
    (ctlog,) = root["ctlogs"]

    def entry(rekor_key: str) -> str:
        return f"""- keyless:
            subject: {ALICE}
            issuer: {server.url}/oidc
            roots: |
{_indent(roots, 14)}
            rekor:
              url: {server.url}
              pubkey: |
{_indent(rekor_key, 16)}
            ctlog:
              pubkey: |
{_indent(_pem("PUBLIC KEY", ctlog["publicKey"]["rawBytes"]), 16)}"""

    # The server runs Rekor v1 and v2 on one origin; Kyverno takes one log key: the one that
    # logged the signature passes, the other does not.
    logs = [t for t in root["tlogs"] if t["baseUrl"].rstrip("/") == server.url]
    codes = [
        check(
            kyverno(entry(_pem("PUBLIC KEY", t["publicKey"]["rawBytes"]))),
            signed.reference,
            trusted=False,
        )
        for t in logs
    ]
    assert sorted(codes) == [0] + [1] * (len(logs) - 1)
    capsys.readouterr()
    # Without them, public Sigstore's root does not know the server's CA.
    assert check(kyverno(_keyless(server, ALICE)), signed.reference, trusted=False) == 1
    assert "none verifies" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("signer", "outcome"),
    [(ALICE, "pass"), (BOB, "fail"), (None, "fail")],
)
def test_a_cluster_image_policy_and_a_cluster_policy_agree(
    server, registry, pusher, check, capsys, request, signer, outcome
) -> None:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[-40:].strip("-")
    image = pusher.push_image(f"kyverno/{name}", "1", seed=request.node.name)
    if signer is not None:
        _sign(server, image.reference, signer)
    authority = f"""  - name: dev
    keyless:
      url: {server.url}
      identities:
      - issuer: {server.url}/oidc
        subject: {ALICE}
"""
    verdicts = []
    for text in (cip("acme", authority, glob="127.0.0.1*/**"), kyverno(_keyless(server, ALICE))):
        capsys.readouterr()
        check(text, image.reference, "-o", "json")
        (verdict,) = json.loads(capsys.readouterr().out)["images"]
        verdicts.append((verdict["outcome"], verdict["digest"]))
    assert verdicts == [(outcome, image.digest)] * 2


def _provenance(build_type: str) -> dict:
    return {
        "buildDefinition": {"buildType": build_type, "externalParameters": {}},
        "runDetails": {"builder": {"id": "https://github.com/acme/app/.github/workflows/r.yml"}},
    }


def test_attestation_conditions_hold_for_every_attestation_of_the_type(
    server, registry, signed, check, tmp_path, capsys
) -> None:
    predicate = tmp_path / "provenance.json"
    predicate.write_text(json.dumps(_provenance(WORKFLOW_BUILD)))
    argv = ["attest", "--server", server.url, "--identity-token", server.email_token(ALICE)]
    argv += [
        "--allow-insecure-registry",
        "--predicate",
        str(predicate),
        "--type",
        "slsaprovenance1",
    ]
    assert main([*argv, signed.reference]) == 0
    capsys.readouterr()

    def attested(build_type: str, subject: str = ALICE) -> str:
        return f"""apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: provenance
spec:
  validationFailureAction: Enforce
  rules:
  - name: slsa
    match:
      resources:
        kinds: [Pod]
    verifyImages:
    - imageReferences: ["127.0.0.1*"]
      attestations:
      - type: {SLSA_V1}
        attestors:
        - entries:
          {_keyless(server, subject).replace(chr(10), chr(10) + "  ")}
        conditions:
        - all:
          - key: "{{{{ buildDefinition.buildType }}}}"
            operator: Equals
            value: "{build_type}"
            message: not built by the release workflow
"""

    assert check(attested("https://actions.github.io/*"), signed.reference) == 0
    assert capsys.readouterr().out == (
        f"PASS {_pinned(registry, signed)} (provenance.slsa/attestations[0]: attestors[0]: "
        f"entries[0].keyless: attested: attestations[0] ({SLSA_V1}) by {ALICE} "
        f"({server.url}/oidc))\n"
    )
    assert check(attested("https://example.com/other"), signed.reference) == 1
    assert capsys.readouterr().err == (
        "error: provenance.slsa/attestations[0]: needs 1 of 1, 0 passed: attestors[0]: needs 1 "
        "of 1, 0 passed: entries[0].keyless: attestation attestations[0]: attestation checks "
        f"failed for predicate {SLSA_V1}: not built by the release workflow\n"
    )
    # A second provenance by alice that fails the condition fails the check (every one must hold).
    predicate.write_text(json.dumps(_provenance("https://example.com/x")))
    assert main([*argv, signed.reference]) == 0
    capsys.readouterr()
    assert check(attested("https://actions.github.io/*"), signed.reference) == 1
    assert "attestation checks failed" in capsys.readouterr().err
    assert check(attested("https://*"), signed.reference) == 0


# The gate judges the same files the same way.


def _gate(tmp_path: Path, trust_file: Path, text: str) -> Client:
    from keyless.client.policy import load_trust_file

    path = tmp_path / "gate-policy.yaml"
    path.write_text(text)
    policies = load_policy_set([path], default_trust=load_trust_file("", trust_file))
    app = create_gate_app(
        policies, GateSettings(timeout=20.0, workers=2), allow_insecure_registry=True
    )
    return Client(app)


def _review(client: Client, path: str, *images: str) -> dict:
    answer = client.post(path, json=admission_review(pod(*images)))
    assert answer.status_code == 200
    return json.loads(answer.data)["response"]


def test_the_gate_admits_refuses_and_pins_as_policy_check_judges(
    server, registry, signed, pusher, tmp_path, trust_file
) -> None:
    pinned = _pinned(registry, signed)
    client = _gate(tmp_path, trust_file, kyverno(_keyless(server, ALICE)))
    assert _review(client, "/validations", f"{signed.reference.rsplit(':', 1)[0]}@{signed.digest}")[
        "allowed"
    ]
    unsigned = pusher.push_image("kyverno/gate-unsigned", "1.0", seed="gate unsigned")
    refused = _review(
        client, "/validations", f"{registry.host}/kyverno/gate-unsigned@{unsigned.digest}"
    )
    assert refused["allowed"] is False
    assert refused["status"]["message"] == (
        "spec.containers[0].image: check-image.verify/attestors[0]: needs 1 of 1, 0 passed: "
        f"entries[0].keyless: no signature found for {registry.host}/kyverno/gate-unsigned@"
        f"{unsigned.digest}"
    )
    # mutateDigest (default true): the tag is pinned; verifyDigest: the tag alone is refused.
    mutation = _review(client, "/mutations", signed.reference)
    assert decoded_patch(mutation) == [
        {
            "op": "replace",
            "path": "/spec/containers/0/image",
            "value": f"{pinned.split('@')[0]}:1.0@{signed.digest}",
        }
    ]
    tag = _review(client, "/validations", signed.reference)
    assert tag["allowed"] is False
    assert "must be an image digest" in tag["status"]["message"]


def test_the_gate_leaves_a_tag_alone_without_mutate_digest_and_verify_digest(
    server, registry, signed, tmp_path, trust_file
) -> None:
    flags = "      mutateDigest: false\n      verifyDigest: false\n"
    client = _gate(tmp_path, trust_file, kyverno(_keyless(server, ALICE), verify=flags))
    assert decoded_patch(_review(client, "/mutations", signed.reference)) == []
    assert _review(client, "/validations", signed.reference)["allowed"] is True
    # verifyDigest alone: not pinned, and refused until the pod names the digest.
    only_verify = "      mutateDigest: false\n"
    client = _gate(tmp_path, trust_file, kyverno(_keyless(server, ALICE), verify=only_verify))
    assert decoded_patch(_review(client, "/mutations", signed.reference)) == []
    assert _review(client, "/validations", signed.reference)["allowed"] is False
