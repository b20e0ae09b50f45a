"""CA keys in a PKCS#11 module: an HSM in production, SoftHSM2 in tests.

The private key never leaves the token: the CA hashes what it signs and the token signs the
digest (CKM_ECDSA, which every HSM offers). cryptography builds certificates only with a key it
holds, so a certificate is drafted with a throwaway key of the same curve (which fixes the
signature algorithm), and its TBSCertificate is then signed by the token; the draft's signature
is replaced, never used.

Start-up refuses, with one line, what would otherwise fail on the first request or weaken the
CA: a module that does not load, a missing token or key, a wrong PIN, a key that the token
would let out (CKA_EXTRACTABLE or not CKA_SENSITIVE), or a key that does not match the CA
certificate. There is never a fallback to a generated key.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from keyless.ca.errors import BackendError, CAConfigError
from keyless.ca.signers import CA_CURVE_HASHES, check_chain
from keyless.core.errors import Reason

DEFAULT_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
# Curves a PKCS#11 CA key may use (the P-256 and P-384, plus P-521 as for file keys).
CURVES: dict[str, ec.EllipticCurve] = {
    "secp256r1": ec.SECP256R1(),
    "secp384r1": ec.SECP384R1(),
    "secp521r1": ec.SECP521R1(),
}
MAX_PIN_BYTES = 256
# Which process initialised each module (see `open_session`).
_initialized_by: dict[str, int] = {}


@dataclass(frozen=True)
class TokenKey:
    """Where a key lives: the module, the token (by label or slot ID) and the key's label."""

    module: Path
    key_label: str
    token_label: str | None = None
    slot: int | None = None
    pin_env: str | None = None
    pin_file: Path | None = None

    def describe(self) -> str:
        token = f"token {self.token_label!r}" if self.token_label else f"slot {self.slot}"
        return f"key {self.key_label!r} in {token} of {self.module}"

    def pin(self) -> str:
        """The user PIN, from the environment variable or the file (never from the config)."""
        if self.pin_env is not None:
            value = os.environ.get(self.pin_env)
            if not value:
                raise CAConfigError(
                    "the PKCS#11 PIN", [f"environment variable {self.pin_env} is not set"]
                )
            return value
        if self.pin_file is None:
            raise CAConfigError("the PKCS#11 PIN", ["set pkcs11-pin-env or pkcs11-pin-file"])
        try:
            with self.pin_file.open("rb") as handle:
                data = handle.read(MAX_PIN_BYTES + 1)
        except OSError as exc:
            raise CAConfigError(
                str(self.pin_file), [f"cannot read the PIN file: {exc.strerror}"]
            ) from exc
        pin = data.rstrip(b"\r\n")
        if not pin or len(data) > MAX_PIN_BYTES:
            raise CAConfigError(str(self.pin_file), ["the PIN file is empty or too long"])
        return pin.decode()


def require_binding() -> None:
    """python-pkcs11 is an extra (`keyless[pkcs11]`): without it, one line saying how to get
    it, never an ImportError's traceback.

    Raises:
        BackendError: python-pkcs11 is not installed.
    """
    try:
        import pkcs11  # noqa: F401
    except ImportError as exc:
        raise BackendError(
            "PKCS#11 keys need python-pkcs11, which is not installed: "
            "pip install 'keyless[pkcs11]'",
            reason=Reason.MISSING_LIBRARY,
        ) from exc


def open_session(location: TokenKey, *, rw: bool = False) -> Any:
    """A logged-in session on the token; one line for each way that can fail."""
    require_binding()
    import pkcs11
    from pkcs11 import exceptions as pk

    where = location.describe()
    try:
        library = pkcs11.lib(str(location.module))
        # PKCS#11 state does not survive fork(): a gunicorn worker must initialise the module
        # again rather than use what the master's preflight opened.
        if _initialized_by.setdefault(str(location.module), os.getpid()) != os.getpid():
            library.reinitialize()
            _initialized_by[str(location.module)] = os.getpid()
    except (RuntimeError, OSError, pk.PKCS11Error) as exc:
        raise CAConfigError(
            str(location.module), [f"cannot load the PKCS#11 module: {exc or type(exc).__name__}"]
        ) from exc
    try:
        if location.token_label is not None:
            token = library.get_token(token_label=location.token_label)
        else:
            (slot,) = [
                s for s in library.get_slots(token_present=True) if s.slot_id == location.slot
            ]
            token = slot.get_token()
    except (pk.NoSuchToken, pk.MultipleTokensReturned, ValueError) as exc:
        raise CAConfigError(
            where, ["no such token in the module (removed, or another label?)"]
        ) from exc
    try:
        return token.open(user_pin=location.pin(), rw=rw)
    except pk.UserAlreadyLoggedIn:
        # Login is per process: another session of ours (the CA's signer, a ceremony's root)
        # already authenticated, and every new session shares that state.
        return token.open(rw=rw)
    except pk.PinIncorrect as exc:
        raise CAConfigError(where, ["the token rejected the PIN"]) from exc
    except pk.PinLocked as exc:
        raise CAConfigError(where, ["the token's PIN is locked"]) from exc
    except (pk.TokenNotPresent, pk.DeviceRemoved, pk.DeviceError) as exc:
        raise CAConfigError(where, [f"the token is not usable: {type(exc).__name__}"]) from exc


