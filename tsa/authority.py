"""`TimestampAuthority`: RFC 3161 tokens built with asn1crypto and signed with cryptography.

A granted response is a `TimeStampResp` whose token is CMS `SignedData` (RFC 5652) over a
`TSTInfo`: the client's message imprint and nonce, the policy, a random serial, the time and its
accuracy. The one `SignerInfo` names the leaf by issuer and serial and signs the attributes
contentType, signingTime, messageDigest and signingCertificateV2 (RFC 5816), which binds the
leaf's hash so a verifier cannot be steered to another certificate. The leaf is included when
the client asks (`certReq`); the whole chain is published at the certchain endpoint and in the
trusted root.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar, Protocol

from asn1crypto import algos, cms, core, parser, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.core.keys import CURVE_HASHES, hash_algorithm
from keyless.tsa.certs import TSAChainError, check_tsa_chain
from keyless.tsa.errors import Rejected
from keyless.tsa.request import TimestampRequest

DEFAULT_POLICY_OID = "1.3.6.1.4.1.57264.2"  # Sigstore's TSA policy arc
_VERSION_1 = core.Integer(1).dump()
_VERSION_3 = core.Integer(3).dump()
_GRANTED = tsp.PKIStatusInfo({"status": "granted"}).dump()
_SIGNED_DATA = cms.ContentType("signed_data").dump()
_TST_INFO = cms.ContentType("tst_info").dump()
_SIGNING_TIME = cms.CMSAttributeType("signing_time").dump()
_MESSAGE_DIGEST = cms.CMSAttributeType("message_digest").dump()
_CONTENT_TYPE_TST_INFO = cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump()
_CONTEXT_0 = b"\xa0"  # [0] IMPLICIT, constructed: replaces a SET OF's tag byte
# The TSA signs with P-256 or P-384, each with its curve's hash (core.keys.CURVE_HASHES).
_CURVES: dict[str, tuple[str, hashes.HashAlgorithm]] = {
    curve: (CURVE_HASHES[curve], hash_algorithm(CURVE_HASHES[curve]))
    for curve in ("secp256r1", "secp384r1")
}


class DigestSigner(Protocol):
    """A TSA key that never leaves its store (a PKCS#11 token): its public key, and a DER
    ECDSA signature over a digest made with the hash its curve signs with (SHA-256 for P-256,
    SHA-384 for P-384)."""

    public_key: ec.EllipticCurvePublicKey

    def sign_digest(self, digest: bytes) -> bytes: ...


class TimestampAuthority:
    """Signs timestamp tokens with one key whose chain meets the TSA rules (`tsa.certs`)."""

    def __init__(
        self,
        *,
        key: ec.EllipticCurvePrivateKey | DigestSigner,
        chain: Sequence[x509.Certificate],
        policy: str = DEFAULT_POLICY_OID,
        accepted_policies: Sequence[str] = (),
        accuracy_seconds: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key.public_key
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name not in _CURVES:
            raise TypeError("the TSA key must be an ECDSA P-256 or P-384 key")
        check_tsa_chain(chain, public)
        if accuracy_seconds < 1:
            raise ValueError("accuracy must be at least one second")
        self._digest_name, self._hash = _CURVES[public.curve.name]
        if isinstance(key, ec.EllipticCurvePrivateKey):
            algorithm = ec.ECDSA(self._hash)
            self._sign: Callable[[bytes], bytes] = lambda data: key.sign(data, algorithm)
        else:
            self._sign = lambda data: key.sign_digest(_digest(self._hash, data))
        # A key held elsewhere (a token) may not be the one its public object claims: one
        # signature checked with the leaf proves it before any token is issued.
        probe = b"keyless TSA: does this key sign for its leaf certificate?"
        try:
            public.verify(self._sign(probe), probe, ec.ECDSA(self._hash))
        except InvalidSignature as exc:
            raise TSAChainError("the TSA signing key does not match its leaf certificate") from exc
        self.chain = tuple(chain)
        self.policy = core.ObjectIdentifier(policy).dotted
        self.accepted_policies = frozenset({self.policy, *accepted_policies})
        self._accuracy = accuracy_seconds
        self._clock = clock
        leaf_der = chain[0].public_bytes(serialization.Encoding.DER)
        leaf = asn1_x509.Certificate.load(leaf_der)
        self._not_before = chain[0].not_valid_before_utc
        self._not_after = chain[0].not_valid_after_utc
        # asn1crypto encodes each part; the token is assembled from those encodings with
        # `parser.emit` (tag, length, contents), because asn1crypto re-encodes a whole tree
        # built from Python values at every dump, which cost 70 ms a token. Parts that never
        # change are encoded once, here.
        self._signing_certificate = cms.CMSAttribute(
            {
                "type": "signing_certificate_v2",
                "values": [
                    {
                        "certs": [
                            {
                                "hash_algorithm": {"algorithm": "sha256"},
                                "cert_hash": hashlib.sha256(leaf_der).digest(),
                                "issuer_serial": {
                                    "issuer": [
                                        asn1_x509.GeneralName(
                                            name="directory_name", value=leaf.issuer
                                        )
                                    ],
                                    "serial_number": leaf.serial_number,
                                },
                            }
                        ]
                    }
                ],
            }
        ).dump()
        self._leaf_der = leaf_der
        self._policy_der = core.ObjectIdentifier(self.policy).dump()
        self._hash_algorithms = {
            name: algos.DigestAlgorithm({"algorithm": name}).dump()
            for name in ("sha256", "sha384", "sha512")
        }
        self._digest_algorithm = self._hash_algorithms[self._digest_name]
        self._signature_algorithm = algos.SignedDigestAlgorithm(
            {"algorithm": f"{self._digest_name}_ecdsa"}
        ).dump()
        self._sid = cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": leaf.issuer, "serial_number": leaf.serial_number},
        ).dump()

    @property
    def leaf(self) -> x509.Certificate:
        """The signing certificate."""
        return self.chain[0]

    def grant(self, request: TimestampRequest) -> bytes:
        """A signed `TimeStampResp` (status granted) for a checked request.

        Raises:
            Rejected: the request's policy is not served, or the TSA certificate is not
                valid now (a token it signed would not verify).
        """
        policy = request.policy or self.policy
        if policy not in self.accepted_policies:
            raise Rejected(f"policy {policy[:128]} is not served here", failure="unaccepted_policy")
        now = datetime.fromtimestamp(int(self._clock()), UTC)
        if not self._not_before <= now <= self._not_after:
            raise Rejected("the TSA certificate is not valid now", failure="time_not_available")
        imprint = _sequence(
            self._hash_algorithms[request.hash_algorithm],
            core.OctetString(request.digest).dump(),
        )
        accuracy = _sequence(core.Integer(self._accuracy).dump())
        # A positive serial of at most 160 bits, unique with overwhelming probability.
        serial = secrets.randbits(159) | 1
        # TSTInfo; `ordering` is left out, as DER requires of a field at its default (FALSE).
        content = _sequence(
            _VERSION_1,
            self._policy_der if policy == self.policy else core.ObjectIdentifier(policy).dump(),
            imprint,
            core.Integer(serial).dump(),
            core.GeneralizedTime(now).dump(),
            accuracy,
            core.Integer(request.nonce).dump() if request.nonce is not None else b"",
        )
        signing_time = _sequence(_SIGNING_TIME, _set_of([core.UTCTime(now).dump()]))
        message_digest = _sequence(
            _MESSAGE_DIGEST, _set_of([core.OctetString(_digest(self._hash, content)).dump()])
        )
        attributes = _set_of(
            [_CONTENT_TYPE_TST_INFO, signing_time, message_digest, self._signing_certificate]
        )
        # The signature covers the attributes as a DER SET OF (RFC 5652 §5.4); in SignerInfo
        # they carry the IMPLICIT [0] tag instead.
        signature = self._sign(attributes)
        signer_info = _sequence(
            _VERSION_1,
            self._sid,
            self._digest_algorithm,
            _CONTEXT_0 + attributes[1:],
            self._signature_algorithm,
            core.OctetString(signature).dump(),
        )
        signed_data = _sequence(
            _VERSION_3,
            _set_of([self._digest_algorithm]),
            _sequence(_TST_INFO, parser.emit(2, 1, 0, core.OctetString(content).dump())),
            parser.emit(2, 1, 0, self._leaf_der) if request.cert_req else b"",
            _set_of([signer_info]),
        )
        token = _sequence(_SIGNED_DATA, parser.emit(2, 1, 0, signed_data))
        return _sequence(_GRANTED, token)


def _sequence(*parts: bytes) -> bytes:
    der: bytes = parser.emit(0, 1, 16, b"".join(parts))
    return der


def _set_of(parts: list[bytes]) -> bytes:
    # DER orders the elements of a SET OF by their encodings (X.690 §11.6).
    der: bytes = parser.emit(0, 1, 17, b"".join(sorted(parts)))
    return der


class _Rejection(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type information
    """`TimeStampResp` without its token, which RFC 3161 makes optional (asn1crypto does not)."""

    _fields: ClassVar = [("status", tsp.PKIStatusInfo)]


def reject(failure: str, message: str) -> bytes:
    """A `TimeStampResp` of status rejection with one PKIFailureInfo bit and a reason."""
    der: bytes = _Rejection(
        {
            "status": {
                "status": "rejection",
                "status_string": [message],
                "fail_info": {failure},
            }
        }
    ).dump()
    return der


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()
