"""`keyless verify` and `keyless verify-bundle` as users run them: flags, output, exit codes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from keyless.cli.main import main
from tests.cli.forge import Instance, dumps

ARTIFACT = b"deploy me\n"
ALICE = "alice@example.com"
ISSUER = "https://issuer.keyless.test"
_PAIR = ["--certificate-identity", ALICE, "--certificate-oidc-issuer", ISSUER]


@pytest.fixture
def signed(instance: Instance, tmp_path: Path) -> dict[str, Path]:
    """A file, its bundle at the default path, and the instance's trusted root, on disk."""
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(ARTIFACT)
    bundle = tmp_path / "release.tar.gz.sigstore.json"
    bundle.write_text(dumps(instance.sign(ARTIFACT)))
    root = tmp_path / "trusted_root.json"
    root.write_text(dumps(instance.trusted_root()))
    return {"artifact": artifact, "bundle": bundle, "root": root}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _identity(root: Path) -> list[str]:
    return [
        "verify",
        "--trusted-root",
        str(root),
        "--certificate-identity",
        ALICE,
        "--certificate-oidc-issuer",
        ISSUER,
    ]


def test_verify_file_with_default_bundle_path(signed, capsys) -> None:
    code, out, err = _run([*_identity(signed["root"]), str(signed["artifact"])], capsys)
    assert code == 0
    assert out == ""
    assert err.strip() == (
        f"Verified OK: {signed['artifact']} signed by {ALICE} ({ISSUER}), log index 3"
    )


def test_verify_digest_json_output(signed, capsys) -> None:
    digest = "sha256:" + hashlib.sha256(ARTIFACT).hexdigest()
    argv = [*_identity(signed["root"]), "--bundle", str(signed["bundle"]), "-o", "json", digest]
    code, out, _ = _run(argv, capsys)
    assert code == 0
    result = json.loads(out)
    assert result["verified"] is True
    assert result["outcome"] == "pass"
    assert result["artifact"] == digest
    assert result["digest"] == digest
    assert result["identity"] == ALICE
    assert result["issuer"] == ISSUER
    assert result["error"] is None
    (signature,) = result["signatures"]
    assert signature["identity"] == ALICE
    assert signature["issuer"] == ISSUER
    assert signature["log"] == {
        "url": "https://log.keyless.test",
        "index": 3,
        "kind": "hashedrekord/0.0.1",
    }
    assert signature["type"] == "message-signature"
    assert signature["source"] == "bundle-file"
    assert len(signature["signedTimes"]) == 1


def test_wrong_identity_is_one_line_naming_the_check(signed, capsys) -> None:
    argv = [*_identity(signed["root"]), str(signed["artifact"])]
    argv[argv.index(ALICE)] = "mallory@example.com"
    code, out, err = _run(argv, capsys)
    assert code == 1
    assert out == ""
    assert err == (
        'error: verification failed (identity): certificate identity "alice@example.com" '
        'does not match expected "mallory@example.com"\n'
    )


def test_failure_in_json_mode_is_reported_on_stdout_too(signed, capsys) -> None:
    signed["artifact"].write_bytes(b"tampered\n")
    argv = [*_identity(signed["root"]), "-o", "json", str(signed["artifact"])]
    code, out, err = _run(argv, capsys)
    assert code == 1
    result = json.loads(out)
    assert result["verified"] is False
    assert result["outcome"] == "fail"
    assert result["signatures"] == []
    assert result["error"]["reason"] == "message-digest"
    assert err == f"error: {result['error']['message']}\n"
    assert err.startswith("error: verification failed (message-digest): ")


def test_unanchored_match_is_refused(instance: Instance, signed, capsys) -> None:
    signed["bundle"].write_text(
        dumps(instance.sign(ARTIFACT, identity="alice@example.com.evil.org"))
    )
    argv = [
        "verify",
        "--trusted-root",
        str(signed["root"]),
        "--certificate-identity-regexp",
        r"alice@example\.com",
        "--certificate-oidc-issuer-regexp",
        r"https://issuer\.keyless\.test",
        str(signed["artifact"]),
    ]
    code, _, err = _run(argv, capsys)
    assert code == 1
    assert err.startswith("error: verification failed (identity): ")
    assert "anchored regexp" in err


