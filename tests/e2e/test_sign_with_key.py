"""`keyless sign --key` end to end (issue 20): files, digests and images signed with a cosign
key file, logged in the dev server's logs (Rekor v2 for files by default, v1 for images), or not
logged with `--no-tlog-upload`; overlay signing for a key rotation on the real registry; bad
keys refused with one line, nothing logged and nothing pushed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyless.cli.main import main
from tests.cli.keys import cosign_format
from tests.gate.webhook import cip
from tests.registry import Pusher

PASSWORD = "vendor-secret"


def _generate(folder: Path, name: str, monkeypatch, capsys) -> Path:
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    prefix = folder / name
    assert main(["generate-key-pair", "--output-key-prefix", str(prefix)]) == 0
    capsys.readouterr()
    return prefix


@pytest.fixture
def key1(tmp_path: Path, monkeypatch, capsys) -> Path:
    return _generate(tmp_path, "key1", monkeypatch, capsys)


@pytest.fixture
def key2(tmp_path: Path, monkeypatch, capsys) -> Path:
    return _generate(tmp_path, "key2", monkeypatch, capsys)


@pytest.fixture
def image(registry, request):
    repository = "signkey/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    return Pusher(registry).push_image(repository, "1.0", seed=request.node.name)


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _tree_sizes(server) -> tuple[int, int]:
    """The sizes of the server's v1 and v2 logs: nothing logged leaves both unchanged."""
    v1 = requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"]
    checkpoint = requests.get(f"{server.url}/api/v2/checkpoint", timeout=30)
    v2 = int(checkpoint.text.splitlines()[1]) if checkpoint.status_code == 200 else -1
    return v1, v2


def _hint(public: Path) -> str:
    key = serialization.load_pem_public_key(public.read_bytes())
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.mark.parametrize("version", ["2", "1"])
def test_sign_a_file_with_a_key_and_verify_it(
    server, key1: Path, tmp_path: Path, version: str, capsys
) -> None:
    artifact = tmp_path / "tool.tar.gz"
    artifact.write_bytes(b"vendor release\n")
    argv = ["sign", "--server", server.url, "--key", f"{key1}.key", "--rekor-version", version]
    code, _, err = _run([*argv, str(artifact)], capsys)
    assert code == 0, err
    bundle_path = tmp_path / "tool.tar.gz.sigstore.json"
    assert re.fullmatch(
        rf"signed {artifact} with key {key1}\.key, log index \d+; bundle written to "
        rf"{bundle_path}\n",
        err,
    )
    bundle = json.loads(bundle_path.read_text())
    material = bundle["verificationMaterial"]
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert material["publicKey"] == {"hint": _hint(Path(f"{key1}.pub"))}
    assert "certificate" not in material
    (entry,) = material["tlogEntries"]
    kind = {"2": "0.0.2", "1": "0.0.1"}[version]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": kind}
    assert ("timestampVerificationData" in material) == (version == "2")
    verify = ["verify", "--server", server.url, "--key", f"{key1}.pub", str(artifact)]
    code, _, err = _run(verify, capsys)
    assert code == 0, err
    assert err.startswith(f"Verified OK: {artifact} signed with key {key1}.pub, log index ")


def test_sign_a_digest_with_a_key(server, key1: Path, tmp_path: Path, capsys) -> None:
    digest = "sha256:" + hashlib.sha256(b"blob").hexdigest()
    out = tmp_path / "blob.sigstore.json"
    argv = ["sign", "--server", server.url, "--key", f"{key1}.key", "--bundle", str(out), digest]
    assert _run(argv, capsys)[0] == 0
    verify = ["verify", "--server", server.url, "--key", f"{key1}.pub", "--bundle", str(out)]
    assert _run([*verify, digest], capsys)[0] == 0


