"""`pkcs11:` key references (issue 20) on SoftHSM2: keyless signs with a key pair made in the
token (non-extractable, sensitive), logged in the dev server's log, and the signature verifies
with the public key the token gives; cosign's URI refusals word for word; a wrong PIN signs and
logs nothing.

The token is set up by python-pkcs11 directly, and keyless runs in its own process: a PKCS#11
module reads its configuration (SOFTHSM2_CONF) once per process, and the CA's tests keep
another token in this one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from keyless.cli.main import main
from tests.conftest import KEYLESS, skip_unless_ci

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "1234"

_SETUP = """
import sys
import pkcs11
from pkcs11 import Attribute, KeyType
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

token = pkcs11.lib(sys.argv[1]).get_token(token_label="vendor")
with token.open(user_pin=sys.argv[2], rw=True) as session:
    private = {Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True, Attribute.SIGN: True}
    parameters = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
    )
    ec_public, ec_private = parameters.generate_keypair(
        store=True, label="release", id=b"\\x01\\x02", private_template=private
    )
    rsa_public, _ = session.generate_keypair(
        KeyType.RSA, 2048, store=True, label="release-rsa", private_template=private
    )
    assert ec_private[Attribute.EXTRACTABLE] is False and ec_private[Attribute.SENSITIVE]
    print(encode_ec_public_key(ec_public).hex())
    print(encode_rsa_public_key(rsa_public).hex())
