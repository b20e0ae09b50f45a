"""`awskms://` key references (issue 20) against moto's KMS in server mode on loopback, over
HTTPS with its generated certificate (`AWS_TLS_INSECURE_SKIP_VERIFY=1`, as sigstore's client
reads it). The keys are made with boto3 directly.

moto 5.2 ignores `MessageType=DIGEST` and signs SHA-256 of the digest (getmoto/moto#10202).
keyless sends digests as DIGEST (what real KMS and sigstore's client do) and checks every
signature KMS returns, so against moto a digest signature is refused before anything is logged;
DSSE envelopes (at most 4096 bytes, sent RAW) sign correctly on both. Both are pinned here, so
a fixed moto is noticed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.cli.main import main
from tests.conftest import free_port, skip_unless_ci
from tests.registry import Pusher

AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_TLS_INSECURE_SKIP_VERIFY": "1",
    "AWS_MAX_ATTEMPTS": "1",
}


@pytest.fixture(scope="module")
def kms() -> dict:
    """moto's server with four keys: a P-256 signing key (alias/release), an RSA-2048 one
    (alias/release-rsa), an encryption key and a secp256k1 signing key."""
    pytest.importorskip("boto3")
    binary = shutil.which("moto_server")
    if binary is None:
        skip_unless_ci("moto's server is not installed (pip install 'moto[server]')")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port), "-s"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"https://{endpoint}/", verify=False, timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("moto_server did not start") from None
                time.sleep(0.2)
        import boto3

        client = boto3.client(
            "kms",
            endpoint_url=f"https://{endpoint}",
            verify=False,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        made = {}
        for name, usage, spec in (
            ("release", "SIGN_VERIFY", "ECC_NIST_P256"),
            ("release-rsa", "SIGN_VERIFY", "RSA_2048"),
            ("secrets", "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT"),
            ("k1", "SIGN_VERIFY", "ECC_SECG_P256K1"),
        ):
            key = client.create_key(KeyUsage=usage, KeySpec=spec)["KeyMetadata"]["KeyId"]
            client.create_alias(AliasName=f"alias/{name}", TargetKeyId=key)
            made[name] = key
        yield {"endpoint": endpoint, "client": client, "keys": made}
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch) -> None:
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)


def _ref(kms: dict, name: str) -> str:
    return f"awskms://{kms['endpoint']}/alias/{name}"


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _kms_public_pem(kms: dict, name: str) -> str:
    der = kms["client"].get_public_key(KeyId=f"alias/{name}")["PublicKey"]
    return (
        serialization.load_der_public_key(der)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_public_key_of_a_kms_key(kms, capsys) -> None:
    assert _run(["public-key", "--key", _ref(kms, "release")], capsys) == (
        0,
        _kms_public_pem(kms, "release"),
        "",
    )
    by_id = f"awskms://{kms['endpoint']}/{kms['keys']['release']}"
    assert _run(["public-key", "--key", by_id], capsys)[1] == _kms_public_pem(kms, "release")


def test_moto_signs_sha256_of_a_digest_message(kms) -> None:
    """The deviation, pinned: when this fails, moto signs digests as KMS does (#10202)."""
    digest = hashlib.sha256(b"artifact").digest()
    signature = kms["client"].sign(
        KeyId="alias/release",
        Message=digest,
        MessageType="DIGEST",
        SigningAlgorithm="ECDSA_SHA_256",
    )["Signature"]
    public = serialization.load_pem_public_key(_kms_public_pem(kms, "release").encode())
    public.verify(signature, digest, ec.ECDSA(hashes.SHA256()))  # over SHA-256(digest)


def test_a_digest_signature_moto_gets_wrong_is_refused_before_logging(
    server, kms, tmp_path: Path, capsys
) -> None:
    artifact = tmp_path / "tool.bin"
    artifact.write_bytes(b"tool\n")
    sizes = requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"]
    code, _, err = _run(
        ["sign", "--server", server.url, "--key", _ref(kms, "release"), str(artifact)], capsys
    )
    assert code == 1
    assert err == (
        f"error: AWS KMS returned a signature that does not verify with {_ref(kms, 'release')}'s "
        "public key (ECDSA P-256); nothing was signed\n"
    )
    assert not (tmp_path / "tool.bin.sigstore.json").exists()
    assert requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"] == sizes


@pytest.mark.parametrize("name", ["release", "release-rsa"])
def test_sign_an_image_with_a_kms_key(server, registry, kms, name: str, capsys) -> None:
    image = Pusher(registry).push_image(f"kms/{name}", "1.0", seed=f"kms {name}")
    sign = ["sign", "--server", server.url, "--key", _ref(kms, name), "--allow-insecure-registry"]
    # cosign v2's .sig layer is a digest signature, which moto gets wrong: the bundle only.
    code, _, err = _run([*sign, "--no-legacy-tag", image.reference], capsys)
    assert code == 0, err
    verify = ["verify", "--server", server.url, "--allow-insecure-registry", "-o", "json"]
    code, out, err = _run([*verify, "--key", _ref(kms, name), image.reference], capsys)
    assert code == 0, err
    (signature,) = json.loads(out)["signatures"]
    assert signature["key"] == _ref(kms, name)


def test_attest_with_a_kms_key(server, kms, tmp_path: Path, capsys) -> None:
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"app\n")
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps({"scanner": "ok"}))
    argv = [
        "attest",
        "--server",
        server.url,
        "--key",
        _ref(kms, "release"),
        "--predicate",
        str(predicate),
    ]
    code, _, err = _run([*argv, str(artifact)], capsys)
    assert code == 0, err
    public = tmp_path / "release.pub"
    public.write_text(_kms_public_pem(kms, "release"))
    code, _, err = _run(
        ["verify-attestation", "--server", server.url, "--key", str(public), str(artifact)], capsys
    )
    assert code == 0, err


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("secrets", "{ref} is a KMS key for ENCRYPT_DECRYPT, not SIGN_VERIFY"),
        (
            "k1",
            "{ref} is a ECC_SECG_P256K1 KMS key, which cannot sign here; ECC_NIST_P256 and RSA_2048/3072/4096 keys can",
        ),
    ],
    ids=["encryption-key", "secp256k1"],
)
def test_kms_keys_of_the_wrong_type(kms, tmp_path: Path, name: str, message: str, capsys) -> None:
    artifact = tmp_path / "a"
    artifact.write_bytes(b"a")
    ref = _ref(kms, name)
    code, _, err = _run(["sign", "--key", ref, "--no-tlog-upload", str(artifact)], capsys)
    assert (code, err) == (1, "error: " + message.format(ref=ref) + "\n")