def test_no_tlog_upload_needs_no_server_and_logs_nothing(
    server, key1: Path, tmp_path: Path, capsys
) -> None:
    artifact = tmp_path / "offline.bin"
    artifact.write_bytes(b"signed offline\n")
    before = _tree_sizes(server)
    code, _, err = _run(["sign", "--key", f"{key1}.key", "--no-tlog-upload", str(artifact)], capsys)
    assert code == 0, err
    assert "not logged (--no-tlog-upload)" in err
    assert _tree_sizes(server) == before
    bundle = json.loads((tmp_path / "offline.bin.sigstore.json").read_text())
    assert bundle["verificationMaterial"]["tlogEntries"] == []
    verify = ["verify", "--server", server.url, "--key", f"{key1}.pub"]
    assert _run([*verify, str(artifact)], capsys)[0] == 1
    code, _, err = _run([*verify, "--insecure-ignore-tlog", str(artifact)], capsys)
    assert code == 0, err


def test_sign_an_image_with_a_key_in_cosigns_layout(
    server, registry, image, key1: Path, capsys
) -> None:
    code, out, err = _run(
        [
            "sign",
            "--server",
            server.url,
            "--key",
            f"{key1}.key",
            "--allow-insecure-registry",
            image.reference,
        ],
        capsys,
    )
    assert code == 0, err
    repository = image.reference.split("/", 1)[1].rsplit(":", 1)[0]
    assert out == f"{registry.host}/{repository}@{image.digest}\n"
    assert f"@{image.digest} with key {key1}.key:\n" in err
    # The referrer bundle: a DSSE in-toto statement, cosign v3's predicate, the key's hint.
    hex_digest = image.digest.removeprefix("sha256:")
    index = requests.get(
        f"{registry.url}/v2/{repository}/manifests/sha256-{hex_digest}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        timeout=30,
    ).json()
    (referrer,) = index["manifests"]
    manifest = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{referrer['digest']}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    ).json()
    layer = manifest["layers"][0]["digest"]
    bundle = requests.get(f"{registry.url}/v2/{repository}/blobs/{layer}", timeout=30).json()
    assert bundle["verificationMaterial"]["publicKey"] == {"hint": _hint(Path(f"{key1}.pub"))}
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    assert statement["subject"] == [{"digest": {"sha256": hex_digest}}]
    assert bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"] == "dsse"
    # cosign v2's .sig layer: no certificate, the log's bundle annotation.
    sig = requests.get(
        f"{registry.url}/v2/{repository}/manifests/sha256-{hex_digest}.sig",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    ).json()
    (annotations,) = [layer["annotations"] for layer in sig["layers"]]
    assert set(annotations) == {"dev.cosignproject.cosign/signature", "dev.sigstore.cosign/bundle"}
    verify = ["verify", "--server", server.url, "--allow-insecure-registry", "-o", "json"]
    code, out, _ = _run([*verify, "--key", f"{key1}.pub", image.reference], capsys)
    assert code == 0
    signatures = json.loads(out)["signatures"]
    assert sorted(s["source"] for s in signatures) == ["fallback-tag", "legacy-tag"]
    assert {s["key"] for s in signatures} == {f"{key1}.pub"}


