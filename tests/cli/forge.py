"""TEST-ONLY: a private Sigstore instance in memory, minting real bundles with real crypto.

It builds a root and intermediate CA, a CT log key that embeds SCTs, and a Rekor v1 log key that
signs SETs and checkpoints over a small RFC 6962 tree. Tests use it to make bundles that differ
from a valid one in exactly one way. Nothing here is used outside tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.oidc import oids
from keyless.tlog import Checkpoint, sign_checkpoint

SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
LOG_HOST = "log.keyless.test"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _der_octet_string(data: bytes) -> bytes:
    n = len(data)
    if n < 0x80:
        return b"\x04" + bytes([n]) + data
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x04" + bytes([0x80 | len(body)]) + body + data


def _mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _ca_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    not_before: datetime,
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "keyless.test"),
            x509.NameAttribute(NameOID.COMMON_NAME, subject),
        ]
    )
    issuer_name, issuer_key = issuer if issuer else (name, key)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=3650))
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), True
        )
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class Instance:
    """A private Sigstore instance: CA, CT log and transparency log, valid from `start`."""

    start: datetime
    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    inter_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ct_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    log_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        self.root_cert = _ca_cert("keyless-root", self.root_key, None, self.start)
        self.inter_cert = _ca_cert(
            "keyless-intermediate",
            self.inter_key,
            (self.root_cert.subject, self.root_key),
            self.start,
        )
        self.log_id = hashlib.sha256(_spki(self.log_key.public_key())).digest()
        self.ct_log_id = hashlib.sha256(_spki(self.ct_key.public_key())).digest()

    def trusted_root(
        self, *, log_end: datetime | None = None, ct_end: datetime | None = None
    ) -> dict:
        """The TrustedRoot JSON (as a dict) listing this instance."""

        def valid_for(end: datetime | None = None) -> dict:
            out = {"start": self.start.strftime("%Y-%m-%dT%H:%M:%SZ")}
            if end is not None:
                out["end"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
            return out

        def log(key: ec.EllipticCurvePrivateKey, url: str, end: datetime | None = None) -> dict:
            spki = _spki(key.public_key())
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid_for(end),
                },
                "logId": {"keyId": _b64(hashlib.sha256(spki).digest())},
            }

        chain = [self.inter_cert, self.root_cert]
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.log_key, f"https://{LOG_HOST}", log_end)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "keyless.test", "commonName": "keyless"},
                    "uri": "https://ca.keyless.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                            for c in chain
                        ]
                    },
                    "validFor": valid_for(),
                }
            ],
            "ctlogs": [log(self.ct_key, "https://ct.keyless.test", ct_end)],
        }

    def issue_leaf(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        identity: str,
        issuer: str,
        not_before: datetime,
        extra: dict[int, str] | None = None,
        sct_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> x509.Certificate:
        """A Fulcio-profile leaf valid 10 minutes from `not_before`, with an embedded SCT."""
        san: x509.GeneralName = (
            x509.RFC822Name(identity)
            if "@" in identity and "://" not in identity
            else x509.UniformResourceIdentifier(identity)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.inter_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + timedelta(minutes=10))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.inter_key.public_key()),
                False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), True)
        )
        values = {oids.ISSUER_V1: issuer, oids.ISSUER_V2: issuer, **(extra or {})}
        for arc, value in sorted(values.items()):
            builder = builder.add_extension(
                x509.UnrecognizedExtension(
                    oids.fulcio_oid(arc), oids.encode_extension_value(arc, value)
                ),
                False,
            )
        precert = builder.sign(self.inter_key, hashes.SHA256())
        sct = self._sct(precert.tbs_certificate_bytes, not_before, sct_key or self.ct_key)
        sct_list = struct.pack(">H", len(sct)) + sct
        final = builder.add_extension(
            x509.UnrecognizedExtension(
                SCT_OID, _der_octet_string(struct.pack(">H", len(sct_list)) + sct_list)
            ),
            False,
        ).sign(self.inter_key, hashes.SHA256())
        assert final.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        return final

    def _sct(self, tbs: bytes, when: datetime, key: ec.EllipticCurvePrivateKey) -> bytes:
        millis = (when - EPOCH) // timedelta(milliseconds=1)
        issuer_hash = hashlib.sha256(_spki(self.inter_key.public_key())).digest()
        signed = (
            b"\x00\x00"
            + struct.pack(">Q", millis)
            + b"\x00\x01"
            + issuer_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + b"\x00\x00"
        )
        signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
        log_id = hashlib.sha256(_spki(key.public_key())).digest()
        return (
            b"\x00"
            + log_id
            + struct.pack(">Q", millis)
            + b"\x00\x00"
            + b"\x04\x03"
            + struct.pack(">H", len(signature))
            + signature
        )

    def log_entry(
        self, body: bytes, *, integrated_at: datetime, index: int = 3, size: int = 6
    ) -> dict:
        """A Rekor v1 TransparencyLogEntry for `body` at `index` in a tree of `size`."""
        leaves = [hashlib.sha256(b"\x00" + f"filler {i}".encode()).digest() for i in range(size)]
        leaves[index] = hashlib.sha256(b"\x00" + body).digest()
        root = _mth(leaves)
        checkpoint = sign_checkpoint(
            Checkpoint(f"{LOG_HOST} - 1", size, root), name=LOG_HOST, private_key=self.log_key
        )
        integrated = int(integrated_at.timestamp())
        payload = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated,
                "logID": self.log_id.hex(),
                "logIndex": index,
            }
        )
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {
                "signedEntryTimestamp": _b64(self.log_key.sign(payload, ec.ECDSA(hashes.SHA256())))
            },
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in _path(index, leaves)],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }

    def sign(
        self,
        artifact: bytes,
        *,
        identity: str = "alice@example.com",
        issuer: str = "https://issuer.keyless.test",
        signed_at: datetime | None = None,
        extra: dict[int, str] | None = None,
        sct_key: ec.EllipticCurvePrivateKey | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> dict:
        """A v0.3 message-signature bundle over `artifact`, logged one minute after issuance."""
        issued = signed_at or self.start + timedelta(days=1)
        key = signing_key or ec.generate_private_key(ec.SECP256R1())
        leaf = self.issue_leaf(
            key, identity=identity, issuer=issuer, not_before=issued, extra=extra, sct_key=sct_key
        )
        digest = hashlib.sha256(artifact).digest()
        signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                    "signature": {
                        "content": _b64(signature),
                        "publicKey": {
                            "content": _b64(leaf.public_bytes(serialization.Encoding.PEM))
                        },
                    },
                },
            }
        )
        return {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(leaf.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [self.log_entry(body, integrated_at=issued + timedelta(minutes=1))],
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                "signature": _b64(signature),
            },
        }


def dumps(doc: dict) -> str:
    """JSON text of a forged document."""
    return json.dumps(doc)
