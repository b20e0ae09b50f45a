"""Signing container images: resolve a reference to a manifest digest once, sign, store.

What is signed is always a manifest digest, never a tag: a tag is resolved once here and the
digest is what every signature names. Per digest two signatures are made with one ephemeral
key (`client.sign.signer.EphemeralSigner`):
- cosign v3's: a DSSE in-toto statement (predicate `https://sigstore.dev/cosign/sign/v1`,
  subject = the digest) in a bundle v0.3, pushed as an OCI 1.1 referrer of the image (or into
  the `sha256-<hex>` fallback index when the registry has no referrers API);
- cosign v2's, unless turned off: the simple-signing payload, signed as a message and logged as
  `hashedrekord`, appended to the `sha256-<hex>.sig` manifest (existing signatures kept).

Everything is signed and logged before anything is written to the registry, so a CA or log
failure leaves the registry untouched. Storage itself is several registry writes; a failure
part-way leaves the ones already made (registries have no transactions).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import serialization

from keyless.client.oci import (
    Descriptor,
    LegacySignature,
    Reference,
    RegistryClient,
    append_legacy_signature,
    push_bundle,
    simple_signing_payload,
)
from keyless.client.oci.descriptors import check_digest, tag_for_digest
from keyless.client.oci.errors import InvalidDigestError, RegistryProtocolError
from keyless.client.oci.registry import parse_index_manifests
from keyless.client.oci.signatures import COSIGN_SIGN_PREDICATE, LEGACY_SUFFIX
from keyless.client.sign.signer import EphemeralSigner, SigningResult
from keyless.client.verify.dsse import INTOTO_PAYLOAD_TYPE

INTOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
# An index with more platforms than this is refused by --recursive rather than signed blindly.
MAX_RECURSIVE_MANIFESTS = 128


@dataclass(frozen=True)
class ImageTarget:
    """One manifest to sign: where it lives, its descriptor, and its platform if from an index."""

    reference: Reference
    descriptor: Descriptor
    platform: str | None = None

    @property
    def digest(self) -> str:
        return self.descriptor.digest


@dataclass(frozen=True)
class SignedImage:
    """The signatures made for one manifest digest, and where they were stored."""

    target: ImageTarget
    bundle: SigningResult
    legacy: SigningResult | None
    referrer: Descriptor
    stored_via: str
    legacy_tag: str | None


def cosign_statement(digest: str) -> bytes:
    """cosign v3's image-signature statement: in-toto v1, subject = the manifest digest.

    Raises:
        InvalidDigestError: `digest` is not a sha256 digest (cosign signs sha256 only).
    """
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256":
        raise InvalidDigestError(f"only sha256 image digests can be signed, not {digest[:80]!r}")
    check_digest(digest)
    statement = {
        "_type": INTOTO_STATEMENT_V1,
        "subject": [{"digest": {"sha256": hex_digest}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return json.dumps(statement, separators=(",", ":")).encode()


def resolve_targets(
    client: RegistryClient, image: Reference, *, recursive: bool
) -> list[ImageTarget]:
    """The manifests to sign: the one `image` names, then, with `recursive`, an index's children.

    The tag (if any) is resolved exactly once; children are fetched by digest so each is
    known to exist and to hash to what the index says.

    Raises:
        RegistryError: the image or a child cannot be fetched, or the index is too large.
    """
    manifest = client.resolve(image)
    top = ImageTarget(image.with_digest(manifest.digest), manifest.descriptor)
    if not recursive or not manifest.is_index:
        return [top]
    name = f"{image.name}@{manifest.digest}"
    children = parse_index_manifests(manifest.json(), what=f"index {name}")
    if len(children) > MAX_RECURSIVE_MANIFESTS:
        raise RegistryProtocolError(
            f"index {name} lists {len(children)} manifests; --recursive signs at most "
            f"{MAX_RECURSIVE_MANIFESTS}"
        )
    targets = [top]
    for child in children:
        fetched = client.get_manifest(image.with_digest(child.digest))
        targets.append(
            ImageTarget(
                image.with_digest(fetched.digest), fetched.descriptor, _platform(child.platform)
            )
        )
    return targets


def sign_image(
    client: RegistryClient,
    targets: list[ImageTarget],
    *,
    signer: EphemeralSigner,
    legacy_tag: bool,
    created_at: datetime,
) -> list[SignedImage]:
    """Sign every target, then store the signatures in the registry.

    Raises:
        ServiceRefusedError, NetworkError: the log refused or failed (nothing was stored).
        UnverifiedBundleError: a new bundle does not verify against the signer's trusted root
            (nothing was stored; the error carries the bundle).
        RegistryError: storing failed.
    """
    signed: list[tuple[ImageTarget, SigningResult, SigningResult | None, bytes]] = []
    for target in targets:
        statement = cosign_statement(target.digest)
        digest_bytes = bytes.fromhex(target.digest.partition(":")[2])
        bundle = signer.sign_dsse(
            statement, payload_type=INTOTO_PAYLOAD_TYPE, subject_sha256=digest_bytes
        )
        legacy = None
        payload = b""
        if legacy_tag:
            payload = simple_signing_payload(target.reference.name, target.digest)
            legacy = signer.sign_digest(hashlib.sha256(payload).digest())
        signed.append((target, bundle, legacy, payload))
    results = []
    for target, bundle, legacy, payload in signed:
        referrer, stored_via = push_bundle(
            client,
            target.reference,
            target.descriptor,
            bundle.to_json().encode(),
            created_at=created_at,
        )
        tag = None
        if legacy is not None:
            append_legacy_signature(
                client, target.reference, target.digest, legacy_signature(signer, legacy, payload)
            )
            tag = tag_for_digest(target.digest, LEGACY_SUFFIX)
        results.append(SignedImage(target, bundle, legacy, referrer, stored_via, tag))
    return results


def legacy_signature(
    signer: EphemeralSigner, result: SigningResult, payload: bytes
) -> LegacySignature:
    """The cosign v2 layer for a message signature over `payload` (rekor-bundle.md §7.1)."""
    entry = result.entry
    if entry is None or entry.inclusion_promise is None or entry.integrated_time is None:
        raise RuntimeError("a cosign v2 signature needs the log's signed entry timestamp")
    rekor_bundle = {
        "SignedEntryTimestamp": _b64(entry.inclusion_promise.signed_entry_timestamp),
        "Payload": {
            "body": _b64(entry.canonicalized_body),
            "integratedTime": int(entry.integrated_time),
            "logIndex": int(entry.log_index),
            "logID": entry.log_id.key_id.hex(),
        },
    }
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in signer.chain[1:])
    return LegacySignature(
        payload=payload,
        signature=_b64(result.bundle.signature),
        certificate=signer.leaf_pem.decode(),
        chain=chain.decode() or None,
        rekor_bundle=json.dumps(rekor_bundle, separators=(",", ":")),
    )


def _platform(platform: object) -> str | None:
    """`os/architecture[/variant]` of an index entry, for messages."""
    if not isinstance(platform, dict):
        return None
    parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
    return "/".join(p for p in parts if isinstance(p, str) and p) or None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
