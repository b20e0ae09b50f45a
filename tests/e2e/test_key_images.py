"""Images signed with long-lived keys (issue 20): `keyless verify --key`, `policy check` and
the gate on cosign v2 `.sig` key signatures (with and without the log's bundle annotation) and
cosign v3 key-signed bundles (with and without a log entry), written the way cosign writes
them (tests/e2e/cosign_keys.py). Real pieces: the dev-mode server's log, Debian's registry.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.cli.main import main
from keyless.client.oci import (
    LegacySignature,
    RegistryClient,
    append_legacy_signature,
    parse_reference,
)
from tests.e2e import cosign_keys
from tests.gate.webhook import admission_review, cip, pod, run_gate
from tests.registry import Pusher

KEY_1 = ec.generate_private_key(ec.SECP256R1())
KEY_2 = ec.generate_private_key(ec.SECP256R1())
NEVER = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    paths = {}
    for name, key in (("key1", KEY_1), ("key2", KEY_2), ("never", NEVER)):
        paths[name] = folder / f"{name}.pub"
        paths[name].write_bytes(cosign_keys.public_pem(key))
    return paths


@pytest.fixture(scope="module")
def trust_file(server, tmp_path_factory) -> Path:
    answer = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30)
    answer.raise_for_status()
    path = tmp_path_factory.mktemp("trust") / "keyless-dev.json"
    path.write_bytes(answer.content)
    return path


@pytest.fixture
def image(registry, request):
    repository = "keys/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    return Pusher(registry).push_image(repository, "1.0", seed=request.node.name)


def _verify(server, image, *keys: Path | str, extra: tuple[str, ...] = (), capsys=None):
    """Verify twice, `-o json` then text: (exit code, the JSON result, the text on stderr)."""
    argv = ["verify", "--server", server.url, "--allow-insecure-registry"]
    for key in keys:
        argv += ["--key", str(key)]
    code = main([*argv, *extra, "-o", "json", image.reference])
    result = json.loads(capsys.readouterr().out)
    assert main([*argv, *extra, image.reference]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, result, err


def test_cosign_v2_key_signature_with_log_entry(server, image, keys, capsys) -> None:
    entry = cosign_keys.sign_v2(image, KEY_1, log_url=server.url)
    code, result, err = _verify(server, image, keys["key1"], capsys=capsys)
    assert code == 0, err
    (signature,) = result["signatures"]
    assert signature["key"] == str(keys["key1"])
    assert (signature["source"], signature["log"]["index"]) == ("legacy-tag", entry["logIndex"])
    assert (signature["identity"], result["identity"]) == (None, None)
    assert f"signed with key {keys['key1']}; 1 valid signature:" in err
    assert f"log index {entry['logIndex']}" in err


def test_cosign_v2_key_signature_without_log_needs_insecure_ignore_tlog(
    server, image, keys, capsys
) -> None:
    cosign_keys.sign_v2(image, KEY_1, log_url=None)
    code, result, _ = _verify(server, image, keys["key1"], capsys=capsys)
    assert code == 1
    assert result["error"]["message"] == (
        f"no valid signature for {image.digest}: 1 found, none verifies (legacy-tag: it "
        "carries no transparency log evidence)"
    )
    code, result, err = _verify(
        server, image, keys["key1"], extra=("--insecure-ignore-tlog",), capsys=capsys
    )
    assert code == 0, err
    (signature,) = result["signatures"]
    assert (signature["key"], signature["log"]["index"]) == (str(keys["key1"]), None)
    assert "no log entry checked" in err


def test_cosign_v3_key_bundle_with_log_entry(server, image, keys, capsys) -> None:
    cosign_keys.sign_v3(image, KEY_2, log_url=server.url)
    code, result, err = _verify(server, image, keys["key2"], capsys=capsys)
    assert code == 0, err
    (signature,) = result["signatures"]
    assert signature["source"] == "fallback-tag"  # Debian's registry has no referrers API
    assert signature["type"] == "https://sigstore.dev/cosign/sign/v1"
    assert signature["log"]["kind"] == "dsse/0.0.1"
    assert signature["key"] == str(keys["key2"])


def test_cosign_v3_key_bundle_without_log(server, image, keys, capsys) -> None:
    cosign_keys.sign_v3(image, KEY_2, log_url=None)
    code, result, _ = _verify(server, image, keys["key2"], capsys=capsys)
    assert code == 1
    assert result["error"]["message"].startswith(
        f"no valid signature for {image.digest}: 1 found, none verifies (fallback-tag: "
        "expected exactly one transparency log entry, got 0"
    )
    code, result, _ = _verify(
        server, image, keys["key2"], extra=("--insecure-ignore-tlog",), capsys=capsys
    )
    assert code == 0
    assert result["signatures"][0]["log"]["index"] is None


def test_an_unlogged_attestation_is_not_a_signature_even_with_the_log_ignored(
    server, image, keys, capsys
) -> None:
    cosign_keys.sign_v3(image, KEY_2, log_url=None, predicate="https://slsa.dev/provenance/v1")
    code, result, _ = _verify(
        server, image, keys["key2"], extra=("--insecure-ignore-tlog",), capsys=capsys
    )
    assert code == 1
    assert result["error"]["message"].startswith(
        f"no valid signature for {image.digest}: 1 found, none verifies (fallback-tag: "
    )


def test_a_key_that_never_signed_is_refused(server, image, keys, capsys) -> None:
    cosign_keys.sign_v2(image, KEY_1, log_url=server.url)
    cosign_keys.sign_v3(image, KEY_2, log_url=server.url)
    code, result, _ = _verify(server, image, keys["never"], capsys=capsys)
    assert code == 1
    assert result["error"]["message"].startswith(
        f"no valid signature for {image.digest}: 2 found, none verifies (fallback-tag: "
        "verification failed (signature): the signature over the DSSE envelope does not verify"
    )
    # --insecure-ignore-tlog never makes a wrong key right.
    code, _, _ = _verify(
        server, image, keys["never"], extra=("--insecure-ignore-tlog",), capsys=capsys
    )
    assert code == 1


def test_rotation_window_any_key_may_have_signed_and_each_match_is_named(
    server, image, keys, capsys
) -> None:
    cosign_keys.sign_v2(image, KEY_1, log_url=server.url)  # the old key, cosign v2
    cosign_keys.sign_v3(image, KEY_2, log_url=server.url)  # the new key, cosign v3
    code, result, err = _verify(
        server, image, keys["never"], keys["key2"], keys["key1"], capsys=capsys
    )
    assert code == 0, err
    matched = {s["source"]: s["key"] for s in result["signatures"]}
    assert matched == {"fallback-tag": str(keys["key2"]), "legacy-tag": str(keys["key1"])}
    assert f"signed with key {keys['key2']}" in err and f"signed with key {keys['key1']}" in err
    code, result, _ = _verify(server, image, keys["key1"], capsys=capsys)
    assert code == 0
    assert [s["key"] for s in result["signatures"]] == [str(keys["key1"])]


def test_key_and_certificate_signatures_do_not_mix(server, image, keys, capsys) -> None:
    token = server.email_token("alice@example.com")
    argv = ["sign", "--server", server.url, "--identity-token", token, "--allow-insecure-registry"]
    assert main([*argv, image.reference]) == 0
    capsys.readouterr()
    code, result, _ = _verify(server, image, keys["key1"], capsys=capsys)
    assert code == 1
    assert result["error"]["message"] == (
        f"no valid signature for {image.digest}: 2 found, none verifies (fallback-tag: "
        "verification failed (key-material): bundle carries a signing certificate; verify it by "
        "identity, not with --key)"
    )
    # Nor with the log ignored: a certificate's signature is judged by identity only.
    code, _, _ = _verify(
        server, image, keys["key1"], extra=("--insecure-ignore-tlog",), capsys=capsys
    )
    assert code == 1


def _key_authority(key: ec.EllipticCurvePrivateKey, name: str, ctlog: str = "") -> str:
    data = "\n".join(
        "        " + line for line in cosign_keys.public_pem(key).decode().splitlines()
    )
    return f"  - name: {name}\n    key:\n      data: |\n{data}\n{ctlog}"


def _ctlog(server) -> str:
    return f"    ctlog:\n      url: {server.url}\n      trustRootRef: keyless-dev\n"


def _check(policy: Path, trust_file: Path, image, capsys) -> tuple[int, str]:
    argv = ["policy", "check", "--allow-insecure-registry", "--policy", str(policy)]
    code = main([*argv, "--trust-root", f"keyless-dev={trust_file}", image.reference])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out + captured.err


def test_policy_key_authority_accepts_a_cosign_v2_key_signature(
    server, registry, image, trust_file, tmp_path: Path, capsys
) -> None:
    entry = cosign_keys.sign_v2(image, KEY_1, log_url=server.url)
    pinned = f"{registry.host}/{image.reference.split('/', 1)[1].rsplit(':', 1)[0]}@{image.digest}"
    policy = tmp_path / "policy.yaml"
    policy.write_text(cip("vendor", _key_authority(KEY_1, "release", _ctlog(server))))
    assert _check(policy, trust_file, image, capsys) == (
        0,
        f"PASS {pinned} (vendor/release: signed with the policy's key, log index "
        f"{entry['logIndex']})\n",
    )
    policy.write_text(cip("vendor", _key_authority(NEVER, "release", _ctlog(server))))
    code, text = _check(policy, trust_file, image, capsys)
    assert code == 1
    assert text.startswith(
        f"FAIL {pinned}\nerror: vendor/release: no valid signature by the policy's key for "
        f"{pinned}: 1 found, none verifies (legacy-tag: verification failed (signature): "
    )


def test_policy_key_authority_without_ctlog_ignores_the_log_as_policy_controller_does(
    server, registry, image, trust_file, tmp_path: Path, capsys
) -> None:
    cosign_keys.sign_v2(image, KEY_1, log_url=None)
    pinned = f"{registry.host}/{image.reference.split('/', 1)[1].rsplit(':', 1)[0]}@{image.digest}"
    policy = tmp_path / "policy.yaml"
    policy.write_text(cip("vendor", _key_authority(KEY_1, "release")))
    assert _check(policy, trust_file, image, capsys) == (
        0,
        f"PASS {pinned} (vendor/release: signed with the policy's key, no log entry checked)\n",
    )
    # With a ctlog the log is required, and this signature was never logged.
    policy.write_text(cip("vendor", _key_authority(KEY_1, "release", _ctlog(server))))
    code, text = _check(policy, trust_file, image, capsys)
    assert code == 1
    assert text == (
        f"FAIL {pinned}\nerror: vendor/release: no valid signature by the policy's key for "
        f"{pinned}: 1 found, none verifies (legacy-tag: it carries no transparency log "
        "evidence)\n"
    )


def test_policy_with_both_keys_of_a_rotation(
    server, registry, image, trust_file, tmp_path: Path, capsys
) -> None:
    cosign_keys.sign_v3(image, KEY_2, log_url=server.url)
    policy = tmp_path / "policy.yaml"
    authorities = _key_authority(KEY_1, "old", _ctlog(server)) + _key_authority(
        KEY_2, "new", _ctlog(server)
    )
    policy.write_text(cip("vendor", authorities))
    code, text = _check(policy, trust_file, image, capsys)
    assert code == 0, text
    assert "(vendor/new: signed with the policy's key, log index " in text


def test_gate_admits_a_key_signed_image_and_refuses_another_key(
    server, registry, image, trust_file, tmp_path_factory
) -> None:
    cosign_keys.sign_v2(image, KEY_1, log_url=server.url)
    pinned = f"{registry.host}/{image.reference.split('/', 1)[1].rsplit(':', 1)[0]}@{image.digest}"
    for key, allowed in ((KEY_1, True), (NEVER, False)):
        workdir = tmp_path_factory.mktemp("gate")
        (workdir / "policy.yaml").write_text(
            cip("vendor", _key_authority(key, "release", _ctlog(server)))
        )
        arguments = ["--policy", str(workdir / "policy.yaml")]
        arguments += ["--trust-root", f"keyless-dev={trust_file}", "--allow-insecure-registry"]
        with run_gate(workdir, *arguments) as gate:
            answer = gate.review("/validations", admission_review(pod(pinned)))
        assert answer["allowed"] is allowed, answer
        if not allowed:
            assert answer["status"]["message"].startswith(
                "spec.containers[0].image: vendor/release: no valid signature by the policy's "
                f"key for {pinned}: 1 found, none verifies (legacy-tag: verification failed "
                "(signature): "
            )


def test_a_key_signed_blob_is_no_signature_of_any_image(server, image, keys, capsys) -> None:
    """A vendor's key also signs blobs (`cosign sign-blob --key`: ECDSA over SHA-256 of the
    blob, as a v2 image signature is over its payload). Such a blob and its signature, put in
    an image's `.sig` layer, must not pass for a signature of that image, not even with the log
    ignored: only a simple-signing payload naming the digest can."""
    blob = b"release notes for 1.0\n"
    signature = KEY_1.sign(blob, ec.ECDSA(hashes.SHA256()))
    reference = parse_reference(image.reference)
    with RegistryClient(allow_insecure=True) as client:
        append_legacy_signature(
            client,
            reference.with_digest(image.digest),
            image.digest,
            LegacySignature(payload=blob, signature=base64.b64encode(signature).decode()),
        )
    code, result, _ = _verify(
        server, image, keys["key1"], extra=("--insecure-ignore-tlog",), capsys=capsys
    )
    assert code == 1
    assert result["error"]["message"] == (
        f"no valid signature for {image.digest}: 1 found, none verifies (legacy-tag: its "
        "payload is not a simple-signing document)"
    )


def test_tree_names_key_signatures_as_such(server, registry, image, capsys) -> None:
    """A vendor's key signatures (cosign v2 and v3 layouts) and a keyless signature on one
    image: `keyless tree` says which were made with a key, in text and JSON."""
    cosign_keys.sign_v2(image, KEY_1, log_url=server.url)
    cosign_keys.sign_v3(image, KEY_2, log_url=server.url)
    token = server.email_token("alice@example.com")
    argv = ["sign", "--server", server.url, "--identity-token", token, "--allow-insecure-registry"]
    assert main([*argv, image.reference]) == 0
    capsys.readouterr()

    assert main(["tree", "--allow-insecure-registry", "-o", "json", image.reference]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert sorted(
        (r["signedWith"]["kind"], r["signedWith"]["hint"]) for r in listing["referrers"]
    ) == [("certificate", None), ("key", cosign_keys.hint(KEY_2))]
    assert listing["legacySignatures"] == [
        {"signedWith": {"kind": "key", "hint": None}},
        {"signedWith": {"kind": "certificate", "hint": None}},
    ]

    assert main(["tree", "--allow-insecure-registry", image.reference]) == 0
    lines = capsys.readouterr().out.splitlines()
    referrers = [line for line in lines if line.startswith("  referrer ")]
    assert (
        sum(
            line.endswith(
                f", signed with a key (key hint {cosign_keys.hint(KEY_2)}), not a certificate"
            )
            for line in referrers
        )
        == 1
    )
    assert sum(line.endswith(", signed with a certificate") for line in referrers) == 1
    hexdigest = image.digest.removeprefix("sha256:")
    at = next(i for i, line in enumerate(lines) if line.endswith(f":sha256-{hexdigest}.sig"))
    assert lines[at + 1 : at + 3] == [
        "    cosign v2 signature, signed with a key, not a certificate",
        "    cosign v2 signature, signed with a certificate",
    ]