def test_github_workflow_flags(instance: Instance, signed, capsys) -> None:
    claims = {2: "push", 3: "f" * 40, 4: "release", 5: "octo/app", 6: "refs/tags/v1"}
    workflow = "https://github.com/octo/app/.github/workflows/release.yml@refs/tags/v1"
    signed["bundle"].write_text(dumps(instance.sign(ARTIFACT, identity=workflow, extra=claims)))
    base = [
        "verify",
        "--trusted-root",
        str(signed["root"]),
        "--certificate-identity",
        workflow,
        "--certificate-oidc-issuer",
        ISSUER,
        "--certificate-github-workflow-repository",
        "octo/app",
        "--certificate-github-workflow-ref",
        "refs/tags/v1",
        "--certificate-github-workflow-sha",
        "f" * 40,
        "--certificate-github-workflow-trigger",
        "push",
        "--certificate-github-workflow-name",
        "release",
    ]
    assert _run([*base, str(signed["artifact"])], capsys)[0] == 0
    base[base.index("refs/tags/v1")] = "refs/heads/main"
    code, _, err = _run([*base, str(signed["artifact"])], capsys)
    assert code == 1
    assert err.startswith("error: verification failed (github-workflow-ref): ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--certificate-identity", ALICE], "one of --certificate-oidc-issuer"),
        (["--certificate-oidc-issuer", ISSUER], "one of --certificate-identity or"),
        (
            ["--certificate-identity", ALICE, "--certificate-identity-regexp", "x"],
            "not allowed with argument",
        ),
        (
            ["--certificate-identity-regexp", "(a", "--certificate-oidc-issuer", ISSUER],
            "is not a valid regexp: missing ), unterminated subpattern at position 0",
        ),
        (
            [*_PAIR, "--certificate-oidc-issuer", "https://other.example"],
            "--certificate-oidc-issuer may be given only once",
        ),
        (
            [
                *_PAIR,
                "--certificate-github-workflow-ref",
                "a",
                "--certificate-github-workflow-ref",
                "b",
            ],
            "--certificate-github-workflow-ref may be given only once",
        ),
    ],
    ids=[
        "missing-issuer",
        "missing-identity",
        "identity-and-regexp",
        "invalid-regexp",
        "issuer-twice",
        "github-claim-twice",
    ],
)
def test_usage_errors(signed, capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["verify", "--trusted-root", str(signed["root"]), *argv, str(signed["artifact"])])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_digest_needs_a_bundle(signed, capsys) -> None:
    digest = "sha256:" + hashlib.sha256(ARTIFACT).hexdigest()
    with pytest.raises(SystemExit) as info:
        main([*_identity(signed["root"]), digest])
    assert info.value.code == 2
    assert "--bundle is required when verifying a sha256: digest" in capsys.readouterr().err


