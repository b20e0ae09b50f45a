"""Benchmark: signing and verifying files with a long-lived key, against the crypto bound.

Prints, in one run:
- the crypto bound: OpenSSL's P-256 sign and verify (through cryptography), CPU per operation;
- signatures per second through each `KeySigner`: a cosign key file, a SoftHSM2 token
  (`pkcs11:`) and moto's KMS in server mode over loopback HTTPS (`awskms://`; a 512-byte
  message sent RAW, as DSSE envelopes are, since moto signs DIGEST messages wrongly), where
  those are installed;
- in process, CPU per operation against its crypto bound, the two measured in alternating
  slices so that other load on the machine weighs on both alike: a file key's signature; a
  managed-key bundle signed with no log (`--no-tlog-upload`: signature + bundle JSON) against
  one sign; a managed-key bundle verified (sigstore-conformance's managed-key-and-trusted-root:
  a hashedrekord bundle with SET and checkpoint; JSON parse + verification) against three
  P-256 verifications (artifact signature, SET, checkpoint);
- the scrypt cost of opening a cosign key file (N=65536, r=8, p=1), paid once per command;
- whole processes, best of `--runs`: `keyless sign --key --no-tlog-upload FILE` and
  `keyless verify --key --insecure-ignore-tlog` on its bundle, with the share scrypt takes;
  then, against a dev-mode `keyless serve` on loopback, `keyless sign --key` against keyless
  signing (`--identity-token`) of the same file, both logged.

Run: `python bench/keys.py [--seconds 2] [--runs 5]`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

# Run as a script from anywhere: the repository root must be importable, and this folder
# (sys.path[0]), whose modules would shadow packages of the same name, must not be.
REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
sys.path.insert(0, str(REPO))

from bench._load import HOST, free_port  # noqa: E402

KEYLESS = [sys.executable, "-m", "keyless.cli.main"]
CASE = (
    REPO / "tests/data/sigstore-conformance/test/assets/bundle-verify/managed-key-and-trusted-root"
)
SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
PASSWORD = "bench-password"
AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_TLS_INSECURE_SKIP_VERIFY": "1",
}
_TOKEN_SETUP = """
import sys
import pkcs11
from pkcs11 import Attribute, KeyType
from pkcs11.util.ec import encode_named_curve_parameters

token = pkcs11.lib(sys.argv[1]).get_token(token_label="bench")
with token.open(user_pin="1234", rw=True) as session:
    parameters = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
    )
    private = {Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True, Attribute.SIGN: True}
    parameters.generate_keypair(store=True, label="release", private_template=private)
"""


def _rate(work: Callable[[], object], seconds: float) -> float:
    """Calls per second of `work` over about `seconds` (after one untimed call)."""
    work()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        work()
        count += 1
    return count / elapsed


def _paired(
    ours: Callable[[], object], bound: Callable[[], object], seconds: float
) -> tuple[float, float]:
    """CPU seconds per call of `ours` and of `bound`, measured in alternating slices."""
    ours()
    bound()
    spent, done = [0.0, 0.0], [0, 0]
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        for index, work in enumerate((ours, bound)):
            start = time.process_time()
            for _ in range(20):
                work()
            spent[index] += time.process_time() - start
            done[index] += 20
    return spent[0] / done[0], spent[1] / done[1]


def _line(label: str, ours: float, bound: float) -> None:
    print(
        f"  {label:<38} {ours * 1e6:7.0f} us  (bound {bound * 1e6:.0f} us: "
        f"{bound / ours:.0%} of the bound's rate)"
    )


def _best(argv: list[str], runs: int, env: dict[str, str]) -> float:
    """The best wall time of `runs` runs of a command that must succeed."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv[3:5])} failed: {done.stderr.strip()}")
    return min(times)


def _bound_sign() -> Callable[[], object]:
    """One P-256 signature over a SHA-256 digest, as a hashedrekord signs."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(b"artifact").digest()
    algorithm = ec.ECDSA(Prehashed(hashes.SHA256()))
    return lambda: key.sign(digest, algorithm)


def _bound_verify(times: int) -> Callable[[], object]:
    """`times` P-256 verifications of a signature over 256 bytes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    message = b"x" * 256
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()

    def verify() -> None:
        for _ in range(times):
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))

    return verify