def test_no_legacy_tag_and_no_tlog_upload_for_images(
    server, registry, image, key1: Path, capsys
) -> None:
    before = _tree_sizes(server)
    argv = ["sign", "--key", f"{key1}.key", "--no-tlog-upload", "--no-legacy-tag"]
    code, _, err = _run([*argv, "--allow-insecure-registry", image.reference], capsys)
    assert code == 0, err
    assert _tree_sizes(server) == before
    hex_digest = image.digest.removeprefix("sha256:")
    repository = image.reference.split("/", 1)[1].rsplit(":", 1)[0]
    tag = requests.get(
        f"{registry.url}/v2/{repository}/manifests/sha256-{hex_digest}.sig",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert tag.status_code == 404
    verify = ["verify", "--server", server.url, "--allow-insecure-registry"]
    verify += ["--key", f"{key1}.pub"]
    assert _run([*verify, image.reference], capsys)[0] == 1
    assert _run([*verify, "--insecure-ignore-tlog", image.reference], capsys)[0] == 0


def _key_authority(public: Path, name: str) -> str:
    data = "\n".join("        " + line for line in public.read_text().splitlines())
    return f"  - name: {name}\n    key:\n      data: |\n{data}\n"


def test_overlay_rotation_end_to_end(
    server, registry, image, key1: Path, key2: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Key 1 signs; the vendor rotates: key 2 signs the same image again, key 1's signatures
    stay; customers pinning key 1, key 2 or both pass, a key that never signed fails. After the
    window the policy drops key 1, and an image signed only by key 1 no longer passes."""
    never = _generate(tmp_path, "never", monkeypatch, capsys)
    sign = ["sign", "--server", server.url, "--allow-insecure-registry"]
    assert _run([*sign, "--key", f"{key1}.key", image.reference], capsys)[0] == 0
    assert _run([*sign, "--key", f"{key2}.key", image.reference], capsys)[0] == 0
    verify = ["verify", "--server", server.url, "--allow-insecure-registry", "-o", "json"]

    def keys_found(*keys: Path) -> tuple[int, list[str]]:
        argv = [*verify]
        for key in keys:
            argv += ["--key", f"{key}.pub"]
        code, out, _ = _run([*argv, image.reference], capsys)
        return code, sorted(s["key"] for s in json.loads(out)["signatures"])

    assert keys_found(key1) == (0, [f"{key1}.pub"] * 2)  # bundle and .sig, both kept
    assert keys_found(key2) == (0, [f"{key2}.pub"] * 2)
    assert keys_found(key1, key2) == (0, sorted([f"{key1}.pub"] * 2 + [f"{key2}.pub"] * 2))
    assert keys_found(never)[0] == 1

    trust = tmp_path / "keyless-dev.json"
    trust.write_bytes(
        requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30).content
    )
    ctlog = f"    ctlog:\n      url: {server.url}\n      trustRootRef: keyless-dev\n"

    def check(image_ref: str, *keys: Path) -> int:
        text = "".join(_key_authority(Path(f"{k}.pub"), k.name) + ctlog for k in keys)
        policy = tmp_path / "policy.yaml"
        policy.write_text(cip("vendor", text))
        argv = ["policy", "check", "--allow-insecure-registry", "--policy", str(policy)]
        code, _, _ = _run([*argv, "--trust-root", f"keyless-dev={trust}", image_ref], capsys)
        return code

    assert [
        check(image.reference, *keys) for keys in ((key1,), (key2,), (key1, key2), (never,))
    ] == [0, 0, 0, 1]
    # After the window: the policy names key 2 only. The overlay-signed image still passes; an
    # image the vendor signed with key 1 alone (never re-signed) is now refused.
    old = Pusher(registry).push_image(
        image.reference.split("/", 1)[1].rsplit(":", 1)[0], "0.9", seed="old release"
    )
    assert _run([*sign, "--key", f"{key1}.key", old.reference], capsys)[0] == 0
    assert (
        check(image.reference, key2),
        check(old.reference, key2),
        check(old.reference, key1, key2),
    ) == (0, 1, 0)


def _unchanged(server, registry, image, before) -> None:
    assert _tree_sizes(server) == before
    hex_digest = image.digest.removeprefix("sha256:")
    repository = image.reference.split("/", 1)[1].rsplit(":", 1)[0]
    for tag in (f"sha256-{hex_digest}", f"sha256-{hex_digest}.sig"):
        answer = requests.get(
            f"{registry.url}/v2/{repository}/manifests/{tag}",
            headers={
                "Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
            },
            timeout=30,
        )
        assert answer.status_code == 404, tag


def _pkcs8(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    "case", ["wrong-password", "tampered", "truncated", "scrypt-n-1024", "rsa-1024", "p-384"]
)
def test_bad_keys_sign_nothing_and_log_nothing(
    server, registry, image, key1: Path, tmp_path: Path, monkeypatch, capsys, case: str
) -> None:
    path = tmp_path / "bad.key"
    good = Path(f"{key1}.key").read_bytes()
    message = {
        "wrong-password": f"cannot decrypt {path}: wrong password, or the file was altered",
        "tampered": f"cannot decrypt {path}: wrong password, or the file was altered",
        "truncated": f"{path} is not a PEM key (no complete -----BEGIN ...----- block; truncated?)",
        "scrypt-n-1024": f"{path}: unsupported scrypt parameters (N=1024, r=8, p=1); cosign reads "
        "N=32768, 65536 or 131072 with r=8, p=1",
        "rsa-1024": f"{path} is an RSA-1024 key; RSA keys of 2048 to 4096 bits are supported",
        "p-384": f"{path} is an ECDSA P-384 key, which cannot sign here yet; ECDSA P-256 and RSA "
        "keys can",
    }[case]
    if case == "wrong-password":
        path.write_bytes(good)
        monkeypatch.setenv("COSIGN_PASSWORD", "not it")
    elif case == "tampered":
        document = cosign_format.read_document(good)
        raw = bytearray(base64.b64decode(document["ciphertext"]))
        raw[20] ^= 1
        document["ciphertext"] = base64.b64encode(bytes(raw)).decode()
        path.write_bytes(
            cosign_format.pem("ENCRYPTED SIGSTORE PRIVATE KEY", json.dumps(document).encode())
        )
    elif case == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif case == "scrypt-n-1024":
        key = _pkcs8(ec.generate_private_key(ec.SECP256R1()))
        path.write_bytes(cosign_format.write_key_file(key, PASSWORD.encode(), n=1024))
    elif case == "rsa-1024":
        key = _pkcs8(rsa.generate_private_key(65537, 1024))
        path.write_bytes(cosign_format.write_key_file(key, PASSWORD.encode()))
    else:
        key = _pkcs8(ec.generate_private_key(ec.SECP384R1()))
        path.write_bytes(cosign_format.write_key_file(key, PASSWORD.encode()))
    before = _tree_sizes(server)
    argv = ["sign", "--server", server.url, "--key", str(path), "--allow-insecure-registry"]
    code, out, err = _run([*argv, image.reference], capsys)
    assert (code, out) == (1, "")
    assert err == f"error: {message}\n" or err.startswith(f"error: {message}\nhint: ")
    _unchanged(server, registry, image, before)


def test_unsupported_key_references_are_usage_errors(server, image, capsys) -> None:
    argv = ["sign", "--server", server.url, "--allow-insecure-registry"]
    code, _, err = _run(
        [
            *argv,
            "--key",
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
            image.reference,
        ],
        capsys,
    )
    assert code == 2
    assert err.strip().endswith(
        "error: Google Cloud KMS (gcpkms://) keys are not supported yet; a key reference here is a "
        "file, env://VAR, a pkcs11: URI, an awskms:// key, or for public keys an https:// URL"
    )


def test_key_signing_usage_errors(key1: Path, tmp_path: Path, capsys) -> None:
    artifact = tmp_path / "a"
    artifact.write_bytes(b"a")
    for argv, message in (
        (
            ["--key", f"{key1}.key", str(artifact)],
            "one of the arguments --server --signing-config --trust-config is required",
        ),
        (
            ["--no-tlog-upload", "--server", "http://127.0.0.1:9", str(artifact)],
            "--no-tlog-upload applies to --key (keyless signatures are always logged)",
        ),
        (
            [
                "--key",
                f"{key1}.key",
                "--identity-token",
                "x",
                "--server",
                "http://127.0.0.1:9",
                str(artifact),
            ],
            "--key signs with a long-lived key; identity token flags do not apply",
        ),
    ):
        code, _, err = _run(["sign", *argv], capsys)
        assert code == 2
        assert err.strip().endswith(f"error: {message}")
