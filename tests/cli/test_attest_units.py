"""The attestation building blocks without servers: type names, statements, bundle files, Rego."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from keyless.client.attest.bundles import read_bundles, write_bundle
from keyless.client.attest.predicates import PREDICATE_TYPES, AttestationError, predicate_type_uri
from keyless.client.attest.rego import (
    POLICY_CONTROLLER_QUERY,
    PolicyError,
    RegoPolicy,
    evaluate_rego,
)
from keyless.client.attest.statement import statement
from keyless.client.verify import BundleError

GITHUB = Path(__file__).resolve().parents[1] / "data" / "github-cli"


def test_cosign_short_names_map_to_cosigns_uris() -> None:
    assert PREDICATE_TYPES == {
        "custom": "https://cosign.sigstore.dev/attestation/v1",
        "slsaprovenance": "https://slsa.dev/provenance/v0.2",
        "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1": "https://slsa.dev/provenance/v1",
        "spdx": "https://spdx.dev/Document",
        "spdxjson": "https://spdx.dev/Document",
        "cyclonedx": "https://cyclonedx.org/bom",
        "link": "https://in-toto.io/Link/v1",
        "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex": "https://openvex.dev/ns",
    }
    assert predicate_type_uri("urn:example:test") == "urn:example:test"


@pytest.mark.parametrize("value", ["slsa", "no scheme", "https://x y", "https://a\nb", "x" * 600])
def test_a_type_that_is_neither_name_nor_uri_is_refused(value: str) -> None:
    with pytest.raises(AttestationError) as info:
        predicate_type_uri(value)
    assert info.value.message.startswith("unknown predicate type ")
    assert "\n" not in info.value.message


def test_statement_is_in_toto_v1_with_named_subjects() -> None:
    body = json.loads(statement([("a.txt", "ab" * 32), ("b", "cd" * 32)], "urn:t", {"k": "é"}))
    assert body == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": "a.txt", "digest": {"sha256": "ab" * 32}},
            {"name": "b", "digest": {"sha256": "cd" * 32}},
        ],
        "predicateType": "urn:t",
        "predicate": {"k": "é"},
    }


def test_bundle_files_single_and_jsonl(tmp_path: Path) -> None:
    line = (GITHUB / "custom-issuer.sigstore.json").read_text()
    jsonl = tmp_path / "a.intoto.jsonl"
    write_bundle(jsonl, line)
    write_bundle(jsonl, line)
    assert len(jsonl.read_text().splitlines()) == 2
    assert len(read_bundles(jsonl)) == 2
    single = tmp_path / "one.json"
    write_bundle(single, line)
    write_bundle(single, line)
    assert len(read_bundles(single)) == 1
    assert list(tmp_path.glob(".*tmp")) == []


def test_a_bad_line_is_named_not_skipped(tmp_path: Path) -> None:
    line = (GITHUB / "custom-issuer.sigstore.json").read_text().replace("\n", "")
    path = tmp_path / "b.jsonl"
    path.write_text(line + "\n{}\n")
    with pytest.raises(BundleError) as info:
        read_bundles(path)
    assert info.value.detail.startswith(f"{path} line 2: malformed bundle")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(BundleError, match="holds no bundle"):
        read_bundles(empty)


def test_appending_refuses_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"\xff\xfe\n")
    from keyless.client.errors import ClientError

    with pytest.raises(ClientError, match="not a UTF-8 JSON Lines file"):
        write_bundle(path, "{}")
    assert path.read_bytes() == b"\xff\xfe\n"


COSIGN_STYLE = """package signature

default allow = false

allow {
    input.predicateType == "https://slsa.dev/provenance/v1"
}
"""


def test_rego_allow_is_true_only_when_the_rule_is_true() -> None:
    assert evaluate_rego(COSIGN_STYLE, {"predicateType": "https://slsa.dev/provenance/v1"}) == (
        True,
        [],
    )
    assert evaluate_rego(COSIGN_STYLE, {"predicateType": "other"}) == (False, [])
    # a non-boolean allow does not allow
    assert evaluate_rego('package signature\nallow := "yes"\n', {}) == (False, [])
    # a policy for another package never allows
    assert evaluate_rego("package other\nallow := true\n", {}) == (False, [])


def test_rego_deny_messages_in_v0_and_v1_syntax() -> None:
    v0 = (
        'package signature\nallow { input.a == 1 }\ndeny[msg] { not allow; msg := "a must be 1" }\n'
    )
    v1 = 'package signature\nimport rego.v1\nallow if input.a == 1\ndeny contains "a must be 1" if not allow\n'
    assert evaluate_rego(v0, {"a": 2}) == (False, ["a must be 1"])
    assert evaluate_rego(v1, {"a": 2}) == (False, ["a must be 1"])
    assert evaluate_rego(v1, {"a": 1}) == (True, [])


def test_rego_compile_errors_are_one_line_and_print_nothing(capfd) -> None:
    with pytest.raises(PolicyError) as info:
        RegoPolicy("package signature\nallow {{{\n", name="bad.rego")
    assert info.value.message == "policy bad.rego does not compile: this is unclosed"
    assert capfd.readouterr().out == ""


def test_rego_policy_is_shared_safely_between_threads() -> None:
    policy = RegoPolicy(COSIGN_STYLE)
    results: list[bool] = []

    def run(kind: str) -> None:
        for _ in range(50):
            allowed, _ = policy.evaluate({"predicateType": kind})
            results.append(allowed == (kind == "https://slsa.dev/provenance/v1"))

    threads = [
        threading.Thread(target=run, args=(kind,))
        for kind in ("https://slsa.dev/provenance/v1", "other") * 2
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 200
    assert all(results)


def test_rego_refuses_a_malformed_query() -> None:
    with pytest.raises(PolicyError, match=r"is not data\.<package>\.<rule>"):
        RegoPolicy(COSIGN_STYLE, query="allow")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("package sigstore\nisCompliant = true\n", (True, [])),
        ("package sigstore\ndefault isCompliant = false\n", (False, [])),
        (
            'package sigstore\nimport rego.v1\nisCompliant contains {"result": input.ok, '
            '"error": "too old", "warning": "check soon"} if true\n',
            (False, ["too old"]),
        ),
        (
            'package sigstore\nisCompliant[r] { r := {"result": false, "error": "unsigned", '
            '"warning": ""} }\n',
            (False, ["unsigned"]),
        ),
    ],
    ids=["true", "default-false", "v1-result-set", "v0-result-set"],
)
def test_policy_controller_convention(policy: str, expected) -> None:
    assert evaluate_rego(policy, {"ok": False}, query=POLICY_CONTROLLER_QUERY) == expected


def test_policy_controller_result_true_allows_with_its_warning() -> None:
    policy = (
        'package sigstore\nimport rego.v1\nisCompliant contains {"result": input.ok, '
        '"error": "", "warning": "expires soon"} if true\n'
    )
    assert evaluate_rego(policy, {"ok": True}, query=POLICY_CONTROLLER_QUERY) == (
        True,
        ["expires soon"],
    )
    # cosign's query never reads result objects: only `true` allows
    signature = policy.replace("package sigstore", "package signature").replace(
        "isCompliant", "allow"
    )
    assert evaluate_rego(signature, {"ok": True}) == (False, [])
