"""A verifier nobody here wrote (issue 20): containers/image, through Debian's `skopeo`, under a
`sigstoreSigned` policy requirement (what Podman and CRI-O enforce on hosts without a
Kubernetes gate), reading cosign v2's `.sig` attachments (`use-sigstore-attachments`).

Debian 12's skopeo 1.9.3 is built with sigstore verification disabled: an image with a
signature attachment is refused with "Debian-local change: sigstore disabled", one without any
with "A signature was required, but no signature exists". So all it can show today is that it
finds keyless's key signature where cosign puts it. The test pins that: a skopeo that verifies
fails it, and it must then become the real check (accepted under the signing key, refused under
another key).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from keyless.cli.main import main
from tests.conftest import skip_unless_ci
from tests.registry import Pusher


@pytest.fixture(scope="module")
def skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        skip_unless_ci("skopeo is not installed (Debian package skopeo)")
    return path


def _copy(
    skopeo: str, registry, image: str, public_key: Path, workdir: Path
) -> subprocess.CompletedProcess:
    """`skopeo copy` of `image` to a local directory under a policy requiring `public_key`."""
    registries_d = workdir / "registries.d"
    registries_d.mkdir(exist_ok=True)
    (registries_d / "local.yaml").write_text(
        f"docker:\n  {registry.host}:\n    use-sigstore-attachments: true\n"
    )
    policy = workdir / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {
                    "docker": {
                        registry.host: [
                            {
                                "type": "sigstoreSigned",
                                "keyPath": str(public_key),
                                "signedIdentity": {"type": "matchRepository"},
                            }
                        ]
                    }
                },
            }
        )
    )
    target = workdir / "copied"
    shutil.rmtree(target, ignore_errors=True)
    return subprocess.run(
        [
            skopeo,
            "--policy",
            str(policy),
            "--registries.d",
            str(registries_d),
            "copy",
            "--src-tls-verify=false",
            f"docker://{image}",
            f"dir:{target}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_skopeo_checks_keyless_key_signatures(
    skopeo, server, registry, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "vendor")]) == 0
    image = Pusher(registry).push_image("skopeo/keyed", "1.0", seed="skopeo keyed")
    unsigned = Pusher(registry).push_image("skopeo/unsigned", "1.0", seed="skopeo unsigned")
    argv = ["sign", "--server", server.url, "--key", str(tmp_path / "vendor.key")]
    assert main([*argv, "--allow-insecure-registry", image.reference]) == 0
    capsys.readouterr()

    signed = _copy(skopeo, registry, image.reference, tmp_path / "vendor.pub", tmp_path)
    assert signed.returncode != 0
    assert "Debian-local change: sigstore disabled" in signed.stderr, signed.stderr

    missing = _copy(skopeo, registry, unsigned.reference, tmp_path / "vendor.pub", tmp_path)
    assert missing.returncode != 0
    assert "A signature was required, but no signature exists" in missing.stderr