def test_unknown_kms_key(kms, capsys) -> None:
    ref = _ref(kms, "never-made")
    code, _, err = _run(["public-key", "--key", ref], capsys)
    assert code == 1
    assert err.startswith(f"error: AWS KMS refused GetPublicKey for {ref}: NotFoundException")


def test_malformed_reference_is_a_usage_error(capsys) -> None:
    code, _, err = _run(["public-key", "--key", "awskms://no-key-here"], capsys)
    assert code == 2
    assert err.strip().endswith(
        "error: kms specification should be in the format awskms://[ENDPOINT]/[ID/ALIAS/ARN] "
        "(endpoint optional)"
    )


def test_unreachable_kms_could_not_decide(capsys) -> None:
    ref = f"awskms://127.0.0.1:{free_port()}/alias/release"
    code, _, err = _run(["verify", "--key", ref, "--bundle", os.devnull, os.devnull], capsys)
    assert code == 3
    assert err.splitlines()[0] == f"error: cannot reach AWS KMS for {ref}: EndpointConnectionError"


def _key_count(kms: dict) -> int:
    return len(kms["client"].list_keys()["Keys"])


def test_generate_key_pair_in_kms(server, kms, tmp_path: Path, monkeypatch, capsys) -> None:
    """`generate-key-pair --kms awskms://.../alias/NAME` makes a P-256 signing key under the
    alias, as cosign does, and writes only its public key; the key then signs (DSSE, which
    moto signs right) and verifies with that file."""
    monkeypatch.chdir(tmp_path)
    ref = _ref(kms, "made-by-keyless")
    count = _key_count(kms)
    code, out, err = _run(
        ["generate-key-pair", "--kms", ref, "--output-key-prefix", "release"], capsys
    )
    assert (code, out, err) == (0, "", "Public key written to release.pub\n")
    assert _key_count(kms) == count + 1
    metadata = kms["client"].describe_key(KeyId="alias/made-by-keyless")["KeyMetadata"]
    assert (metadata["KeySpec"], metadata["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.pub"]
    assert (tmp_path / "release.pub").read_text() == _kms_public_pem(kms, "made-by-keyless")
    assert (tmp_path / "release.pub").stat().st_mode & 0o777 == 0o644

    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"app\n")
    predicate = tmp_path / "predicate.json"
    predicate.write_text("{}")
    attest = ["attest", "--server", server.url, "--key", ref, "--predicate", str(predicate)]
    assert _run([*attest, str(artifact)], capsys)[0] == 0
    verify = ["verify-attestation", "--server", server.url, "--key", "release.pub"]
    code, _, err = _run([*verify, str(artifact)], capsys)
    assert code == 0, err


def test_generate_key_pair_keeps_the_key_an_alias_names(
    kms, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    ref = _ref(kms, "release")
    count = _key_count(kms)
    code, _, err = _run(["generate-key-pair", "--kms", ref], capsys)
    assert (code, err) == (
        0,
        f"{ref} already names a key in KMS; its public key is kept\n"
        "Public key written to cosign.pub\n",
    )
    assert _key_count(kms) == count
    assert (tmp_path / "cosign.pub").read_text() == _kms_public_pem(kms, "release")


@pytest.mark.parametrize(
    ("key", "code", "message"),
    [
        (
            "{id}",
            2,
            "generate-key-pair --kms needs an alias to create the key under: "
            "awskms://[ENDPOINT]/alias/NAME, not {ref}",
        ),
        ("alias/aws/ebs", 2, "alias/aws/ebs is an AWS managed key's alias; choose another name"),
        ("alias/secrets", 1, "{ref} is a KMS key for ENCRYPT_DECRYPT, not SIGN_VERIFY"),
    ],
    ids=["key-id-not-alias", "aws-managed-alias", "encryption-key-alias"],
)
def test_generate_key_pair_refusals_write_and_create_nothing(
    kms, tmp_path: Path, monkeypatch, key: str, code: int, message: str, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    ref = f"awskms://{kms['endpoint']}/" + key.format(id=kms["keys"]["release"])
    count = _key_count(kms)
    got, _, err = _run(["generate-key-pair", "--kms", ref], capsys)
    assert got == code
    assert err.splitlines()[-1].endswith("error: " + message.format(ref=ref))
    assert _key_count(kms) == count
    assert list(tmp_path.iterdir()) == []


def test_generate_key_pair_asks_before_replacing_the_public_key(
    kms, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cosign.pub").write_text("the vendor's published key")
    count = _key_count(kms)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = _run(["generate-key-pair", "--kms", _ref(kms, "never-asked")], capsys)
    assert (code, err) == (1, "error: cosign.pub already exists; pass --yes to overwrite it\n")
    assert _key_count(kms) == count
    assert (tmp_path / "cosign.pub").read_text() == "the vendor's published key"
