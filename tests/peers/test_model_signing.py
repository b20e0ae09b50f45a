"""OpenSSF model signing (`model-signing` on PyPI, built on sigstore-python 4) against
`keyless serve`: it signs a model directory with keyless's client trust config and verifies
by identity; keyless verifies its signatures (an in-toto statement in a DSSE bundle) by the
model's digest; and model-signing verifies a model signature that `keyless attest` made.

The model's digest is computed here, independently of both: SHA-256 over the SHA-256 of each
file, in the order of their relative paths (model-signing's `files` serialization, v1.0)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.peers.conftest import Served
from tests.peers.venvs import PeerVenv, peer_venv

pytestmark = pytest.mark.timeout(1200)  # the first run builds the venv
# model-signing 1.1.1 imports OpenSSL (pyOpenSSL) without declaring it.
REQUIREMENTS = ("model-signing==1.1.1", "pyOpenSSL==26.4.0")
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
IGNORED = [".git", ".github", ".gitattributes", ".gitignore"]  # model-signing's defaults


@pytest.fixture(scope="module")
def model_signing() -> PeerVenv:
    return peer_venv("model-signing", REQUIREMENTS)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    (path / "weights").mkdir(parents=True)
    (path / "config.json").write_text('{"layers": 2}\n')
    (path / "weights" / "layer0.bin").write_bytes(bytes(range(256)) * 16)
    (path / "weights" / "layer1.bin").write_bytes(b"\x01" * 4096)
    return path


@pytest.fixture
def trust_config(served: Served, tmp_path: Path) -> Path:
    return served.trust_document("client_trust_config", tmp_path / "trust_config.json")


def _files(model: Path) -> dict[str, str]:
    names = sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file())
    return {name: hashlib.sha256((model / name).read_bytes()).hexdigest() for name in names}


def _model_digest(model: Path) -> str:
    files = _files(model)
    return (
        "sha256:" + hashlib.sha256(b"".join(bytes.fromhex(d) for d in files.values())).hexdigest()
    )


def _predicate(model: Path) -> dict[str, Any]:
    """What model-signing puts in its statement: how the model was read, and each file's digest."""
    return {
        "serialization": {
            "method": "files",
            "hash_type": "sha256",
            "allow_symlinks": False,
            "ignore_paths": IGNORED,
        },
        "resources": [
            {"name": name, "algorithm": "sha256", "digest": digest}
            for name, digest in _files(model).items()
        ],
    }


def _sign(model_signing: PeerVenv, config: Path, token: str, model: Path, signature: Path):
    return model_signing.run(
        "-m", "model_signing", "sign", "sigstore", "--trust_config", str(config),
        "--identity_token", token, "--signature", str(signature), str(model),
    )  # fmt: skip


def _verify(
    model_signing: PeerVenv, config: Path, signature: Path, model: Path, identity: str, issuer: str
):
    return model_signing.run(
        "-m", "model_signing", "verify", "sigstore", "--trust_config", str(config),
        "--signature", str(signature), "--identity", identity, "--identity_provider", issuer,
        str(model),
    )  # fmt: skip


def _keyless_verify(served: Served, signature: Path, digest: str, identity: str) -> int:
    return served.keyless(
        "verify-attestation", "--bundle", str(signature), "--type", PREDICATE_TYPE,
        "--certificate-identity", identity, "--certificate-oidc-issuer", served.issuer, digest,
    )  # fmt: skip


@pytest.fixture
def model_signature(model_signing, served, trust_config, model, tmp_path) -> Path:
    """model-signing's signature of `model`, by quinn@example.com."""
    signature = tmp_path / "model.sig"
    signed = _sign(model_signing, trust_config, served.token("quinn@example.com"), model, signature)
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.strip() == "Signing succeeded"
    return signature


def test_model_signing_signs_against_keyless_and_verifies_by_identity(
    model_signing, served, trust_config, model, model_signature
) -> None:
    bundle = json.loads(model_signature.read_text())
    # sigstore-python 4 under it takes the highest log version keyless offers.
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    verified = _verify(
        model_signing, trust_config, model_signature, model, "quinn@example.com", served.issuer
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == "Verification succeeded"


def test_keyless_verifies_a_model_signing_signature_by_the_models_digest(
    served, model, model_signature, capsys
) -> None:
    digest = _model_digest(model)
    assert _keyless_verify(served, model_signature, digest, "quinn@example.com") == 0
    assert capsys.readouterr().err.startswith(
        f"Verified OK: {digest} attested ({PREDICATE_TYPE}) by quinn@example.com ({served.issuer})"
    )


def test_keyless_refuses_a_model_signing_signature_once_the_weights_change(
    served, model, model_signature, capsys
) -> None:
    signed = _model_digest(model)
    (model / "weights" / "layer1.bin").write_bytes(b"\x02" * 4096)
    changed = _model_digest(model)
    assert _keyless_verify(served, model_signature, changed, "quinn@example.com") == 1
    assert capsys.readouterr().err.strip() == (
        f"error: verification failed (dsse): artifact {changed} is not a subject of the in-toto "
        f"statement (subjects: {signed})"
    )


@pytest.mark.parametrize("rekor_version", ["1", "2"])
def test_model_signing_verifies_a_keyless_model_attestation(
    model_signing, served, trust_config, model, tmp_path, rekor_version
) -> None:
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps(_predicate(model)))
    signature = tmp_path / "keyless-model.sig"
    attested = served.keyless(
        "attest", "--identity-token", served.token("rosa@example.com"),
        "--predicate", str(predicate), "--type", PREDICATE_TYPE, "--subject-name", model.name,
        "--rekor-version", rekor_version, "--bundle", str(signature), _model_digest(model),
    )  # fmt: skip
    assert attested == 0
    verified = _verify(
        model_signing, trust_config, signature, model, "rosa@example.com", served.issuer
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == "Verification succeeded"

    refused = _verify(
        model_signing, trust_config, signature, model, "mallory@example.com", served.issuer
    )
    assert refused.returncode == 1
