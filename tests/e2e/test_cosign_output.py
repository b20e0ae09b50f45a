"""`keyless verify -o cosign IMAGE` prints what `cosign verify` prints, byte for byte.

The expected documents are written out here from cosign's code (cmd/cosign/cli/verify/
common.go `PrintVerification`, verify.go `transformOutput`; sigstore's payload.go; wave3-research
§4.1), not from keyless's encoder: stdout is a newline, one JSON array as Go's encoding/json
marshals `[]payload.SimpleContainerImage` (struct fields in order, map keys sorted, `<>&`
escaped), a newline; the header goes to stderr. Values come from what the signers wrote: the
bundle `keyless sign --bundle` saved, the `.sig` layer's annotation as the registry serves it,
the token's claims. Keyless-signed images carry a bundle and a cosign v2 signature; key-signed
ones are written as cosign writes them (tests/e2e/cosign_keys.py).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.cli.main import main
from tests.e2e import cosign_keys
from tests.registry import Pusher

ALICE = "alice@example.com"
SIGNATURE_TYPE = "cosign container image signature"
SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
ISSUER_OID = "1.3.6.1.4.1.57264.1.1"
KEY = ec.generate_private_key(ec.SECP256R1())


def _header(name: str, *, logged: bool, by_key: bool) -> str:
    lines = [
        "",
        f"Verification for {name} --",
        "The following checks were performed on each of these signatures:",
        "  - The cosign claims were validated",
    ]
    if logged:
        lines.append("  - Existence of the claims in the transparency log was verified offline")
    lines.append(
        "  - The signatures were verified against the specified public key"
        if by_key
        else "  - The code-signing certificate was verified using trusted certificate authority "
        "certificates"
    )
    return "\n".join(lines) + "\n"


def _item(reference: str, digest: str, kind: str, optional: str) -> str:
    """One SimpleContainerImage: Critical{Identity, Image, Type} in struct order."""
    return (
        f'{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":'
        f'{{"docker-manifest-digest":"{digest}"}},"type":"{kind}"}},"optional":{optional}}}'
    )


def _rekor_bundle(sed: str, body: str, integrated_time: int, log_index: int, log_id: str) -> str:
    """cosign's bundle.RekorBundle{SignedEntryTimestamp, Payload{body, integratedTime,
    logIndex, logID}}, in struct order."""
    return (
        f'{{"SignedEntryTimestamp":"{sed}","Payload":{{"body":"{body}","integratedTime":'
        f'{integrated_time},"logIndex":{log_index},"logID":"{log_id}"}}}}'
    )


def _bundle_entry(bundle: dict) -> str:
    """The RekorBundle of a Sigstore bundle's (v1) log entry, from its protojson fields."""
    (entry,) = bundle["verificationMaterial"]["tlogEntries"]
    return _rekor_bundle(
        entry["inclusionPromise"]["signedEntryTimestamp"],
        entry["canonicalizedBody"],
        int(entry["integratedTime"]),
        int(entry["logIndex"]),
        base64.b64decode(entry["logId"]["keyId"]).hex(),
    )


def _annotation_entry(annotation: str) -> str:
    """The RekorBundle cosign reads back from a `.sig` layer's dev.sigstore.cosign/bundle."""
    value = json.loads(annotation)
    payload = value["Payload"]
    return _rekor_bundle(
        value["SignedEntryTimestamp"],
        payload["body"],
        payload["integratedTime"],
        payload["logIndex"],
        payload["logID"],
    )


def _legacy_annotations(registry, repository: str, digest: str) -> list[dict]:
    """The annotations of each layer of the image's `sha256-<hex>.sig` manifest."""
    tag = f"sha256-{digest.removeprefix('sha256:')}.sig"
    answer = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    answer.raise_for_status()
    return [layer["annotations"] for layer in answer.json()["layers"]]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _verify(server, target: str, *extra: str, capsys) -> tuple[int, str, str]:
    argv = ["verify", "--server", server.url, "--allow-insecure-registry", "-o", "cosign"]
    return _run([*argv, *extra, target], capsys)


@pytest.fixture
def image(registry, request):
    repository = "cosign-out/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50]
    return Pusher(registry).push_image(repository.strip("-"), "1.0", seed=request.node.name)


