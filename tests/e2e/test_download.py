"""`keyless download signature|attestation|sbom IMAGE`: the attachments of a real registry's
image, as cosign users' scripts read them (one JSON line each; both jq idioms for a DSSE
payload; the SBOM itself)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from keyless.cli.main import main
from tests.e2e.test_attest_images import ALICE, PROVENANCE, _attest

SPDX = {"spdxVersion": "SPDX-2.3", "name": "app", "packages": [{"name": "libfoo"}]}


def _sign(server, image: str) -> None:
    argv = ["sign", "--server", server.url, "--identity-token", server.email_token(ALICE)]
    assert main([*argv, "--allow-insecure-registry", image]) == 0


def _download(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = main(["download", *argv[:-1], "--allow-insecure-registry", argv[-1]])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_signatures_attestations_and_the_sbom(server, registry, pusher, tmp_path: Path, capsys):
    image = pusher.push_image("download/app", "1", seed="download app")
    _sign(server, image.reference)
    provenance = tmp_path / "provenance.json"
    provenance.write_text(json.dumps(PROVENANCE))
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text(json.dumps(SPDX))
    assert _attest(server, image.reference, provenance) == 0
    assert _attest(server, image.reference, sbom, "spdxjson") == 0
    capsys.readouterr()

    code, lines, _ = _download(capsys, "signature", image.reference)
    assert code == 0
    signatures = [json.loads(line) for line in lines]
    # The Sigstore bundle keyless sign stores as cosign v3 does: a DSSE statement of cosign's
    # signing predicate type.
    (bundle,) = [s for s in signatures if "dsseEnvelope" in s]
    signed = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert signed["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    # And cosign v2's .sig signature, in cosign's SignedPayload fields.
    legacy = [s for s in signatures if "Base64Signature" in s]
    assert legacy and legacy[0]["Bundle"]["Payload"]["logIndex"] >= 0
    assert json.loads(base64.b64decode(legacy[0]["Payload"]))["critical"]["image"] == {
        "docker-manifest-digest": image.digest
    }

    code, lines, _ = _download(capsys, "attestation", image.reference)
    assert code == 0 and len(lines) == 2
    for line in lines:
        document = json.loads(line)
        assert document["payload"] == document["dsseEnvelope"]["payload"]
    code, lines, _ = _download(capsys, "attestation", "--predicate-type", "spdx", image.reference)
    (only,) = [json.loads(line) for line in lines]
    statement = json.loads(base64.b64decode(only["payload"]))
    assert statement["predicateType"] == "https://spdx.dev/Document"

    code, lines, err = _download(capsys, "sbom", image.reference)
    assert code == 0
    assert json.loads("\n".join(lines)) == SPDX
    assert err == "Found SBOM of media type: https://spdx.dev/Document\n"


def test_an_image_with_nothing_attached(server, registry, pusher, capsys):
    image = pusher.push_image("download/bare", "1", seed="download bare")
    pinned = f"{registry.host}/download/bare@{image.digest}"
    for what, missing in (
        ("signature", "no signatures associated with"),
        ("attestation", "no attestations associated with"),
        ("sbom", "no SBOM attached to"),
    ):
        code, lines, err = _download(capsys, what, image.reference)
        assert (code, lines) == (1, [])
        assert err == f"error: {missing} {pinned}\n"