class TokenSigner:
    """Signs certificates with an EC private key held in a token; the key never leaves it."""

    def __init__(self, location: TokenKey) -> None:
        require_binding()
        from pkcs11 import Attribute, ObjectClass
        from pkcs11 import exceptions as pk

        self.where = location.describe()
        self._session = open_session(location)
        try:
            key = self._session.get_key(
                object_class=ObjectClass.PRIVATE_KEY, label=location.key_label
            )
            public = self._session.get_key(
                object_class=ObjectClass.PUBLIC_KEY, label=location.key_label
            )
        except pk.NoSuchKey as exc:
            raise CAConfigError(self.where, ["no key pair with this label in the token"]) from exc
        except pk.MultipleObjectsReturned as exc:
            raise CAConfigError(self.where, ["several keys have this label"]) from exc
        if key[Attribute.EXTRACTABLE] or not key[Attribute.SENSITIVE]:
            raise CAConfigError(
                self.where, ["the key can leave the token (CKA_EXTRACTABLE or not CKA_SENSITIVE)"]
            )
        self.public_key = _public_key(public, self.where)
        self._key = key
        self._hash = CA_CURVE_HASHES[self.public_key.curve.name]()
        self._draft_key = ec.generate_private_key(CURVES[self.public_key.curve.name])
        self._lock = threading.Lock()

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """The certificate `builder` describes, signed in the token."""
        from asn1crypto import x509 as asn1_x509

        draft = builder.sign(self._draft_key, self._hash)
        signature = self.sign_digest(_digest(self._hash, draft.tbs_certificate_bytes))
        parsed = asn1_x509.Certificate.load(draft.public_bytes(serialization.Encoding.DER))
        signed = asn1_x509.Certificate(
            {
                "tbs_certificate": parsed["tbs_certificate"],
                "signature_algorithm": parsed["signature_algorithm"],
                "signature_value": signature,
            }
        )
        return x509.load_der_x509_certificate(signed.dump())

    def close(self) -> None:
        self._session.close()

    def sign_digest(self, digest: bytes) -> bytes:
        """An ECDSA signature (DER) by the token key over a digest made with its hash."""
        from pkcs11 import Mechanism

        with self._lock:
            raw = self._key.sign(digest, mechanism=Mechanism.ECDSA)
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )


class Pkcs11Signer:
    """The CA's `CASigner` when its issuing key is in a token: the token key and the chain."""

    def __init__(
        self, location: TokenKey, chain: Sequence[x509.Certificate], *, now: datetime
    ) -> None:
        token = TokenSigner(location)
        if not chain:
            raise CAConfigError(token.where, ["no CA chain to issue under"])
        if chain[0].public_key() != token.public_key:
            raise CAConfigError(
                token.where, ["the key does not match the CA certificate (first in the chain)"]
            )
        check_chain(chain, public_key=token.public_key, now=now)
        self._token = token
        self._chain = tuple(chain)
        self._check_signature(token)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return self._token.sign(builder)

    @staticmethod
    def _check_signature(token: TokenSigner) -> None:
        """The token's public object could be stale; a real signature proves the private key."""
        algorithm = CA_CURVE_HASHES[token.public_key.curve.name]()
        probe = _digest(algorithm, b"keyless: does the token hold the CA certificate's key?")
        try:
            token.public_key.verify(token.sign_digest(probe), probe, ec.ECDSA(Prehashed(algorithm)))
        except InvalidSignature as exc:
            raise CAConfigError(
                token.where, ["the private key does not match the CA certificate"]
            ) from exc


def generate_token_key(location: TokenKey, curve: str) -> ec.EllipticCurvePublicKey:
    """Make a non-extractable EC key pair in the token under `location.key_label`.

    Raises:
        CAConfigError: the token is unusable, or a key with that label already exists.
        BackendError: python-pkcs11 is not installed.
    """
    require_binding()
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11 import exceptions as pk
    from pkcs11.util.ec import encode_named_curve_parameters

    session = open_session(location, rw=True)
    try:
        try:
            session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=location.key_label)
        except pk.NoSuchKey:
            pass
        else:
            raise CAConfigError(location.describe(), ["a key with this label already exists"])
        parameters = session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)},
            local=True,
        )
        public, _ = parameters.generate_keypair(
            store=True,
            label=location.key_label,
            private_template={
                Attribute.EXTRACTABLE: False,
                Attribute.SENSITIVE: True,
                Attribute.SIGN: True,
            },
        )
        return _public_key(public, location.describe())
    finally:
        session.close()


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


def _public_key(public: Any, where: str) -> ec.EllipticCurvePublicKey:
    from pkcs11.util.ec import encode_ec_public_key

    key = serialization.load_der_public_key(encode_ec_public_key(public))
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in CURVES:
        raise CAConfigError(where, ["the key must be ECDSA P-256, P-384 or P-521"])
    return key
