"""The TSA's certificate chain: the rules it must meet, a development chain, PEM in and out.

The rules are those Sigstore's timestamp-authority (`pkg/x509.VerifyCertChain`) and RFC 3161
§2.3 set: at least a leaf and a root; the leaf is not a CA and carries exactly one extended key
usage, id-kp-timeStamping, in a critical extension; every other certificate is a CA; each one
is signed by the next; the leaf's key is the signing key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.core.errors import Reason
from keyless.tsa.errors import TSAError

MAX_CHAIN_BYTES = 64 * 1024
MAX_CHAIN_CERTIFICATES = 8
DEV_VALIDITY = timedelta(days=3650)
_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----"
)


class TSAChainError(TSAError):
    """The TSA chain breaks a rule; the message says which."""

    reason = Reason.TSA_CHAIN_INVALID
    hint = "a TSA chain is the timeStamping leaf first, then intermediates, the root last"


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def check_tsa_chain(chain: Sequence[x509.Certificate], key: ec.EllipticCurvePublicKey) -> None:
    """Check `chain` (leaf first, root last) against the TSA rules and the signing key's
    public half.

    Raises:
        TSAChainError: a rule is broken (the first one found).
    """
    problems = tsa_chain_problems(chain, key=key)
    if problems:
        raise TSAChainError(problems[0])


def tsa_chain_problems(
    chain: Sequence[x509.Certificate],
    *,
    key: ec.EllipticCurvePublicKey | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Every TSA rule `chain` (leaf first, root last) breaks, one line each: for a start-up
    that names them all. `key`: the signing key's public half, which the leaf must certify
    (None for a retired chain, whose key is gone); `now`: every certificate must be valid then.
    """
    if not 2 <= len(chain) <= MAX_CHAIN_CERTIFICATES:
        return [
            f"TSA chain has {len(chain)} certificates; it needs a leaf and a root (at most "
            f"{MAX_CHAIN_CERTIFICATES})"
        ]
    problems = []
    leaf = chain[0]
    constraints = _basic_constraints(leaf)
    if constraints is not None and constraints.ca:
        problems.append("the TSA leaf certificate is a CA (RFC 3161 §2.3 forbids it)")
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        problems.append("the TSA leaf has no extended key usage")
    else:
        if not eku.critical:
            problems.append("the TSA leaf's extended key usage extension is not critical")
        if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
            problems.append("the TSA leaf's only extended key usage must be timeStamping")
    if key is not None and _spki(leaf.public_key()) != _spki(key):
        problems.append("the TSA leaf certificate is not for the TSA signing key")
    for position, issuer in enumerate(chain[1:], start=1):
        constraints = _basic_constraints(issuer)
        if constraints is None or not constraints.ca:
            problems.append(f"TSA chain certificate #{position} is not a CA")
        try:
            chain[position - 1].verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            problems.append(f"TSA chain certificate #{position - 1} is not issued by #{position}")
    try:
        chain[-1].verify_directly_issued_by(chain[-1])
    except (ValueError, TypeError, InvalidSignature):
        problems.append("the last TSA chain certificate is not a self-signed root")
    if now is not None:
        for position, cert in enumerate(chain):
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                problems.append(
                    f"TSA chain certificate #{position} is not valid now (valid "
                    f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
                    f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ})"
                )
    return problems


def _spki(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def dev_tsa_chain(
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey,
    *,
    now: datetime,
    name: str = "keyless",
) -> list[x509.Certificate]:
    """A chain for `key` (or its public half, for a key in a token): a timeStamping leaf under
    a fresh self-signed root (dev mode, and `keyless ca tsa-init` for production).

    The root's key is discarded once the leaf is signed: nothing else is ever issued under it.
    """
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    root_key = ec.generate_private_key(ec.SECP256R1())
    start = now - timedelta(minutes=5)
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} TSA root"),
        ]
    )
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + DEV_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{name} TSA"),
                ]
            )
        )
        .issuer_name(root_name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + DEV_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return [leaf, root]


def pem_chain(chain: Sequence[x509.Certificate]) -> bytes:
    """The chain as concatenated PEM, in order (leaf first)."""
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    """Certificates from concatenated PEM, in order.

    Raises:
        TSAChainError: oversized, no certificate, or a block that does not parse.
    """
    if len(data) > MAX_CHAIN_BYTES:
        raise TSAChainError(f"TSA chain file is larger than {MAX_CHAIN_BYTES} bytes")
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise TSAChainError("TSA chain file holds no PEM certificate")
    try:
        return [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError as exc:
        raise TSAChainError(f"TSA chain file holds a bad certificate: {exc}") from exc
