"""Keys in a PKCS#11 token (`pkcs11:` URIs, RFC 7512 as cosign reads them): the private key
never leaves the token, which signs each digest itself.

The URI: path attributes `token` or `slot-id`, and `object` (the key's label) or `id`
(percent-encoded bytes), separated by `;`; query attributes `module-path` (the module, an
absolute path) and `pin-value`, separated by `&`. The module path may come from
`COSIGN_PKCS11_MODULE_PATH` and the PIN from `COSIGN_PKCS11_PIN` instead. The refusals for a URI
missing one of them are cosign's words. python-pkcs11 is an optional extra (`keyless[pkcs11]`).

ECDSA P-256 keys sign with CKM_ECDSA over the SHA-256 digest (the token's raw r||s is encoded
as DER), RSA keys with CKM_RSA_PKCS over the DigestInfo of the digest, as every HSM offers.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyless.client.keys.algorithms import check_allowed_key, describe_key
from keyless.client.keys.errors import KeyFileError, KeyReferenceError
from keyless.core.errors import Reason

MODULE_PATH_VARIABLE = "COSIGN_PKCS11_MODULE_PATH"
PIN_VARIABLE = "COSIGN_PKCS11_PIN"
INSTALL_HINT = "pip install 'keyless[pkcs11]'"
# RFC 7512's path attributes: those cosign uses, and the others, accepted and not used.
_USED = {"token", "slot-id", "object", "id"}
_IGNORED = {
    "library-description",
    "library-manufacturer",
    "library-version",
    "manufacturer",
    "model",
    "serial",
    "slot-description",
    "slot-manufacturer",
    "type",
}
_QUERY = {"module-path", "pin-value", "module-name", "pin-source"}
# DER DigestInfo for SHA-256 (RFC 8017 §9.2 note 1), which CKM_RSA_PKCS signs as given.
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
MAX_URI_CHARS = 4096


@dataclass(frozen=True)
class Pkcs11URI:
    """What a `pkcs11:` URI names: the module, the token, the key, and the PIN if given."""

    module_path: str
    token: str | None
    slot_id: int | None
    label: str | None
    key_id: bytes | None
    pin: str | None


def parse_pkcs11_uri(uri: str) -> Pkcs11URI:
    """Parse a `pkcs11:` URI as cosign does (with the environment's module path and PIN).

    Raises:
        KeyReferenceError: malformed, or missing the token, the module or the key.
    """
    if len(uri) > MAX_URI_CHARS:
        raise KeyReferenceError(f"the pkcs11: URI is longer than {MAX_URI_CHARS} characters")
    body = uri[len("pkcs11:") :]
    path, _, query = body.partition("?")
    attributes = _attributes(path, ";", allowed=_USED | _IGNORED, where="path")
    options = _attributes(query, "&", allowed=_QUERY, where="query")
    token, slot_text = attributes.get("token"), attributes.get("slot-id")
    if not token and not slot_text:
        raise KeyReferenceError("invalid uri: one of token and slot-id must be set")
    slot_id = None
    if slot_text:
        if not slot_text.isdigit():
            raise KeyReferenceError(f"invalid uri: slot-id '{slot_text}' is not a valid number")
        slot_id = int(slot_text)
    module = options.get("module-path") or os.environ.get(MODULE_PATH_VARIABLE, "")
    if not module:
        raise KeyReferenceError(
            "invalid uri: module-path or COSIGN_PKCS11_MODULE_PATH must be set to the absolute "
            "path of the PKCS11 module"
        )
    label, key_id = attributes.get("object"), attributes.get("id")
    if not label and not key_id:
        raise KeyReferenceError("invalid uri: one of object and id must be set")
    if not Path(module).is_absolute():
        raise KeyReferenceError(f"the PKCS#11 module path {module} is not an absolute path")
    return Pkcs11URI(
        module_path=module,
        token=token or None,
        slot_id=slot_id,
        label=label or None,
        key_id=key_id.encode("latin-1") if key_id else None,
        pin=options.get("pin-value") or os.environ.get(PIN_VARIABLE) or None,
    )


def _attributes(text: str, separator: str, *, allowed: set[str], where: str) -> dict[str, str]:
    """`name=value` pairs, percent-decoded (bytes kept as latin-1 text), each name once."""
    found: dict[str, str] = {}
    for part in text.split(separator) if text else []:
        name, equals, value = part.partition("=")
        if not equals or name not in allowed:
            raise KeyReferenceError(f"invalid uri: unknown {where} attribute {name!r}")
        if name in found:
            raise KeyReferenceError(f"invalid uri: {where} attribute {name!r} is given twice")
        found[name] = urllib.parse.unquote(value, encoding="latin-1")
    return found


class Pkcs11KeySigner:
    """A `KeySigner` over a key pair in a token; one logged-in session for the process."""

    def __init__(self, uri: Pkcs11URI, *, reference: str) -> None:
        """Open the token and find the key pair.

        Raises:
            KeyReferenceError: python-pkcs11 is missing, or no PIN was given.
            KeyFileError: the module does not load, no such token or key pair, a PIN the token
                refuses (`wrong-pin`), or a key that is not allowed or cannot sign here.
        """
        try:
            import pkcs11
            from pkcs11 import exceptions as pk
        except ImportError as exc:
            raise KeyReferenceError(
                f"PKCS#11 keys need python-pkcs11: {INSTALL_HINT}", reason=Reason.MISSING_LIBRARY
            ) from exc
        self.reference = reference
        token_name = f"token {uri.token!r}" if uri.token else f"slot {uri.slot_id}"
        self._where = f"the PKCS#11 {token_name}"
        if uri.pin is None:
            raise KeyReferenceError(
                f"no PIN for {self._where}: give pin-value in the URI or set {PIN_VARIABLE}"
            )
        try:
            library = pkcs11.lib(uri.module_path)
        except (RuntimeError, OSError, pk.PKCS11Error) as exc:
            raise KeyFileError(f"cannot load the PKCS#11 module {uri.module_path}") from exc
        try:
            if uri.token is not None:
                token = library.get_token(token_label=uri.token)
            else:
                (slot,) = [
                    s for s in library.get_slots(token_present=True) if s.slot_id == uri.slot_id
                ]
                token = slot.get_token()
        except (pk.NoSuchToken, pk.MultipleTokensReturned, ValueError) as exc:
            raise KeyFileError(f"{self._where} is not in {uri.module_path}") from exc
        try:
            self._session = token.open(user_pin=uri.pin)
        except pk.UserAlreadyLoggedIn:
            self._session = token.open()
        except (pk.PinIncorrect, pk.PinInvalid, pk.PinLenRange) as exc:
            raise KeyFileError(f"{self._where} refused the PIN", reason=Reason.WRONG_PIN) from exc
        except pk.PinLocked as exc:
            raise KeyFileError(
                f"the PIN of {self._where} is locked", reason=Reason.WRONG_PIN
            ) from exc
        self._key, self.public_key = self._key_pair(uri)
        self._lock = threading.Lock()

    def _key_pair(self, uri: Pkcs11URI) -> tuple[Any, Any]:
        from pkcs11 import ObjectClass
        from pkcs11 import exceptions as pk

        search: dict[str, Any] = {}
        if uri.label is not None:
            search["label"] = uri.label
        if uri.key_id is not None:
            search["id"] = uri.key_id
        named = repr(uri.label) if uri.label else f"with id {(uri.key_id or b'').hex()}"
        try:
            private = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, **search)
            public = self._session.get_key(object_class=ObjectClass.PUBLIC_KEY, **search)
        except pk.NoSuchKey as exc:
            raise KeyFileError(f"no key pair {named} in {self._where}") from exc
        except pk.MultipleObjectsReturned as exc:
            raise KeyFileError(f"several key pairs match {named} in {self._where}") from exc
        key = _public_key(public)
        source = f"the key {named} in {self._where}"
        check_allowed_key(key, source=source)
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        usable = isinstance(key, rsa.RSAPublicKey) or (
            isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        )
        if not usable:
            raise KeyFileError(
                f"{source} is an {describe_key(key)} key, which cannot sign here yet; ECDSA "
                "P-256 and RSA keys can",
                reason=Reason.KEY_TYPE,
            )
        return private, key

    def sign(self, data: bytes) -> bytes:
        return self.sign_digest(hashlib.sha256(data).digest())

    def sign_digest(self, sha256: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
        from pkcs11 import Mechanism

        if len(sha256) != 32:
            raise ValueError("a SHA-256 digest is 32 bytes")
        with self._lock:
            if isinstance(self.public_key, ec.EllipticCurvePublicKey):
                raw = self._key.sign(sha256, mechanism=Mechanism.ECDSA)
                half = len(raw) // 2
                return encode_dss_signature(
                    int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
                )
            return self._key.sign(_SHA256_DIGEST_INFO + sha256, mechanism=Mechanism.RSA_PKCS)


def _public_key(public: Any) -> Any:
    """The token's public key object as a cryptography key."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from pkcs11 import KeyType
    from pkcs11.util.ec import encode_ec_public_key
    from pkcs11.util.rsa import encode_rsa_public_key

    if public.key_type == KeyType.EC:
        return load_der_public_key(encode_ec_public_key(public))
    if public.key_type == KeyType.RSA:
        return load_der_public_key(_spki_of_pkcs1(encode_rsa_public_key(public)))
    raise KeyFileError(
        f"the token key is a {public.key_type.name} key; RSA and ECDSA are supported"
    )


def _spki_of_pkcs1(der: bytes) -> bytes:
    """A SubjectPublicKeyInfo around PKCS#1 `RSAPublicKey` DER (what python-pkcs11 gives)."""
    from asn1crypto import keys

    info = keys.PublicKeyInfo(
        {
            "algorithm": {"algorithm": "rsa", "parameters": None},
            "public_key": keys.RSAPublicKey.load(der),
        }
    )
    return info.dump()
