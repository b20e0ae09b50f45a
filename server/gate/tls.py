"""TLS material for the gate: given files, or a self-signed certificate for trying it out.

The API server calls webhooks over HTTPS only and checks the certificate against the webhook
configuration's `caBundle`. `self_signed` writes one P-256 certificate that is its own CA (so
the same PEM is the `caBundle`), valid for the Service names the manifests use and loopback,
and keeps it across restarts while it is valid for another day, so a printed `caBundle` stays
right.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.core.encoding import b64encode
from keyless.core.errors import Error, Reason

SERVICE = "keyless-gate"
CERT_FILE, KEY_FILE = "tls.crt", "tls.key"
VALIDITY = timedelta(days=365)


class TLSError(Error):
    """The TLS files cannot be used; one line."""

    reason = Reason.TLS_FILES_INVALID


def service_names(namespace: str) -> list[str]:
    """The names the API server uses for the gate's Service in `namespace`."""
    base = f"{SERVICE}.{namespace}"
    return [SERVICE, base, f"{base}.svc", f"{base}.svc.cluster.local"]


def self_signed(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """The certificate and key in `directory`, made now unless a usable pair is there.

    A pair is reused when it parses, its key matches, it covers `names` and it is valid for
    at least another day; otherwise a new one replaces it.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if _reusable(cert_path, key_path, names):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def ca_bundle(cert_path: Path) -> str:
    """The webhook configurations' `caBundle`: the certificate PEM, base64."""
    return b64encode(cert_path.read_bytes())


def check_pair(cert_path: Path, key_path: Path) -> None:
    """Refuse unreadable or mismatched files before the server starts.

    Raises:
        TLSError: a file is missing or unreadable, or the key is not the certificate's.
    """
    for flag, path in (("--tls-cert", cert_path), ("--tls-key", key_path)):
        try:
            path.read_bytes()
        except OSError as exc:
            raise TLSError(f"{flag} {path}: cannot read the file: {exc.strerror}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (ssl.SSLError, OSError) as exc:
        raise TLSError(
            f"--tls-cert {cert_path} and --tls-key {key_path} cannot be used together: they "
            "must be a PEM certificate chain and the PEM private key of its first certificate "
            f"({getattr(exc, 'reason', None) or exc})"
        ) from None


def _reusable(cert_path: Path, key_path: Path, names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    covered = {str(n) for n in alt.get_values_for_type(x509.DNSName)}
    covered |= {str(ip) for ip in alt.get_values_for_type(x509.IPAddress)}
    same_key = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fresh = cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=1)
    return same_key and fresh and set(names) <= covered


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write whole or not at all: a temporary file in the same directory, then a rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, mode)
    os.replace(temporary, path)
