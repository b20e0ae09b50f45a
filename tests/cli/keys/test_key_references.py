"""Key references for verifying (issue 20): a file, `env://VAR`, an http(s) URL; `--key` repeated.

The bundle is sigstore-conformance's `managed-key-happy-path` (a P-256 key's message signature,
logged in public-good Rekor), verified offline under the shipped production root. Key URLs are
served by a real loopback HTTP server. A reference that names nothing usable exits 2; a key URL
that cannot be fetched exits 3 ("could not decide"); a key that does not verify exits 1.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyless.cli.main import main
from tests.conftest import DATA, free_port, serve_wsgi

CASES = DATA / "sigstore-conformance/test/assets/bundle-verify"
CASE = CASES / "managed-key-happy-path"
KEY = CASE / "key.pub"
ARTIFACT = CASES / "a.txt"


def _verify(capsys, *keys: str, output: str = "text") -> tuple[int, str, str]:
    argv = ["verify", "--bundle", str(CASE / "bundle.sigstore.json"), "-o", output]
    for key in keys:
        argv += ["--key", key]
    try:
        code = main([*argv, str(ARTIFACT)])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _usage_error(err: str) -> str:
    assert err.startswith("usage: keyless verify ")
    return err.strip().splitlines()[-1].removeprefix("keyless verify: error: ")


def _pem(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def other_key(tmp_path: Path) -> Path:
    path = tmp_path / "other.pub"
    path.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    return path


def _key_server(routes: dict[str, tuple[int, bytes]]):
    """A WSGI app answering each path with (status, body); 404 for the rest."""

    def app(environ, start_response):
        status, body = routes.get(environ["PATH_INFO"], (404, b"not found"))
        start_response(f"{status} X", [("Content-Type", "application/x-pem-file")])
        return [body]

    return app


def test_key_file(capsys) -> None:
    code, _, err = _verify(capsys, str(KEY))
    assert code == 0
    assert err.startswith(f"Verified OK: {ARTIFACT} signed with key {KEY}, log index ")


def test_key_from_the_environment(monkeypatch, capsys) -> None:
    monkeypatch.setenv("VENDOR_PUBLIC_KEY", KEY.read_text())
    code, out, _ = _verify(capsys, "env://VENDOR_PUBLIC_KEY", output="json")
    assert code == 0
    assert json.loads(out)["signatures"][0]["key"] == "env://VENDOR_PUBLIC_KEY"


def test_key_from_a_url(capsys) -> None:
    with serve_wsgi(_key_server({"/vendor.pub": (200, KEY.read_bytes())})) as url:
        code, out, _ = _verify(capsys, f"{url}/vendor.pub", output="json")
    assert code == 0
    assert json.loads(out)["signatures"][0]["key"] == f"{url}/vendor.pub"


def test_any_one_of_several_keys_may_have_signed(other_key: Path, capsys) -> None:
    code, out, _ = _verify(capsys, str(other_key), str(KEY), output="json")
    assert code == 0
    assert json.loads(out)["signatures"][0]["key"] == str(KEY)


def test_no_key_of_several_verifies(other_key: Path, tmp_path: Path, capsys) -> None:
    third = tmp_path / "third.pub"
    third.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    code, _, err = _verify(capsys, str(other_key), str(third))
    assert code == 1
    assert err == (
        "error: verification failed (signature): the signature over the artifact does not "
        f"verify with the signing key (with each of the 2 keys: {other_key}, {third})\n"
    )


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (
            "azurekms://vendor-vault/release",
            "Azure Key Vault (azurekms://) keys are not supported yet; a key reference here is "
            "a file, env://VAR, a pkcs11: URI, an awskms:// key, or for public keys an https:// URL",
        ),
        (
            "k8s://release/cosign",
            "Kubernetes secret (k8s://) keys are not supported yet; a key reference here is a "
            "file, env://VAR, a pkcs11: URI, an awskms:// key, or for public keys an https:// URL",
        ),
        (
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
            "Google Cloud KMS (gcpkms://) keys are not supported yet; a key reference here is a "
            "file, env://VAR, a pkcs11: URI, an awskms:// key, or for public keys an https:// URL",
        ),
        (
            "hashivault://release",
            "HashiCorp Vault (hashivault://) keys are not supported yet; a key reference here "
            "is a file, env://VAR, a pkcs11: URI, an awskms:// key, or for public keys an https:// URL",
        ),
        (
            "ftp://example.com/k.pub",
            "unknown key reference scheme ftp://; a key reference here is a file, env://VAR, a "
            "pkcs11: URI, an awskms:// key, or for public keys an https:// URL",
        ),
        (
            "env://NO_SUCH_KEY_VARIABLE",
            "environment variable $NO_SUCH_KEY_VARIABLE is not set (env://NO_SUCH_KEY_VARIABLE)",
        ),
        ("env://not a name", "'env://not a name' does not name an environment variable"),
        ("/nonexistent/vendor.pub", "key file /nonexistent/vendor.pub does not exist"),
    ],
    ids=[
        "azurekms",
        "k8s",
        "gcpkms",
        "hashivault",
        "unknown-scheme",
        "unset-env",
        "bad-env",
        "missing-file",
    ],
)
def test_bad_references_are_usage_errors(reference: str, message: str, monkeypatch, capsys) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    code, out, err = _verify(capsys, reference)
    assert (code, out) == (2, "")
    assert _usage_error(err) == message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello\n", "{path} is not a PEM key (no complete -----BEGIN ...----- block; truncated?)"),
        (
            _pem(rsa.generate_private_key(65537, 1024).public_key()),
            "{path} is an RSA-1024 key; RSA keys of 2048 to 4096 bits are supported",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
            "{path} is a CERTIFICATE PEM, not a public key",
        ),
        (
            b"-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n",
            "{path} is not a valid PEM public key",
        ),
    ],
    ids=["not-pem", "rsa-1024", "certificate", "garbage-key"],
)
def test_keys_that_cannot_verify_are_usage_errors(
    content: bytes, message: str, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "vendor.pub"
    path.write_bytes(content)
    code, _, err = _verify(capsys, str(path))
    assert code == 2
    assert _usage_error(err) == message.format(path=path)


def test_unreachable_key_url_could_not_decide(capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}/vendor.pub"
    code, out, err = _verify(capsys, url, output="json")
    assert code == 3
    assert err.splitlines()[0] == f"error: cannot reach the key URL at {url}: connection failed"
    result = json.loads(out)
    assert (result["outcome"], result["error"]["reason"]) == ("error", "unreachable")


def test_key_url_that_answers_404_could_not_decide(capsys) -> None:
    with serve_wsgi(_key_server({})) as url:
        code, _, err = _verify(capsys, f"{url}/gone.pub")
    assert code == 3
    assert err.splitlines()[0] == (
        f"error: cannot load the key at {url}/gone.pub: the server answered HTTP 404"
    )


def test_key_url_that_times_out_could_not_decide(monkeypatch, capsys) -> None:
    from keyless.client.keys import references

    monkeypatch.setattr(references, "KEY_URL_TIMEOUT_SECONDS", 1)
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/vendor.pub"
        code, _, err = _verify(capsys, url)
    assert code == 3
    assert err.splitlines()[0] == f"error: cannot reach the key URL at {url}: timed out"


def test_a_private_key_is_never_fetched_from_a_url(tmp_path: Path, capsys) -> None:
    from keyless.client.keys import KeyReferenceError, load_signer

    asked = []
    with pytest.raises(KeyReferenceError) as caught:
        load_signer("https://vendor.example/cosign.key", password=lambda: asked.append(1) or b"")
    assert caught.value.message == (
        "a private key is not fetched from a URL (https://vendor.example/cosign.key); a key "
        "reference here is a file, env://VAR, a pkcs11: URI, an awskms:// key, or for public keys an https:// URL"
    )
    assert asked == []


def _unlogged_bundle(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """A managed-key bundle with no log entry and no timestamp, as `cosign sign-blob --key
    --tlog-upload=false --new-bundle-format` writes one."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    digest = hashlib.sha256(data).digest()
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": []},
            "messageSignature": {
                "messageDigest": {
                    "algorithm": "SHA2_256",
                    "digest": base64.b64encode(digest).decode(),
                },
                "signature": base64.b64encode(signature).decode(),
            },
        }
    )