def _path(image) -> str:
    """The repository path of a pushed image (`cosign-out/...`)."""
    return image.reference.split("/", 1)[1].rsplit(":", 1)[0]


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_a_keyless_signed_image_prints_cosigns_array(
    server, registry, image, tmp_path: Path, by: str, capsys
) -> None:
    repository = f"{registry.host}/{_path(image)}"
    saved = tmp_path / "image.sigstore.json"
    token = server.email_token(ALICE)
    sign = ["sign", "--server", server.url, "--identity-token", token, "--allow-insecure-registry"]
    assert _run([*sign, "--bundle", str(saved), image.reference], capsys)[0] == 0
    target = image.reference if by == "tag" else f"{repository}@{image.digest}"
    issuer = f"{server.url}/oidc"
    identity = ["--certificate-identity", ALICE, "--certificate-oidc-issuer", issuer]

    code, out, err = _verify(server, target, *identity, capsys=capsys)

    assert code == 0, err
    # cosign v3 names the bundle's image as typed (go-containerregistry's Name()).
    typed = f"{repository}:1.0" if by == "tag" else f"{repository}@{image.digest}"
    certificate = f'"Issuer":"{issuer}","Subject":"{ALICE}"'
    bundle = _item(
        typed,
        image.digest,
        SIGN_PREDICATE,
        f'{{"{ISSUER_OID}":"{issuer}","Bundle":{_bundle_entry(json.loads(saved.read_text()))},'
        f"{certificate}}}",
    )
    (layer,) = _legacy_annotations(registry, _path(image), image.digest)
    legacy = _item(
        repository,  # the docker-reference the payload claims
        image.digest,
        SIGNATURE_TYPE,
        f'{{"{ISSUER_OID}":"{issuer}","Bundle":'
        f"{_annotation_entry(layer['dev.sigstore.cosign/bundle'])},{certificate}}}",
    )
    assert out == f"\n[{bundle},{legacy}]\n"
    assert err == _header(typed, logged=True, by_key=False)


def test_github_claims_are_named_and_keyed_by_oid(server, registry, image, capsys) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    token = server.github_token(workflow_name="Release", ref="refs/tags/v1.0.0", sha=sha)
    sign = ["sign", "--server", server.url, "--identity-token", token, "--allow-insecure-registry"]
    assert _run([*sign, image.reference], capsys)[0] == 0
    issuer = f"{server.url}/oidc/github"
    identity = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
    flags = ["--certificate-identity", identity, "--certificate-oidc-issuer", issuer]

    code, out, err = _verify(server, image.reference, *flags, capsys=capsys)

    assert code == 0, err
    assert out.startswith("\n[") and out.endswith("]\n")
    claims = {
        "Trigger": ("2", "push"),
        "Sha": ("3", sha),
        "Name": ("4", "Release"),
        "Repository": ("5", "acme/app"),
        "Ref": ("6", "refs/tags/v1.0.0"),
    }
    expected = {ISSUER_OID: issuer, "Issuer": issuer, "Subject": identity}
    for name, (arc, value) in claims.items():
        expected[f"githubWorkflow{name}"] = expected[f"1.3.6.1.4.1.57264.1.{arc}"] = value
    for item in json.loads(out):  # the bundle, then the cosign v2 signature
        optional = item["optional"]
        assert list(optional) == sorted(optional)  # Go marshals a map's keys sorted
        assert optional.pop("Bundle")["Payload"]["logIndex"] >= 0
        assert optional == expected


def test_key_signed_images_in_both_layouts(server, registry, image, tmp_path: Path, capsys) -> None:
    entry = cosign_keys.sign_v2(image, KEY, log_url=server.url)
    bundle = cosign_keys.sign_v3(image, KEY, log_url=server.url)
    public = tmp_path / "cosign.pub"
    public.write_bytes(cosign_keys.public_pem(KEY))
    repository = f"{registry.host}/{_path(image)}"

    code, out, err = _verify(server, image.reference, "--key", str(public), capsys=capsys)

    assert code == 0, err
    (layer,) = _legacy_annotations(registry, _path(image), image.digest)
    annotation = layer["dev.sigstore.cosign/bundle"]
    assert json.loads(annotation)["Payload"]["logIndex"] == entry["logIndex"]
    v3 = _item(
        f"{repository}:1.0", image.digest, SIGN_PREDICATE, f'{{"Bundle":{_bundle_entry(bundle)}}}'
    )
    v2 = _item(
        repository, image.digest, SIGNATURE_TYPE, f'{{"Bundle":{_annotation_entry(annotation)}}}'
    )
    assert out == f"\n[{v3},{v2}]\n"
    assert err == _header(f"{repository}:1.0", logged=True, by_key=True)