"""


@pytest.fixture(scope="module")
def token(tmp_path_factory) -> dict:
    """A SoftHSM2 token `vendor` (PIN 1234) holding an EC P-256 and an RSA-2048 key pair."""
    if shutil.which("softhsm2-util") is None or not MODULE.exists():
        skip_unless_ci("SoftHSM2 is not installed (Debian package softhsm2)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    init = ["softhsm2-util", "--init-token", "--free", "--label", "vendor"]
    subprocess.run(
        [*init, "--pin", PIN, "--so-pin", "5678"], check=True, capture_output=True, env=env
    )
    made = subprocess.run(
        [sys.executable, "-c", _SETUP, str(MODULE), PIN],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    ec_der, rsa_der = made.stdout.split()
    return {
        "env": env,
        "ec": bytes.fromhex(ec_der),
        "rsa_pkcs1": bytes.fromhex(rsa_der),
        "base": base,
    }


def _uri(label: str = "release", **query: str) -> str:
    options = {"module-path": str(MODULE), "pin-value": PIN, **query}
    return f"pkcs11:token=vendor;object={label}?" + "&".join(
        f"{k}={v}" for k, v in options.items() if v
    )


def _keyless(token: dict, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*KEYLESS, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**token["env"], **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def _pem(der: bytes) -> bytes:
    key = serialization.load_der_public_key(der)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_public_key_of_a_token_key(token) -> None:
    done = _keyless(token, "public-key", "--key", _uri())
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.encode() == _pem(token["ec"])
    # By id (percent-encoded bytes) and with the module path and PIN from the environment.
    env = {"COSIGN_PKCS11_MODULE_PATH": str(MODULE), "COSIGN_PKCS11_PIN": PIN}
    done = _keyless(token, "public-key", "--key", "pkcs11:token=vendor;id=%01%02", env=env)
    assert (done.returncode, done.stdout.encode()) == (0, _pem(token["ec"]))


@pytest.mark.parametrize("label", ["release", "release-rsa"])
def test_sign_a_file_in_the_token_and_verify_it(server, token, label: str, tmp_path: Path) -> None:
    artifact = tmp_path / "firmware.bin"
    artifact.write_bytes(b"signed inside the HSM\n")
    done = _keyless(token, "sign", "--server", server.url, "--key", _uri(label), str(artifact))
    assert done.returncode == 0, done.stderr
    bundle = json.loads((tmp_path / "firmware.bin.sigstore.json").read_text())
    assert "publicKey" in bundle["verificationMaterial"]
    public = tmp_path / "token.pub"
    shown = _keyless(token, "public-key", "--key", _uri(label))
    public.write_text(shown.stdout)
    # Verified in this process with the exported public key: no token involved.
    assert main(["verify", "--server", server.url, "--key", str(public), str(artifact)]) == 0


def test_wrong_pin_signs_and_logs_nothing(server, token, tmp_path: Path) -> None:
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"a\n")
    size = requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"]
    done = _keyless(
        token, "sign", "--server", server.url, "--key", _uri(**{"pin-value": "9999"}), str(artifact)
    )
    assert (done.returncode, done.stderr) == (
        1,
        "error: the PKCS#11 token 'vendor' refused the PIN\n",
    )
    assert not (tmp_path / "a.bin.sigstore.json").exists()
    assert requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"] == size


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "pkcs11:object=release?module-path=/usr/lib/softhsm/libsofthsm2.so",
            "invalid uri: one of token and slot-id must be set",
        ),
        (
            "pkcs11:token=vendor;object=release",
            "invalid uri: module-path or COSIGN_PKCS11_MODULE_PATH must be set to the absolute path "
            "of the PKCS11 module",
        ),
        (
            "pkcs11:token=vendor?module-path=/usr/lib/softhsm/libsofthsm2.so",
            "invalid uri: one of object and id must be set",
        ),
        (
            "pkcs11:slot-id=abc;object=k?module-path=/m.so",
            "invalid uri: slot-id 'abc' is not a valid number",
        ),
        (
            "pkcs11:token=vendor;object=k;object=j?module-path=/m.so",
            "invalid uri: path attribute 'object' is given twice",
        ),
        (
            "pkcs11:token=vendor;object=k;colour=red?module-path=/m.so",
            "invalid uri: unknown path attribute 'colour'",
        ),
        (
            "pkcs11:token=vendor;object=k?module-path=lib.so",
            "the PKCS#11 module path lib.so is not an absolute path",
        ),
        (
            "pkcs11:token=vendor;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so",
            "no PIN for the PKCS#11 token 'vendor': give pin-value in the URI or set COSIGN_PKCS11_PIN",
        ),
    ],
    ids=[
        "no-token",
        "no-module",
        "no-key",
        "bad-slot",
        "twice",
        "unknown",
        "relative-module",
        "no-pin",
    ],
)
def test_uri_refusals_are_usage_errors(uri: str, message: str, monkeypatch, capsys) -> None:
    monkeypatch.delenv("COSIGN_PKCS11_MODULE_PATH", raising=False)
    monkeypatch.delenv("COSIGN_PKCS11_PIN", raising=False)
    with pytest.raises(SystemExit) as caught:
        main(["public-key", "--key", uri])
    assert caught.value.code == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1] == f"keyless public-key: error: {message}"
    )


def test_missing_token_and_key_are_one_line(token) -> None:
    done = _keyless(token, "public-key", "--key", _uri("no-such-key"))
    assert (done.returncode, done.stderr) == (
        1,
        "error: no key pair 'no-such-key' in the PKCS#11 token 'vendor'\n",
    )
    uri = _uri().replace("token=vendor", "token=elsewhere")
    done = _keyless(token, "public-key", "--key", uri)
    assert (done.returncode, done.stderr) == (
        1,
        f"error: the PKCS#11 token 'elsewhere' is not in {MODULE}\n",
    )


def test_without_python_pkcs11_one_line_says_what_to_install(token) -> None:
    # python-pkcs11 made unimportable in that process, as on an install without the extra.
    code = (
        "import sys; sys.modules['pkcs11'] = None\n"
        "from keyless.cli.main import main\n"
        f"sys.exit(main(['public-key', '--key', {_uri()!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=token["env"], timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "keyless public-key: error: PKCS#11 keys need python-pkcs11: pip install 'keyless[pkcs11]'"
    )
