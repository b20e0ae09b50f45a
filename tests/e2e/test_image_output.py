"""What `keyless sign IMAGE` and `keyless verify IMAGE` tell the user: an image signing makes two
log entries (the Sigstore bundle and cosign v2's legacy tag signature), and each is named once,
with where it is stored, under one "Verified OK"."""

from __future__ import annotations

import pytest

from keyless.cli.main import main
from tests.registry import Pusher

ALICE = "alice@example.com"


def _sign(server, image: str, *extra: str) -> int:
    token = server.email_token(ALICE)
    return main(
        [
            "sign",
            "--server",
            server.url,
            "--identity-token",
            token,
            "--allow-insecure-registry",
            *extra,
            image,
        ]
    )


def _verify(server, image: str) -> int:
    return main(
        [
            "verify",
            "--server",
            server.url,
            "--allow-insecure-registry",
            "--certificate-identity",
            ALICE,
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            image,
        ]
    )


def _log_indexes(err: str) -> list[int]:
    return [int(line.split("log index ")[1].split(",")[0]) for line in err.splitlines()[1:]]


@pytest.mark.parametrize("with_referrers_api", [False, True], ids=["fallback-tag", "referrers"])
def test_sign_and_verify_name_the_bundle_and_the_legacy_signature(
    server, registry, referrers_registry, capsys, request, with_referrers_api
) -> None:
    target = referrers_registry if with_referrers_api else registry
    repository = f"output/{request.node.callspec.id}"
    image = Pusher(target).push_image(repository, "1.0", seed=request.node.name)
    name = f"{target.host}/{repository}"
    hexdigest = image.digest.removeprefix("sha256:")
    stored = (
        "an OCI referrer of the image"
        if with_referrers_api
        else f"an OCI referrer in the fallback index sha256-{hexdigest}"
    )
    source = "referrers-api" if with_referrers_api else "fallback-tag"

    assert _sign(server, f"{name}@{image.digest}") == 0
    signed = capsys.readouterr()
    lines = signed.err.splitlines()
    assert lines[0] == f"signed {name}@{image.digest} as {ALICE} (issuer {server.url}/oidc):"
    bundle_index, legacy_index = _log_indexes(signed.err)
    assert lines[1].startswith(
        f"  - Sigstore bundle (cosign v3, OCI 1.1 clients): log index {bundle_index}, {stored} "
        f"({source}), manifest sha256:"
    )
    assert lines[2] == (
        f"  - cosign v2 signature (older verifiers): log index {legacy_index}, in tag "
        f"sha256-{hexdigest}.sig (--no-legacy-tag to write only the bundle)"
    )
    assert len(lines) == 3
    assert legacy_index == bundle_index + 1
    assert signed.out == f"{name}@{image.digest}\n"

    assert _verify(server, f"{name}@{image.digest}") == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"Verified OK: {name}@{image.digest} signed by {ALICE} ({server.url}/oidc); "
        "2 valid signatures:",
        f"  - Sigstore bundle, {stored} (found via {source}), log index {bundle_index}",
        f"  - cosign v2 signature, in tag sha256-{hexdigest}.sig (found via legacy-tag), "
        f"log index {legacy_index}",
    ]


def test_without_the_legacy_tag_one_entry_is_named(server, registry, capsys, request) -> None:
    image = Pusher(registry).push_image("output/no-legacy", "1.0", seed=request.node.name)
    name = f"{registry.host}/output/no-legacy"
    assert _sign(server, f"{name}@{image.digest}", "--no-legacy-tag") == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("  - Sigstore bundle (cosign v3, OCI 1.1 clients): log index ")
    assert _verify(server, f"{name}@{image.digest}") == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("; 1 valid signature:")
    assert len(lines) == 2
    assert "(found via fallback-tag)" in lines[1]
