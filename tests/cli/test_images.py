"""The pure parts of image signing: which targets are images, cosign's statement, usage errors.

The registry and server flows are in tests/e2e/test_images.py and test_image_refusals.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.cli.commands._images import image_reference
from keyless.cli.main import main
from keyless.client.oci import Reference
from keyless.client.oci.errors import InvalidDigestError
from keyless.client.sign.images import cosign_statement

DIGEST = "sha256:" + "ab" * 32


def test_cosign_statement_is_cosign_v3s_bytes() -> None:
    # rekor-bundle.md §7.2, with the digest filled in.
    assert cosign_statement(DIGEST) == (
        b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"'
        + b"ab" * 32
        + b'"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}'
    )


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        pytest.param(
            "sha512:" + "ab" * 64,
            f"only sha256 image digests can be signed, not {('sha512:' + 'ab' * 64)[:80]!r}",
            id="sha512-digest",
        ),
        pytest.param(
            "sha256:abc",
            "invalid digest 'sha256:abc': expected 64 lowercase hex characters",
            id="short-hex",
        ),
        pytest.param(
            "sha256:" + "AB" * 32,
            f"invalid digest {('sha256:' + 'AB' * 32)!r}: expected 64 lowercase hex characters",
            id="uppercase-hex",
        ),
    ],
)
def test_cosign_statement_refuses(digest: str, message: str) -> None:
    with pytest.raises(InvalidDigestError) as caught:
        cosign_statement(digest)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("ghcr.io/acme/app:1.4", Reference("ghcr.io", "acme/app", "1.4")),
        ("acme/app:1.4", Reference("docker.io", "acme/app", "1.4")),
        ("localhost:5000/app", Reference("localhost:5000", "app", "latest")),
        ("localhost/app", Reference("localhost", "app", "latest")),
        ("127.0.0.1:5000/a/b", Reference("127.0.0.1:5000", "a/b", "latest")),
        (f"app@{DIGEST}", Reference("docker.io", "library/app", None, DIGEST)),
    ],
)
def test_image_targets(target: str, expected: Reference) -> None:
    assert image_reference(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("dist/app.tar.gz", id="relative-path-without-registry"),
        pytest.param("ubuntu", id="bare-name"),
        pytest.param(DIGEST, id="digest"),
        pytest.param("/tmp/release.tar.gz", id="absolute-path"),
        pytest.param("./app:1", id="dot-path"),
        pytest.param("acme/App:1", id="uppercase-repository"),
        pytest.param("", id="empty"),
    ],
)
def test_not_image_targets(target: str) -> None:
    assert image_reference(target) is None


def test_an_existing_file_is_never_an_image(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("app:1.0").write_text("a file whose name looks like a reference\n")
    assert image_reference("app:1.0") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            ["--registry-password-stdin"],
            "--registry-password-stdin needs --registry-username",
            id="password-without-user",
        ),
        pytest.param(
            ["--registry-username", "ci"],
            "--registry-username needs --registry-password-stdin",
            id="user-without-password",
        ),
    ],
)
def test_registry_credential_usage_errors(options: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["tree", *options, "127.0.0.1:9/never/contacted:1"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"error: {message}")


def test_verify_image_refuses_key_and_bundle(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(
            [
                "verify",
                "--trusted-root",
                "/nonexistent/never-read.json",
                "--certificate-identity",
                "a@example.com",
                "--certificate-oidc-issuer",
                "https://issuer.example",
                "--bundle",
                "x.json",
                "127.0.0.1:9/never/contacted:1",
            ]
        )
    assert caught.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "error: --key and --bundle do not apply to images; signatures are in the registry"
        )
    )


def test_image_modules_do_not_import_flask() -> None:
    """`keyless verify IMAGE` and `keyless tree` stay fast: no server code, no Flask."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import keyless.client.verify.images, keyless.client.sign.images, keyless.client.verify.cosign_legacy\n"
        "import keyless.cli.commands.tree, keyless.cli.commands._images\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flask' or m.split('.')[:2] in (['keyless', 'ca'], ['keyless', 'tlog'])))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