def test_key_and_identity_flags_exclude_each_other(signed, capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(
            [*_identity(signed["root"]), "--key", str(tmp_path / "k.pem"), str(signed["artifact"])]
        )
    assert info.value.code == 2


def test_missing_artifact_is_a_clear_error(signed, capsys) -> None:
    argv = [
        *_identity(signed["root"]),
        "--bundle",
        str(signed["bundle"]),
        str(signed["root"]) + "x",
    ]
    code, _, err = _run(argv, capsys)
    assert code == 1
    assert err.startswith("error: verification failed (artifact): cannot read ")


def test_server_url_must_be_http(signed, capsys) -> None:
    argv = ["verify", "--certificate-identity", ALICE, "--certificate-oidc-issuer", ISSUER]
    code, _, err = _run([*argv, "--server", "file:///etc/passwd", str(signed["artifact"])], capsys)
    assert code == 1
    assert err == (
        "error: verification failed (trust-root): server URL 'file:///etc/passwd' is not an "
        "http(s) origin\n"
    )


def test_default_root_is_production(signed, capsys) -> None:
    argv = ["verify", "--certificate-identity", ALICE, "--certificate-oidc-issuer", ISSUER]
    code, _, err = _run([*argv, str(signed["artifact"])], capsys)
    assert code == 1
    assert "is not a transparency log in the trusted root" in err


def test_verify_bundle_needs_identity_and_issuer_or_key(signed, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["verify-bundle", "--bundle", str(signed["bundle"]), str(signed["artifact"])])
    assert info.value.code == 2
    assert "give --certificate-identity and --certificate-oidc-issuer, or --key" in (
        capsys.readouterr().err
    )


def test_help_says_regexps_are_anchored(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "anchored" in text
    assert "re.fullmatch" in text


def test_verify_never_imports_flask() -> None:
    code = (
        "import sys; from keyless.cli.main import build_parser; build_parser(); "
        "import keyless.cli.commands.verify, keyless.client.verify, keyless.client.bundle, keyless.client.trust; "
        "assert 'flask' not in sys.modules, sorted(m for m in sys.modules if 'flask' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trust_config_flag(instance: Instance, signed, capsys, tmp_path: Path) -> None:
    config = tmp_path / "trust_config.json"
    config.write_text(
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                "trustedRoot": instance.trusted_root(),
                "signingConfig": {
                    "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"
                },
            }
        )
    )
    argv = ["verify", "--trust-config", str(config), "--certificate-identity", ALICE]
    argv += ["--certificate-oidc-issuer", ISSUER, str(signed["artifact"])]
    assert _run(argv, capsys)[0] == 0


def test_managed_key_with_key_flag(vectors: Path, capsys, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cases = vectors / "sigstore-conformance/test/assets/bundle-verify"
    case = cases / "managed-key-happy-path"
    argv = [
        "verify",
        "--bundle",
        str(case / "bundle.sigstore.json"),
        "--key",
        str(case / "key.pub"),
    ]
    code, out, err = _run([*argv, "-o", "json", str(cases / "a.txt")], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["identity"] is None
    assert result["signatures"][0]["log"]["kind"] == "hashedrekord/0.0.1"
    other = tmp_path / "other.pub"
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    other.write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    code, _, err = _run([*argv[:-1], str(other), str(cases / "a.txt")], capsys)
    assert code == 1
    assert err.startswith("error: verification failed (signature): ")


def test_verify_bundle_staging_uses_the_shipped_staging_root(vectors: Path, capsys) -> None:
    # A valid public-good staging bundle: refused under production, accepted with --staging.
    cases = vectors / "sigstore-conformance/test/assets/bundle-verify"
    bundle = cases / "bundle-from-wrong-instance_fail" / "bundle.sigstore.json"
    identity = (
        "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
        ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
    )
    argv = ["verify-bundle", "--bundle", str(bundle), "--certificate-identity", identity]
    argv += ["--certificate-oidc-issuer", "https://token.actions.githubusercontent.com"]
    assert _run([*argv, str(cases / "a.txt")], capsys)[0] == 1
    code, out, _ = _run(["verify-bundle", "--staging", *argv[1:], str(cases / "a.txt")], capsys)
    assert code == 0
    assert out.startswith("OK: ")


def test_sign_bundle_protocol_arguments_parse_the_suite_invocation() -> None:
    import argparse

    from keyless.cli.commands.verify_bundle import add_sign_bundle_arguments

    parser = argparse.ArgumentParser(prog="sign-bundle")
    add_sign_bundle_arguments(parser)
    args = parser.parse_args(
        [
            "--staging",
            "--in-toto",
            "--identity-token",
            "TOKEN",
            "--bundle",
            "out.sigstore.json",
            "--trusted-root",
            "root.json",
            "--signing-config",
            "config.json",
            "statement.json",
        ]
    )
    assert (args.staging, args.in_toto, args.identity_token) == (True, True, "TOKEN")
    assert (args.bundle, args.trusted_root, args.signing_config) == (
        "out.sigstore.json",
        "root.json",
        "config.json",
    )
    assert args.file == "statement.json"
    with pytest.raises(SystemExit):
        parser.parse_args(["--bundle", "b.json", "file"])  # --identity-token is required


@pytest.mark.parametrize(
    ("case", "code"), [("happy-path-v0.3", 0), ("signature-mismatch_fail", 1)], ids=["pass", "fail"]
)
def test_console_script_exit_codes(vectors: Path, case: str, code: int) -> None:
    import shutil

    cases = vectors / "sigstore-conformance/test/assets/bundle-verify"
    identity = (
        "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
        ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
    )
    keyless = shutil.which("keyless", path=str(Path(sys.executable).parent))
    assert keyless is not None
    argv = [keyless, "verify-bundle", "--bundle", str(cases / case / "bundle.sigstore.json")]
    argv += ["--certificate-identity", identity]
    argv += ["--certificate-oidc-issuer", "https://token.actions.githubusercontent.com"]
    done = subprocess.run([*argv, str(cases / "a.txt")], capture_output=True, text=True)
    assert done.returncode == code
    assert "Traceback" not in done.stderr
    if code:
        assert done.stderr.startswith("error: verification failed (signature): ")


@pytest.mark.parametrize(
    "identities",
    [
        ["bob@example.com", ALICE],
        [ALICE, "bob@example.com"],
    ],
    ids=["alice-second", "alice-first"],
)
def test_several_identities_any_one_may_match(signed, capsys, identities: list[str]) -> None:
    argv = ["verify", "--trusted-root", str(signed["root"]), "--certificate-oidc-issuer", ISSUER]
    for identity in identities:
        argv += ["--certificate-identity", identity]
    code, _, err = _run([*argv, str(signed["artifact"])], capsys)
    assert code == 0, err


def test_several_identities_none_matching_names_each(signed, capsys) -> None:
    argv = ["verify", "--trusted-root", str(signed["root"]), "--certificate-oidc-issuer", ISSUER]
    argv += ["--certificate-identity", "bob@example.com", "--certificate-identity", "carol@x.org"]
    code, _, err = _run([*argv, str(signed["artifact"])], capsys)
    assert code == 1
    assert err == (
        "error: verification failed (identity): no accepted identity matches: certificate "
        'identity "alice@example.com" does not match expected "bob@example.com"; certificate '
        'identity "alice@example.com" does not match expected "carol@x.org"\n'
    )


def test_several_identity_regexps_any_one_may_match(signed, capsys) -> None:
    argv = ["verify", "--trusted-root", str(signed["root"]), "--certificate-oidc-issuer", ISSUER]
    argv += ["--certificate-identity-regexp", "bob@.*", "--certificate-identity-regexp", "alice@.*"]
    assert _run([*argv, str(signed["artifact"])], capsys)[0] == 0


def test_unreachable_server_is_exit_3(signed, capsys) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["verify", "--server", f"http://127.0.0.1:{port}", "--certificate-identity", ALICE]
    argv += ["--certificate-oidc-issuer", ISSUER, "-o", "json", str(signed["artifact"])]
    code, out, err = _run(argv, capsys)
    assert code == 3
    result = json.loads(out)
    assert result["outcome"] == "error"
    assert result["verified"] is False
    assert err.startswith(f"error: cannot reach the keyless server at http://127.0.0.1:{port}/")


def test_unreachable_registry_is_exit_3(signed, capsys) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    image = f"127.0.0.1:{port}/acme/app:1.0"
    argv = [*_identity(signed["root"]), "--allow-insecure-registry", "-o", "json", image]
    code, out, err = _run(argv, capsys)
    assert code == 3
    result = json.loads(out)
    assert (result["outcome"], result["verified"], result["error"]["reason"]) == (
        "error",
        False,
        "connection",
    )
    assert err.startswith(f"error: cannot reach 127.0.0.1:{port}")