@contextmanager
def softhsm_token(workdir: Path) -> Iterator[str | None]:
    """A SoftHSM2 token with a P-256 key pair; its `pkcs11:` URI, or None without SoftHSM2."""
    if shutil.which("softhsm2-util") is None or not SOFTHSM.exists():
        yield None
        return
    (workdir / "tokens").mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {workdir / 'tokens'}\nobjectstore.backend = file\n")
    # The module reads its configuration once per process: set before keyless loads it.
    os.environ["SOFTHSM2_CONF"] = str(conf)
    init = ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", "1234"]
    subprocess.run([*init, "--so-pin", "5678"], check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", _TOKEN_SETUP, str(SOFTHSM)], check=True)
    yield f"pkcs11:token=bench;object=release?module-path={SOFTHSM}&pin-value=1234"


@contextmanager
def moto_key() -> Iterator[str | None]:
    """moto's KMS on loopback HTTPS with a P-256 signing key; its `awskms://` reference, or
    None without moto's server and boto3."""
    binary = shutil.which("moto_server")
    try:
        import boto3
    except ImportError:
        binary = None
    if binary is None:
        yield None
        return
    import warnings

    os.environ.update(AWS)
    # moto's generated certificate: each request would warn (AWS_TLS_INSECURE_SKIP_VERIFY).
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-H", HOST, "-p", str(port), "-s"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = boto3.client(
            "kms", endpoint_url=f"https://{HOST}:{port}", verify=False, region_name="us-east-1"
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                made = client.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        client.create_alias(AliasName="alias/bench", TargetKeyId=made["KeyMetadata"]["KeyId"])
        yield f"awskms://{HOST}:{port}/alias/bench"
    finally:
        process.terminate()
        process.wait(timeout=15)


def signer_rates(references: dict[str, str | None], seconds: float) -> None:
    from keyless.client.keys import load_signer

    digest = hashlib.sha256(b"artifact").digest()
    message = b"m" * 512
    for label, reference in references.items():
        if reference is None:
            print(f"  {label:<38} (not installed)")
            continue
        signer = load_signer(reference, password=lambda: PASSWORD.encode())
        if reference.startswith("awskms://"):
            rate = _rate(lambda signer=signer: signer.sign(message), seconds)
        else:
            rate = _rate(lambda signer=signer: signer.sign_digest(digest), seconds)
        print(f"  {label:<38} {rate:9.0f} signatures/s")


def file_key_signing(key_file: Path, seconds: float) -> None:
    """CPU per signature and per unlogged managed-key bundle, against one P-256 sign."""
    from keyless.client.keys import load_signer
    from keyless.client.sign.keys import KeyBundleSigner

    key = load_signer(str(key_file), password=lambda: PASSWORD.encode())
    digest = hashlib.sha256(b"artifact").digest()
    _line(
        "signature (LocalKeySigner)",
        *_paired(lambda: key.sign_digest(digest), _bound_sign(), seconds),
    )
    signer = KeyBundleSigner(key, log=None)
    _line(
        "bundle signed, no log",
        *_paired(lambda: signer.sign_digest(digest).to_json(), _bound_sign(), seconds),
    )


def key_verification(seconds: float) -> None:
    """CPU per managed-key bundle verified, against three P-256 verifications."""
    from cryptography.hazmat.primitives import serialization

    from keyless.client.bundle import Bundle
    from keyless.client.trust import load_trusted_root
    from keyless.client.verify import Verifier

    data = (CASE / "bundle.sigstore.json").read_bytes()
    public = serialization.load_pem_public_key((CASE / "key.pub").read_bytes())
    verifier = Verifier(load_trusted_root(CASE / "trusted_root.json"))
    digest = Bundle.from_json(data).message_digest
    if digest is None:
        raise SystemExit("the managed-key case is expected to be a message signature")
    now = datetime.now(UTC)

    def verify() -> None:
        verifier.verify_with_key(Bundle.from_json(data), sha256=digest.digest, key=public, now=now)

    _line("bundle verified (SET + checkpoint)", *_paired(verify, _bound_verify(3), seconds))


def scrypt_cost(key_file: Path, runs: int) -> float:
    """Seconds to open the cosign key file (scrypt + secretbox + PKCS#8), best of `runs`."""
    from keyless.client.keys.encrypted import decrypt_private_key

    data = key_file.read_bytes()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        decrypt_private_key(data, PASSWORD.encode(), source=str(key_file))
        times.append(time.perf_counter() - start)
    return min(times)


@contextmanager
def dev_server(state: Path) -> Iterator[str]:
    """`keyless serve` in dev mode on a loopback port; its URL."""
    import requests

    port = free_port()
    url = f"http://{HOST}:{port}"
    process = subprocess.Popen(
        [*KEYLESS, "serve", "--port", str(port), "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("keyless serve did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from keyless.client.keys.encrypted import encrypt_private_key

    with tempfile.TemporaryDirectory(prefix="keyless-bench-keys-") as scratch:
        work = Path(scratch)
        key = ec.generate_private_key(ec.SECP256R1())
        key_file = work / "cosign.key"
        key_file.write_bytes(encrypt_private_key(key, PASSWORD.encode()))
        public_file = work / "cosign.pub"
        public_file.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        artifact = work / "release.tar.gz"
        artifact.write_bytes(os.urandom(1 << 20))

        sign, verify = _paired(_bound_sign(), _bound_verify(1), args.seconds)
        print("crypto bound (OpenSSL P-256 via cryptography), CPU per operation")
        print(f"  sign {sign * 1e6:.0f} us, verify {verify * 1e6:.0f} us")

        print("signatures through each KeySigner")
        (work / "softhsm").mkdir()
        with softhsm_token(work / "softhsm") as hsm, moto_key() as kms:
            signer_rates(
                {
                    "file key (cosign.key)": str(key_file),
                    "SoftHSM2 token (pkcs11:)": hsm,
                    "moto KMS over HTTPS (awskms://)": kms,
                },
                args.seconds,
            )

        print("in process, CPU per operation against the crypto bound (alternating slices)")
        file_key_signing(key_file, args.seconds)
        key_verification(args.seconds)
        scrypt = scrypt_cost(key_file, args.runs)
        print(f"  opening cosign.key (scrypt N=65536)    {scrypt * 1000:7.0f} ms, once per command")

        env = {**os.environ, "COSIGN_PASSWORD": PASSWORD}
        bundle = work / "unlogged.sigstore.json"
        signing = [*KEYLESS, "sign", "--key", str(key_file), "--no-tlog-upload"]
        sign_time = _best([*signing, "--bundle", str(bundle), str(artifact)], args.runs, env)
        verifying = [*KEYLESS, "verify", "--key", str(public_file), "--insecure-ignore-tlog"]
        verify_time = _best([*verifying, "--bundle", str(bundle), str(artifact)], args.runs, env)
        print(f"whole processes, best of {args.runs}")
        print(
            f"  keyless sign --key --no-tlog-upload   {sign_time * 1000:6.0f} ms  (scrypt "
            f"{scrypt / sign_time:.0%} of it)"
        )
        print(f"  keyless verify --key (log ignored)    {verify_time * 1000:6.0f} ms")

        with dev_server(work / "state") as url:
            token = subprocess.run(
                [*KEYLESS, "dev-token", "--server", url, "--email", "alice@example.com"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            logged = [*KEYLESS, "sign", "--server", url, "--bundle", str(work / "b.json")]
            with_key = _best([*logged, "--key", str(key_file), str(artifact)], args.runs, env)
            keyless = _best([*logged, "--identity-token", token, str(artifact)], args.runs, env)
        print(f"  against keyless serve on loopback (logged), best of {args.runs}")
        print(f"    keyless sign --key                   {with_key * 1000:6.0f} ms")
        print(f"    keyless sign --identity-token        {keyless * 1000:6.0f} ms")
        print(f"    ratio key / keyless                  {with_key / keyless:6.2f}")


if __name__ == "__main__":
    main()
