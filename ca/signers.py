"""CA key backends: who holds the issuing key, and the chain it issues under.

`CASigner` is the seam (PKCS#11 and KMS backends can follow); `KeySigner` holds an in-process
key. Two ways to get one: `load_generated_signer` (dev: a root and an intermediate created once
in a directory, then reused) and `load_file_signer` (a PEM chain and an encrypted PKCS#8 key).
Every signer's chain is checked against Fulcio's CA rules (fulcio.md §4.4) before use.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.ca.errors import CAConfigError
from keyless.core.keys import CURVE_HASHES, hash_algorithm

CAKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
# CA keys clients accept (rekor-bundle.md §5.5: no Ed25519 CA), with the hash each signs with:
# its curve's (core.keys.CURVE_HASHES).
CA_CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    curve: type(hash_algorithm(name)) for curve, name in CURVE_HASHES.items()
}
CA_RSA_BITS = frozenset({2048, 3072, 4096})
MAX_CHAIN_BYTES = 1024 * 1024
MAX_KEY_FILE_BYTES = 64 * 1024
GENERATED_CHAIN_FILE = "ca-chain.pem"
GENERATED_KEY_FILE = "ca-key.pem"
GENERATED_LIFETIME = timedelta(days=3650)


class CASigner(Protocol):
    """Signs leaf certificates with the CA key; `chain` is the issuing CA first, root last."""

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The CA chain served to clients and appended to every issued leaf."""
        ...

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """The certificate `builder` describes, signed by the issuing CA's key."""
        ...


class KeySigner:
    """A CA key held in this process, with its checked chain."""

    def __init__(self, key: CAKey, chain: Sequence[x509.Certificate], *, now: datetime) -> None:
        self._hash = _ca_hash(key)
        check_chain(chain, public_key=key.public_key(), now=now)
        self._key = key
        self._chain = tuple(chain)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._key, self._hash)


def check_chain(chain: Sequence[x509.Certificate], *, public_key: object, now: datetime) -> None:
    """Check a CA chain (issuing CA first, root last) against Fulcio's CA rules.

    Raises:
        CAConfigError: every rule the chain breaks, one line each.
    """
    problems: list[str] = []
    if not chain:
        raise CAConfigError("the CA chain", ["the chain is empty"])
    issuing = chain[0]
    if issuing.public_key() != public_key:
        problems.append("the CA key does not match the first certificate of the chain")
    for position, cert in enumerate(chain):
        name = f"certificate {position} ({cert.subject.rfc4514_string() or 'empty subject'})"
        problems += _check_ca_certificate(cert, name, now=now)
        parent = chain[position + 1] if position + 1 < len(chain) else cert
        try:
            cert.verify_directly_issued_by(parent)
        except (InvalidSignature, ValueError, TypeError) as exc:
            what = "is not self-signed" if parent is cert else f"is not issued by {position + 1}"
            problems.append(f"{name} {what} ({type(exc).__name__})")
        if parent is not cert and not (
            parent.not_valid_before_utc <= cert.not_valid_before_utc
            and cert.not_valid_after_utc <= parent.not_valid_after_utc
        ):
            problems.append(f"{name} outlives or predates its issuer")
    if len(chain) > 1 and not _has_code_signing(issuing):
        problems.append("the issuing CA certificate must carry EKU codeSigning (EKU chaining)")
    if problems:
        raise CAConfigError(
            "the CA chain", problems, hint="see the CA certificate rules in fulcio.md §4.4"
        )


def _check_ca_certificate(cert: x509.Certificate, name: str, *, now: datetime) -> list[str]:
    problems = []
    extensions = cert.extensions
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints)
        if not constraints.value.ca or not constraints.critical:
            problems.append(f"{name} needs a critical BasicConstraints CA:TRUE")
    except x509.ExtensionNotFound:
        problems.append(f"{name} has no BasicConstraints (CA:TRUE is required)")
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            problems.append(f"{name} lacks KeyUsage keyCertSign")
    except x509.ExtensionNotFound:
        problems.append(f"{name} has no KeyUsage")
    try:
        extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        problems.append(f"{name} has no SubjectKeyIdentifier")
    try:
        eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            problems.append(f"{name} has an EKU without codeSigning")
    except x509.ExtensionNotFound:
        pass
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        problems.append(
            f"{name} is not valid now ({cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d})"
        )
    try:
        _ca_hash(cert.public_key())
    except CAConfigError as exc:
        problems.append(f"{name}: {exc.problems[0]}")
    return problems


