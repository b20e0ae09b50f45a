"""Key references, as cosign's `--key` takes them: one resolver, a signer or a verifier key out.

| reference | signing | verifying |
| --- | --- | --- |
| a path | a cosign encrypted key file | a PEM `PUBLIC KEY` |
| `env://VAR` | the encrypted key PEM in $VAR | the public key PEM in $VAR |
| `https://...`, `http://...` | refused (a private key is not fetched) | the public key PEM there |
| `pkcs11:token=...;object=...?module-path=...` | the key pair in the token | its public key |
| `awskms://[ENDPOINT]/KEY` | the KMS key (`client.keys.awskms`) | its public key |

Other schemes cosign knows (`gcpkms://`, `azurekms://`,
`hashivault://`, `openbao://`, `k8s://`, `gitlab://`, `github://`) are refused with one line that
names what works. A reference that names nothing usable is a `KeyReferenceError` (a usage
error); a key URL that cannot be fetched is a `NetworkError` (could not decide).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.client.errors import NetworkError
from keyless.client.keys.algorithms import check_allowed_key, key_hint
from keyless.client.keys.encrypted import decrypt_private_key, is_encrypted_private_key
from keyless.client.keys.errors import KeyFileError, KeyReferenceError
from keyless.client.keys.pem import MAX_KEY_FILE_BYTES, read_pem_block
from keyless.client.keys.signer import KeySigner, LocalKeySigner
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

KEY_URL_TIMEOUT_SECONDS = 10
WHAT_WORKS = (
    "a key reference here is a file, env://VAR, a pkcs11: URI, an awskms:// key, or for public "
    "keys an https:// URL"
)
# Schemes cosign resolves that keyless does not (yet): the name shown in the message.
UNSUPPORTED_SCHEMES = {
    "gcpkms": "Google Cloud KMS (gcpkms://) keys",
    "azurekms": "Azure Key Vault (azurekms://) keys",
    "hashivault": "HashiCorp Vault (hashivault://) keys",
    "openbao": "OpenBao (openbao://) keys",
    "k8s": "Kubernetes secret (k8s://) keys",
    "gitlab": "GitLab CI variable (gitlab://) keys",
    "github": "GitHub secret (github://) keys",
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class VerifierKey:
    """A public key a policy or `--key` names, with that name for "which key matched"."""

    reference: str
    public_key: PublicKeyTypes

    @property
    def hint(self) -> str:
        """The `publicKey.hint` a bundle signed by this key carries (cosign v3, sigstore-go)."""
        return key_hint(self.public_key)


def load_verifier_key(reference: str) -> VerifierKey:
    """The public key `reference` names.

    Raises:
        KeyReferenceError: a bad or unsupported reference, a missing file or variable.
        KeyFileError: the content is not an allowed PEM public key.
        NetworkError: a key URL cannot be fetched (unreachable, timeout, not HTTP 200).
    """
    scheme = _scheme(reference)
    if scheme in ("pkcs11", "awskms"):
        return VerifierKey(reference, _held_elsewhere(reference, scheme).public_key)
    if scheme in ("https", "http"):
        data, source = _fetch(reference), reference
    else:
        data, source = _local(reference, scheme)
    return VerifierKey(reference, parse_public_key(data, source=source))


def load_signer(reference: str, *, password: Callable[[], bytes]) -> KeySigner:
    """The signer `reference` names; `password` is asked only for an encrypted key.

    Raises:
        KeyReferenceError: a bad or unsupported reference, a missing file or variable.
        KeyFileError: not a cosign private key, malformed, a wrong password, a key that is not
            allowed or cannot sign here.
    """
    scheme = _scheme(reference)
    if scheme in ("pkcs11", "awskms"):
        return _held_elsewhere(reference, scheme)
    if scheme in ("https", "http"):
        raise KeyReferenceError(
            f"a private key is not fetched from a URL ({reference}); {WHAT_WORKS}"
        )
    data, source = _local(reference, scheme)
    if not is_encrypted_private_key(data):
        kind = _pem_kind(data, source=source)
        if kind == "PUBLIC KEY":
            raise KeyFileError(
                f"{source} holds a public key; signing needs the private key (cosign.key)"
            )
        raise KeyFileError(
            f"{source} is a {kind} PEM, not a cosign encrypted private key",
            hint=f"import it first: keyless import-key-pair --key {source}"
            if "PRIVATE KEY" in kind
            else None,
        )
    key = decrypt_private_key(data, password(), source=source)
    return LocalKeySigner(key, reference=reference)


def parse_public_key(data: bytes, *, source: str) -> PublicKeyTypes:
    """A PEM `PUBLIC KEY` (PKIX) or `RSA PUBLIC KEY` of an allowed type.

    Raises:
        KeyFileError: not such a PEM, or a key type or size that is not allowed.
    """
    from cryptography.hazmat.primitives.serialization import (
        load_der_public_key,
        load_pem_public_key,
    )

    kind, der = read_pem_block(data, source=source)
    try:
        if kind == "PUBLIC KEY":
            key = load_der_public_key(der)
        elif kind == "RSA PUBLIC KEY":
            key = load_pem_public_key(data)
        else:
            raise KeyFileError(f"{source} is a {kind} PEM, not a public key")
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{source} is not a valid PEM public key") from exc
    check_allowed_key(key, source=source)
    return key


def _held_elsewhere(reference: str, scheme: str) -> KeySigner:
    """A key that never leaves its token or KMS (its public half verifies)."""
    if scheme == "awskms":
        from keyless.client.keys.awskms import AwsKmsSigner

        return AwsKmsSigner(reference)
    from keyless.client.keys.pkcs11 import Pkcs11KeySigner, parse_pkcs11_uri

    return Pkcs11KeySigner(parse_pkcs11_uri(reference), reference=reference)


def _scheme(reference: str) -> str | None:
    """The reference's scheme (`env`, `https`, `pkcs11`, ...), None for a path; refuses the
    schemes keyless does not resolve."""
    if not reference:
        raise KeyReferenceError(f"an empty key reference; {WHAT_WORKS}")
    match = _SCHEME.match(reference)
    scheme = match.group(1).lower() if match else None
    if reference.lower().startswith("pkcs11:"):
        scheme = "pkcs11"
    if scheme in UNSUPPORTED_SCHEMES:
        raise KeyReferenceError(
            f"{UNSUPPORTED_SCHEMES[scheme]} are not supported yet; {WHAT_WORKS}",
            reason=Reason.UNSUPPORTED_KEY_REFERENCE,
        )
    if scheme is not None and scheme not in ("env", "https", "http", "pkcs11", "awskms"):
        raise KeyReferenceError(f"unknown key reference scheme {scheme}://; {WHAT_WORKS}")
    return scheme


def _local(reference: str, scheme: str | None) -> tuple[bytes, str]:
    """The content of a file or `env://VAR` reference, and the name to show for it."""
    if scheme == "env":
        name = reference[len("env://") :]
        if not _ENV_NAME.match(name):
            raise KeyReferenceError(f"{reference!r} does not name an environment variable")
        value = os.environ.get(name)
        if value is None:
            raise KeyReferenceError(f"environment variable ${name} is not set ({reference})")
        data = value.encode()
        if len(data) > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"${name} is larger than {MAX_KEY_FILE_BYTES} bytes")
        return data, f"${name}"
    path = Path(reference)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise KeyReferenceError(f"key file {reference} does not exist") from exc
    except OSError as exc:
        raise KeyReferenceError(f"cannot read key file {reference}: {exc.strerror}") from exc
    return data, reference


def _fetch(url: str) -> bytes:
    """The body of a key URL: HTTP 200 within the timeout and the size bound, else NetworkError."""
    from keyless.client.http import new_session, request

    with new_session() as session:
        response, body = request(
            session, "GET", url, what="the key URL", timeout=KEY_URL_TIMEOUT_SECONDS
        )
    if response.status_code != 200:
        raise NetworkError(
            f"cannot load the key at {url}: the server answered HTTP {response.status_code}",
            reason=Reason.KEY_URL,
        )
    if len(body) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"the key at {url} is larger than {MAX_KEY_FILE_BYTES} bytes")
    return body


def _pem_kind(data: bytes, *, source: str) -> str:
    kind, _ = read_pem_block(data, source=source)
    return kind
