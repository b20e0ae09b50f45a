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
from typing import ClassVar

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tsa.certs import check_tsa_chain
from tsa.request import Rejected, TimestampRequest, parse_der_request, parse_json_request

DEFAULT_POLICY_OID = "1.3.6.1.4.1.57264.2"  # Sigstore's TSA policy arc
_CURVES: dict[str, tuple[str, hashes.HashAlgorithm]] = {
    "secp256r1": ("sha256", hashes.SHA256()),
    "secp384r1": ("sha384", hashes.SHA384()),
}


class TimestampAuthority:
    """Signs timestamp tokens with one key whose chain meets the TSA rules (`tsa.certs`)."""

    def __init__(
        self,
        *,
        key: ec.EllipticCurvePrivateKey,
        chain: Sequence[x509.Certificate],
        policy: str = DEFAULT_POLICY_OID,
        accepted_policies: Sequence[str] = (),
        accuracy_seconds: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _CURVES:
            raise TypeError("the TSA key must be an ECDSA P-256 or P-384 private key")
        check_tsa_chain(chain, key)
        if accuracy_seconds < 1:
            raise ValueError("accuracy must be at least one second")
        self._key = key
        self.chain = tuple(chain)
        self.policy = core.ObjectIdentifier(policy).dotted
        self.accepted_policies = frozenset({self.policy, *accepted_policies})
        self._accuracy = accuracy_seconds
        self._clock = clock
        self._digest_name, self._hash = _CURVES[key.curve.name]
        leaf_der = chain[0].public_bytes(serialization.Encoding.DER)
        self._leaf = asn1_x509.Certificate.load(leaf_der)
        self._not_before = chain[0].not_valid_before_utc
        self._not_after = chain[0].not_valid_after_utc
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
                                            name="directory_name", value=self._leaf.issuer
                                        )
                                    ],
                                    "serial_number": self._leaf.serial_number,
                                },
                            }
                        ]
                    }
                ],
            }
        )

    @property
    def leaf(self) -> x509.Certificate:
        """The signing certificate."""
        return self.chain[0]

    def answer_der(self, der: bytes) -> tuple[bytes, bool]:
        """The DER `TimeStampResp` for a DER request, and whether it was granted."""
        try:
            return self.grant(parse_der_request(der)), True
        except Rejected as exc:
            return reject(exc.failure, exc.message), False

    def answer_json(self, body: bytes) -> tuple[bytes, bool]:
        """The DER `TimeStampResp` for Sigstore's JSON request, and whether it was granted."""
        try:
            return self.grant(parse_json_request(body)), True
        except Rejected as exc:
            return reject(exc.failure, exc.message), False

    def grant(self, request: TimestampRequest) -> bytes:
        """A signed `TimeStampResp` (status granted) for a checked request.

        Raises:
            Rejected: the request's policy is not served, or the TSA certificate is not
                valid now (a token it signed would not verify).
        """
        policy = request.policy or self.policy
        if policy not in self.accepted_policies:
            raise Rejected("unaccepted_policy", f"policy {policy[:128]} is not served here")
        now = datetime.fromtimestamp(int(self._clock()), UTC)
        if not self._not_before <= now <= self._not_after:
            raise Rejected("time_not_available", "the TSA certificate is not valid now")
        info: dict[str, object] = {
            "version": "v1",
            "policy": policy,
            "message_imprint": {
                "hash_algorithm": {"algorithm": request.hash_algorithm},
                "hashed_message": request.digest,
            },
            # A positive serial of at most 160 bits, unique with overwhelming probability.
            "serial_number": secrets.randbits(159) | 1,
            "gen_time": now,
            "accuracy": {"seconds": self._accuracy},
        }
        if request.nonce is not None:
            info["nonce"] = request.nonce
        tst_info = tsp.TSTInfo(info)
        content = tst_info.dump()
        attributes = sorted(
            (
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": now})]}),
                cms.CMSAttribute(
                    {"type": "message_digest", "values": [_digest(self._hash, content)]}
                ),
                self._signing_certificate,
            ),
            key=lambda attribute: attribute.dump(),
        )
        signed_attrs = cms.CMSAttributes(attributes)
        # The signature covers the attributes as a DER SET OF (RFC 5652 §5.4).
        signature = self._key.sign(signed_attrs.dump(), ec.ECDSA(self._hash))
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value={
                        "issuer": self._leaf.issuer,
                        "serial_number": self._leaf.serial_number,
                    },
                ),
                "digest_algorithm": algos.DigestAlgorithm({"algorithm": self._digest_name}),
                "signed_attrs": signed_attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm(
                    {"algorithm": f"{self._digest_name}_ecdsa"}
                ),
                "signature": signature,
            }
        )
        signed_data: dict[str, object] = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": self._digest_name})],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(content),
            },
            "signer_infos": [signer_info],
        }
        if request.cert_req:
            signed_data["certificates"] = [self._leaf]
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
        return tsp.TimeStampResp(
            {"status": {"status": "granted"}, "time_stamp_token": token}
        ).dump()


class _Rejection(core.Sequence):
    """`TimeStampResp` without its token, which RFC 3161 makes optional (asn1crypto does not)."""

    _fields: ClassVar = [("status", tsp.PKIStatusInfo)]


def reject(failure: str, message: str) -> bytes:
    """A `TimeStampResp` of status rejection with one PKIFailureInfo bit and a reason."""
    return _Rejection(
        {
            "status": {
                "status": "rejection",
                "status_string": [message],
                "fail_info": {failure},
            }
        }
    ).dump()


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()
