"""cosign's key files (issue 20): `keyless generate-key-pair`, `import-key-pair`, `public-key`.

Interop both ways: key files written by an independent implementation of the format
(tests/cli/keys/cosign_format.py, scrypt and secretbox called directly) and by cosign itself
(its published test keys, tests/data/cosign/) are read; keyless's files are read back by the
independent reader. Bad input is one line each, and nothing is written.
"""

from __future__ import annotations

import functools
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyless.cli.main import main
from tests.cli.keys import cosign_format
from tests.conftest import DATA, KEYLESS

COSIGN = DATA / "cosign"


class _Stdin:
    """A piped standard input (not a terminal) holding `data`."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        return self.buffer.readline().decode()


@pytest.fixture(autouse=True)
def _no_password(monkeypatch) -> None:
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", _Stdin(b""))


def _pkcs8(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pub(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_generate_key_pair_writes_cosigns_format(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSIGN_PASSWORD", "correct horse")
    code, out, err = _run(["generate-key-pair"], capsys)
    assert (code, out) == (0, "")
    assert err == "Private key written to cosign.key\nPublic key written to cosign.pub\n"
    private, public = tmp_path / "cosign.key", tmp_path / "cosign.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    data = private.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert data.endswith(b"\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert all(len(line) <= 64 for line in data.splitlines())
    document = cosign_format.read_document(data)
    assert list(document) == ["kdf", "cipher", "ciphertext"]
    assert document["kdf"]["name"] == "scrypt"
    assert document["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert document["cipher"]["name"] == "nacl/secretbox"
    import base64

    assert len(base64.b64decode(document["kdf"]["salt"])) == 32
    assert len(base64.b64decode(document["cipher"]["nonce"])) == 24
    # The independent reader finds a PKCS#8 P-256 key whose public half is cosign.pub.
    key = serialization.load_der_private_key(
        cosign_format.read_key_file(data, b"correct horse"), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert public.read_text() == _pub(key)


def test_output_key_prefix(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    prefix = tmp_path / "release-2026"
    code, _, err = _run(["generate-key-pair", "--output-key-prefix", str(prefix)], capsys)
    assert code == 0
    assert f"Private key written to {prefix}.key" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release-2026.key", "release-2026.pub"]


def test_a_key_written_independently_signs_and_shows_its_public_key(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "vendor.key"
    path.write_bytes(cosign_format.write_key_file(_pkcs8(key), b"s3cret"))
    monkeypatch.setenv("COSIGN_PASSWORD", "s3cret")
    assert _run(["public-key", "--key", str(path)], capsys) == (0, _pub(key), "")

    from keyless.client.keys import load_signer

    signer = load_signer(str(path), password=lambda: b"s3cret")
    signature = signer.sign(b"payload")
    key.public_key().verify(signature, b"payload", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("n", [32768, 65536, 131072])
def test_every_scrypt_strength_cosign_reads(tmp_path: Path, n: int) -> None:
    from keyless.client.keys import load_signer

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.key"
    path.write_bytes(cosign_format.write_key_file(_pkcs8(key), b"pw", n=n))
    signer = load_signer(str(path), password=lambda: b"pw")
    assert signer.public_key.public_numbers() == key.public_key().public_numbers()


def test_legacy_cosign_pem_type_is_read(tmp_path: Path) -> None:
    from keyless.client.keys import load_signer

    key = rsa.generate_private_key(65537, 2048)
    path = tmp_path / "old.key"
    path.write_bytes(
        cosign_format.write_key_file(_pkcs8(key), b"", pem_type="ENCRYPTED COSIGN PRIVATE KEY")
    )
    signer = load_signer(str(path), password=lambda: b"")
    assert signer.public_key.public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize(
    "name", ["encrypted-cosign-pem-type.key", "encrypted-sigstore-pem-type.key"]
)
def test_cosigns_own_key_files(name: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "hello")
    code, out, err = _run(["public-key", "--key", str(COSIGN / name)], capsys)
    assert (code, err) == (0, "")
    public = serialization.load_pem_public_key(out.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"


def test_cosigns_sec1_plaintext_is_refused_as_cosign_refuses_it(monkeypatch, capsys) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "hello")
    path = COSIGN / "encrypted-cosign-pem-type-sec1-plaintext.key"
    assert _run(["public-key", "--key", str(path)], capsys) == (
        1,
        "",
        f"error: {path}: the decrypted key is not a PKCS#8 private key\n",
    )


@functools.cache
def _good() -> tuple[bytes, dict]:
    """One valid key file (password `pw`) and the JSON inside it, made once."""
    data = cosign_format.write_key_file(_KEY, b"pw")
    return data, cosign_format.read_document(data)


_KEY = _pkcs8(ec.generate_private_key(ec.SECP256R1()))
_WRONG = "cannot decrypt {path}: wrong password, or the file was altered"
_SCRYPT = (
    "{path}: unsupported scrypt parameters (%s); cosign reads N=32768, 65536 or 131072 with "
    "r=8, p=1"
)


def _rewrap(document: dict) -> bytes:
    return cosign_format.pem("ENCRYPTED SIGSTORE PRIVATE KEY", json.dumps(document).encode())


def _edited(**fields: object) -> bytes:
    return _rewrap({**_good()[1], **fields})


# Key files that must be refused (made on demand), each with the line it must give; `{path}`
# is the file, and a trailing "..." stands for the JSON parser's own words.
BAD_KEY_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "wrong-password": (lambda: cosign_format.write_key_file(_KEY, b"other"), _WRONG),
    "tampered-ciphertext": (
        lambda: _edited(ciphertext=_good()[1]["ciphertext"][:-8] + "AAAAAAA="),
        _WRONG,
    ),
    "truncated": (
        lambda: b"".join(_good()[0].splitlines(keepends=True)[:4]),
        "{path} is not a PEM key (no complete -----BEGIN ...----- block; truncated?)",
    ),
    "truncated-json": (
        lambda: cosign_format.pem(
            "ENCRYPTED SIGSTORE PRIVATE KEY", json.dumps(_good()[1]).encode()[:-40]
        ),
        "{path} is malformed: its encrypted key is not valid JSON: Unterminated string...",
    ),
    "scrypt-n-1024": (
        lambda: cosign_format.write_key_file(_KEY, b"pw", n=1024),
        _SCRYPT % "N=1024, r=8, p=1",
    ),
    "scrypt-n-2-20": (
        lambda: cosign_format.write_key_file(_KEY, b"pw", n=2**20),
        _SCRYPT % "N=1048576, r=8, p=1",
    ),
    "scrypt-r-16": (
        lambda: cosign_format.write_key_file(_KEY, b"pw", r=16),
        _SCRYPT % "N=65536, r=16, p=1",
    ),
    "scrypt-p-2": (
        lambda: cosign_format.write_key_file(_KEY, b"pw", p=2),
        _SCRYPT % "N=65536, r=8, p=2",
    ),
    "scrypt-n-string": (
        lambda: _edited(kdf={**_good()[1]["kdf"], "params": {"N": "65536", "r": 8, "p": 1}}),
        _SCRYPT % "N=65536, r=8, p=1",
    ),
    "short-nonce": (
        lambda: _edited(cipher={"name": "nacl/secretbox", "nonce": "AAAA"}),
        "{path}: the secretbox nonce has 3 bytes, not 24",
    ),
    "other-cipher": (
        lambda: _edited(cipher={**_good()[1]["cipher"], "name": "aes-gcm"}),
        "{path}: unknown cipher 'aes-gcm' (cosign uses nacl/secretbox)",
    ),
    "other-kdf": (
        lambda: _edited(kdf={**_good()[1]["kdf"], "name": "pbkdf2"}),
        "{path}: unknown key derivation 'pbkdf2' (cosign uses scrypt)",
    ),
    "duplicate-field": (
        lambda: cosign_format.pem(
            "ENCRYPTED SIGSTORE PRIVATE KEY",
            json.dumps(_good()[1])[:-1].encode() + b',"ciphertext":"AAAA"}',
        ),
        "{path} is malformed: its encrypted key has a duplicate field 'ciphertext'",
    ),
    "unencrypted-key": (
        lambda: cosign_format.pem("PRIVATE KEY", _KEY),
        "{path} is a PRIVATE KEY PEM, not a cosign encrypted private key",
    ),
    "public-key": (
        lambda: cosign_format.pem("PUBLIC KEY", b"\x30\x00"),
        "{path} holds a public key; signing needs the private key (cosign.key)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_KEY_FILES))
def test_bad_key_files(case: str, tmp_path: Path, monkeypatch, capsys) -> None:
    make, message = BAD_KEY_FILES[case]
    path = tmp_path / "bad.key"
    path.write_bytes(make())
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    code, out, err = _run(["public-key", "--key", str(path)], capsys)
    assert (code, out) == (1, "")
    expected = "error: " + message.format(path=path)
    if expected.endswith("..."):  # the JSON parser's own words end the line
        assert err.startswith(expected.removesuffix("..."))
        assert err.count("\n") == 1
    else:
        assert err.splitlines()[0] == expected


def test_cosign_password_set_but_empty_wins_over_stdin(tmp_path: Path, monkeypatch, capsys) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.key"
    path.write_bytes(cosign_format.write_key_file(_pkcs8(key), b""))
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    monkeypatch.setattr(sys, "stdin", _Stdin(b"not the password"))
    assert _run(["public-key", "--key", str(path)], capsys)[0] == 0


def test_password_from_standard_input_is_taken_as_is(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", _Stdin(b"piped\n"))
    assert _run(["generate-key-pair"], capsys)[0] == 0
    # Like cosign (io.ReadAll), the newline is part of the password.
    data = (tmp_path / "cosign.key").read_bytes()
    cosign_format.read_key_file(data, b"piped\n")
    monkeypatch.setattr(sys, "stdin", _Stdin(b"piped"))
    code, _, err = _run(["public-key", "--key", "cosign.key"], capsys)
    assert code == 1
    assert err.startswith("error: cannot decrypt cosign.key: wrong password")


def test_existing_files_are_not_overwritten_without_yes(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    (tmp_path / "cosign.pub").write_text("kept")
    assert _run(["generate-key-pair"], capsys) == (
        1,
        "",
        "error: cosign.pub already exists; pass --yes to overwrite it\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosign.pub"]
    assert (tmp_path / "cosign.pub").read_text() == "kept"
    assert _run(["generate-key-pair", "--yes"], capsys)[0] == 0
    assert (tmp_path / "cosign.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def _on_terminal(argv: list[str], answers: list[bytes], cwd: Path) -> tuple[int, str]:
    """Run keyless with a pseudo-terminal as its standard input and controlling terminal,
    typing each answer once the previous prompt has appeared; returns the exit code and all
    that the terminal showed."""
    import pty
    import select

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "COSIGN_PASSWORD"}
    process = subprocess.Popen(
        [*KEYLESS, *argv],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: __import__("fcntl").ioctl(0, __import__("termios").TIOCSCTTY, 0),
    )
    os.close(follower)
    shown = since = b""  # `since`: what appeared after the last answer was typed
    pending = list(answers)
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            process.kill()
            raise AssertionError(f"no output; so far {shown!r}")
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
        since += chunk
        if pending and (since.endswith(b": ") or since.endswith(b"[y/N] ")):
            os.write(leader, pending.pop(0) + b"\n")
            since = b""
    os.close(leader)
    return process.wait(timeout=60), shown.decode(errors="replace")


def test_prompts_for_the_password_twice_on_a_terminal(tmp_path: Path) -> None:
    code, shown = _on_terminal(["generate-key-pair"], [b"typed", b"typed"], tmp_path)
    assert code == 0, shown
    assert "Enter password for private key: " in shown
    assert "Enter password for private key again: " in shown
    assert "typed" not in shown  # not echoed
    cosign_format.read_key_file((tmp_path / "cosign.key").read_bytes(), b"typed")


def test_mismatched_passwords_write_nothing(tmp_path: Path) -> None:
    code, shown = _on_terminal(["generate-key-pair"], [b"one", b"two"], tmp_path)
    assert code == 1
    assert "error: passwords do not match" in shown
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("answer", "replaced"), [(b"n", False), (b"y", True)])
def test_asks_before_overwriting_on_a_terminal(
    tmp_path: Path, answer: bytes, replaced: bool
) -> None:
    (tmp_path / "cosign.key").write_text("old")
    code, shown = _on_terminal(["generate-key-pair"], [answer, b"pw", b"pw"], tmp_path)
    assert "File cosign.key already exists. Overwrite? [y/N]" in shown
    assert code == (0 if replaced else 1), shown
    assert ((tmp_path / "cosign.key").read_text() != "old") is replaced


# The importable keys of cosign's own tests, and the refusals cosign's tests expect.
IMPORTS_OK = [
    ("import-rsa-2048-pkcs1.pem", rsa.RSAPrivateKey),
    ("import-rsa-2048-pkcs8.pem", rsa.RSAPrivateKey),
    ("import-ec-p256-sec1.pem", ec.EllipticCurvePrivateKey),
    ("import-ec-p384-sec1.pem", ec.EllipticCurvePrivateKey),
    ("import-ec-p256-pkcs8.pem", ec.EllipticCurvePrivateKey),
]


@pytest.mark.parametrize(("name", "kind"), IMPORTS_OK)
def test_import_key_pair(name: str, kind: type, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSIGN_PASSWORD", "imported")
    source = COSIGN / name
    code, _, err = _run(["import-key-pair", "--key", str(source)], capsys)
    assert code == 0, err
    assert (
        err == "Private key written to import-cosign.key\nPublic key written to import-cosign.pub\n"
    )
    original = serialization.load_pem_private_key(source.read_bytes(), None)
    data = (tmp_path / "import-cosign.key").read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    inside = serialization.load_der_private_key(
        cosign_format.read_key_file(data, b"imported"), None
    )
    assert isinstance(inside, kind)
    assert inside.private_numbers() == original.private_numbers()
    assert (tmp_path / "import-cosign.pub").read_text() == _pub(original)
    assert stat.S_IMODE((tmp_path / "import-cosign.key").stat().st_mode) == 0o600


def test_imported_ed25519_key_is_kept(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    prefix = tmp_path / "ed"
    argv = ["import-key-pair", "--key", str(COSIGN / "import-ed25519-pkcs8.pem"), "-o", str(prefix)]
    assert _run(argv, capsys)[0] == 0
    # cosign imports Ed25519 keys; signing with one is refused here (one line, nothing signed).
    code, _, err = _run(["public-key", "--key", f"{prefix}.key"], capsys)
    assert (code, err) == (
        1,
        f"error: {prefix}.key is an Ed25519 key, which cannot sign here yet; ECDSA P-256 and "
        "RSA keys can\n",
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "import-rsa-1024-pkcs1.pem",
            "{path} is an RSA-1024 key; RSA keys of 2048 to 4096 bits are supported",
        ),
        (
            "import-rsa-5120-pkcs1.pem",
            "{path} is an RSA-5120 key; RSA keys of 2048 to 4096 bits are supported",
        ),
        (
            "import-ec-p224-sec1.pem",
            "{path} is an ECDSA key on secp224r1; the curves supported are P-256, P-384 and P-521",
        ),
        (
            "import-ec-secp256k1-sec1.pem",
            "{path} is an ECDSA key on secp256k1; the curves supported are P-256, P-384 and P-521",
        ),
        (
            "import-rsa-public-key.pem",
            "{path}: unsupported private key (PEM type PUBLIC KEY); give an unencrypted RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY",
        ),
        (
            "encrypted-sigstore-pem-type.key",
            "{path}: unsupported private key (PEM type ENCRYPTED SIGSTORE PRIVATE KEY); give an unencrypted RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY",
        ),
    ],
    ids=["rsa-1024", "rsa-5120", "p-224", "secp256k1", "public-key", "already-encrypted"],
)
def test_import_refusals(name: str, message: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSIGN_PASSWORD", "x")
    path = COSIGN / name
    assert _run(["import-key-pair", "--key", str(path)], capsys) == (
        1,
        "",
        "error: " + message.format(path=path) + "\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_import_refuses_a_label_that_lies(tmp_path: Path, monkeypatch, capsys) -> None:
    key = _pkcs8(ec.generate_private_key(ec.SECP256R1()))
    path = tmp_path / "lies.pem"
    path.write_bytes(cosign_format.pem("EC PRIVATE KEY", key))  # PKCS#8 labelled SEC1
    monkeypatch.setenv("COSIGN_PASSWORD", "x")
    code, _, err = _run(["import-key-pair", "--key", str(path), "-o", str(tmp_path / "o")], capsys)
    assert (code, err) == (
        1,
        f"error: {path}: the EC PRIVATE KEY block holds another kind of key\n",
    )


def test_public_key_from_env_and_to_a_file(tmp_path: Path, monkeypatch, capsys) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setenv("VENDOR_KEY", cosign_format.write_key_file(_pkcs8(key), b"pw").decode())
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    out_file = tmp_path / "vendor.pub"
    code, out, err = _run(
        ["public-key", "--key", "env://VENDOR_KEY", "--outfile", str(out_file)], capsys
    )
    assert (code, out, err) == (0, "", f"Public key written to {out_file}\n")
    assert out_file.read_text() == _pub(key)


def test_generate_refuses_kms_other_than_aws(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    kms = "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"
    code, _, err = _run(["generate-key-pair", "--kms", kms], capsys)
    assert code == 2
    assert err.endswith(
        "error: --kms takes an awskms:// key reference (keys in other KMS are not supported yet)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_refusal_in_a_subprocess_is_one_line(tmp_path: Path) -> None:
    # `python -m keyless.cli.main` runs main.py as __main__: its errors are still one line.
    (tmp_path / "cosign.key").write_text("old")
    done = subprocess.run(
        [*KEYLESS, "generate-key-pair"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (
        1,
        "error: cosign.key already exists; pass --yes to overwrite it\n",
    )