def test_an_annotation_set_that_does_not_verify_is_not_printed(
    server, registry, image, tmp_path: Path, capsys
) -> None:
    """keyless checks a cosign v2 signature against the entry it fetches from the log, not the
    annotation's SET; a forged SET there is not printed: the log's own SET of the entry is."""
    forged = base64.b64encode(b"not a signature").decode()
    entry = cosign_keys.sign_v2(image, KEY, log_url=server.url, forged_set=forged)
    public = tmp_path / "cosign.pub"
    public.write_bytes(cosign_keys.public_pem(KEY))

    code, out, err = _verify(server, image.reference, "--key", str(public), capsys=capsys)

    assert code == 0, err
    (item,) = json.loads(out)
    printed = item["optional"]["Bundle"]
    assert printed["SignedEntryTimestamp"] not in (forged, "")
    assert printed["Payload"] == {
        "body": entry["body"],
        "integratedTime": entry["integratedTime"],
        "logIndex": entry["logIndex"],
        "logID": entry["logID"],
    }


def test_unlogged_key_signatures_with_the_log_ignored(server, registry, image, tmp_path, capsys):
    """No certificate and no log entry: cosign v2's payload `optional` is null; cosign v3's
    subject annotations are an empty map (structpb's AsMap of none)."""
    cosign_keys.sign_v2(image, KEY, log_url=None)
    cosign_keys.sign_v3(image, KEY, log_url=None)
    public = tmp_path / "cosign.pub"
    public.write_bytes(cosign_keys.public_pem(KEY))
    repository = f"{registry.host}/{_path(image)}"
    argv = ["--key", str(public), "--insecure-ignore-tlog"]

    code, out, err = _verify(server, f"{repository}@{image.digest}", *argv, capsys=capsys)

    assert code == 0, err
    v3 = _item(f"{repository}@{image.digest}", image.digest, SIGN_PREDICATE, "{}")
    v2 = _item(repository, image.digest, SIGNATURE_TYPE, "null")
    assert out == f"\n[{v3},{v2}]\n"
    assert err == _header(f"{repository}@{image.digest}", logged=False, by_key=True)


def test_signed_annotations_are_printed_as_go_marshals_them(
    server, registry, image, tmp_path: Path, capsys
) -> None:
    """cosign `-a` annotations: the v2 payload's `optional` and the v3 subject's
    `annotations`, numbers as Go's float64, keys sorted, HTML characters escaped."""
    optional = {"team": "<a&b>", "build": 42, "ratio": 0.5, "big": 1e21, "tiny": 1.5e-7}
    cosign_keys.sign_v2(image, KEY, log_url=None, optional=optional)
    cosign_keys.sign_v3(image, KEY, log_url=None, annotations={"env": "prod", "z": True})
    public = tmp_path / "cosign.pub"
    public.write_bytes(cosign_keys.public_pem(KEY))
    argv = ["--key", str(public), "--insecure-ignore-tlog"]

    code, out, err = _verify(server, image.reference, *argv, capsys=capsys)

    assert code == 0, err
    items = out.removeprefix("\n[").removesuffix("]\n")
    assert items.endswith(
        '"optional":{"big":1e+21,"build":42,"ratio":0.5,'
        '"team":"\\u003ca\\u0026b\\u003e","tiny":1.5e-7}}'
    )
    assert '"type":"https://sigstore.dev/cosign/sign/v1"},"optional":{"env":"prod","z":true}},' in (
        items
    )


def test_a_refusal_prints_no_array(server, image, tmp_path: Path, capsys) -> None:
    cosign_keys.sign_v2(image, KEY, log_url=server.url)
    other = tmp_path / "other.pub"
    other.write_bytes(cosign_keys.public_pem(ec.generate_private_key(ec.SECP256R1())))
    code, out, err = _verify(server, image.reference, "--key", str(other), capsys=capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: no valid signature for {image.digest}: 1 found, none verifies")


def test_cosign_output_is_for_images(server, tmp_path: Path, capsys) -> None:
    artifact = tmp_path / "a.txt"
    artifact.write_bytes(b"a")
    code, out, err = _verify(server, str(artifact), "--key", str(artifact), capsys=capsys)
    assert (code, out) == (2, "")
    assert err.strip().endswith(
        "error: -o cosign applies to images (cosign verify-blob prints no JSON)"
    )