def test_unlogged_bundle_needs_insecure_ignore_tlog(tmp_path: Path, capsys) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    artifact = tmp_path / "tool.tar.gz"
    artifact.write_bytes(b"release\n")
    bundle = tmp_path / "tool.tar.gz.sigstore.json"
    bundle.write_text(_unlogged_bundle(key, b"release\n"))
    public = tmp_path / "k.pub"
    public.write_bytes(_pem(key.public_key()))
    argv = ["verify", "--key", str(public), str(artifact)]
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        "error: verification failed (bundle): expected exactly one transparency log entry, got 0 "
        "(and no RFC 3161 timestamp)\n"
    )
    assert main([*argv[:-1], "--insecure-ignore-tlog", str(artifact)]) == 0
    assert capsys.readouterr().err == (
        f"Verified OK: {artifact} signed with key {public}, no log entry checked "
        "(--insecure-ignore-tlog)\n"
    )
    # The log being ignored never makes another file or another key pass.
    other = tmp_path / "other.pub"
    other.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    assert main(["verify", "--key", str(other), "--insecure-ignore-tlog", str(artifact)]) == 1
    assert "expected exactly one transparency log entry" in capsys.readouterr().err
    artifact.write_bytes(b"tampered\n")
    assert main([*argv[:-1], "--insecure-ignore-tlog", str(artifact)]) == 1
    capsys.readouterr()


def test_insecure_ignore_tlog_needs_key(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(
            [
                "verify",
                "--insecure-ignore-tlog",
                "--certificate-identity",
                "a@b.c",
                "--certificate-oidc-issuer",
                "https://i",
                str(ARTIFACT),
            ]
        )
    assert caught.value.code == 2
    assert _usage_error(capsys.readouterr().err) == "--insecure-ignore-tlog applies to --key only"