def _has_code_signing(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CODE_SIGNING in eku


def _ca_hash(key: object) -> hashes.HashAlgorithm:
    """The hash a CA key signs with; refuses keys clients would not accept for a CA."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name in CA_CURVE_HASHES:
            return CA_CURVE_HASHES[key.curve.name]()
        problem = f"CA curve {key.curve.name} is not allowed (P-256, P-384, P-521)"
    elif isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size in CA_RSA_BITS:
            return hashes.SHA256()
        problem = f"CA RSA-{key.key_size} key is not allowed (2048, 3072, 4096)"
    else:
        problem = f"{type(key).__name__.lstrip('_')} CA keys are not allowed (ECDSA or RSA)"
    raise CAConfigError("the CA key", [problem])


def load_file_signer(
    *, chain_path: Path, key_path: Path, password: bytes, now: datetime
) -> KeySigner:
    """The CA from a PEM chain (issuing CA first, root last) and an encrypted PKCS#8 key.

    Raises:
        CAConfigError: a file is unreadable or invalid, the key is not encrypted, the password
            is wrong, or the chain breaks the CA rules.
    """
    chain_pem = _read(chain_path, MAX_CHAIN_BYTES)
    key_pem = _read(key_path, MAX_KEY_FILE_BYTES)
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise CAConfigError(str(chain_path), [f"not a PEM certificate chain: {exc}"]) from exc
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in key_pem:
        raise CAConfigError(
            str(key_path),
            ["the CA key must be an encrypted PKCS#8 PEM (ENCRYPTED PRIVATE KEY)"],
            hint="openssl pkcs8 -topk8 -v2 aes-256-cbc -in key.pem -out key.enc.pem",
        )
    try:
        key = serialization.load_pem_private_key(key_pem, password=password)
    except (ValueError, TypeError) as exc:
        raise CAConfigError(
            str(key_path), ["cannot decrypt the CA key: wrong password or corrupt file"]
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CAConfigError(str(key_path), ["the CA key must be ECDSA or RSA"])
    return KeySigner(key, chain, now=now)


def load_generated_signer(directory: Path, *, now: datetime) -> KeySigner:
    """The development CA kept in `directory`: created on first use (key 0600), then reused.

    Only the intermediate's key is kept; the root key is discarded once it has signed.
    A lock file serialises creation between worker processes starting together.

    Raises:
        CAConfigError: the stored files are unreadable or invalid.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    chain_path = directory / GENERATED_CHAIN_FILE
    key_path = directory / GENERATED_KEY_FILE
    with _locked(directory / ".ca.lock"):
        # Only when neither exists: a lost key or chain must not become a new CA root.
        if not chain_path.exists() and not key_path.exists():
            key, chain = generate_ca(now=now)
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
            write_atomic(key_path, key_pem, mode=0o600)
            write_atomic(chain_path, chain_pem, mode=0o644)
    try:
        key = serialization.load_pem_private_key(_read(key_path, MAX_KEY_FILE_BYTES), password=None)
        chain = x509.load_pem_x509_certificates(_read(chain_path, MAX_CHAIN_BYTES))
    except (ValueError, TypeError) as exc:
        raise CAConfigError(str(directory), [f"the generated CA files are corrupt: {exc}"]) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CAConfigError(str(key_path), ["the generated CA key must be ECDSA"])
    return KeySigner(key, chain, now=now)


def generate_ca(
    *, now: datetime, name: str = "keyless-dev"
) -> tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]:
    """A fresh root (P-384) and intermediate (EKU codeSigning, pathlen 0): (key, [inter, root]).

    The intermediate signs every leaf, so it is P-256, the fastest curve clients accept.
    """
    start = now.replace(microsecond=0) - timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = root_builder(root_key.public_key(), name=name, start=start).sign(
        root_key, hashes.SHA384()
    )
    key = ec.generate_private_key(ec.SECP256R1())
    inter = intermediate_builder(key.public_key(), name=name, root=root, start=start)
    return key, [inter.sign(root_key, hashes.SHA384()), root]


def root_builder(
    public_key: ec.EllipticCurvePublicKey,
    *,
    name: str,
    start: datetime,
    lifetime: timedelta = GENERATED_LIFETIME,
) -> x509.CertificateBuilder:
    """A self-issued root CA (pathlen 1), to be signed by its own key."""
    subject = ca_name(name, "root")
    return _ca_builder(subject, subject, public_key, start, 1, lifetime).add_extension(
        x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
    )


def intermediate_builder(
    public_key: ec.EllipticCurvePublicKey,
    *,
    name: str,
    root: x509.Certificate,
    start: datetime,
    lifetime: timedelta = GENERATED_LIFETIME,
) -> x509.CertificateBuilder:
    """The issuing CA under `root` (EKU codeSigning, pathlen 0), to be signed by the root key."""
    return (
        _ca_builder(ca_name(name, "intermediate"), root.subject, public_key, start, 0, lifetime)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.public_key()),
            critical=False,
        )
    )


def ca_name(organisation: str, role: str) -> x509.Name:
    """`O=<organisation>, CN=<organisation>-<role>`."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation}-{role}"),
        ]
    )


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    start: datetime,
    path_length: int,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise CAConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    if len(data) > limit:
        raise CAConfigError(str(path), [f"the file is larger than {limit} bytes"])
    return data


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` durably and atomically, with `mode` from the start (no readable window)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
