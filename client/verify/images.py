"""Verifying container images: find the signatures attached to a manifest digest, judge each.

A tag is resolved to a digest once; everything after is about that digest. Signatures are
found in all three places `client.oci.discovery` reads (referrers API, `sha256-<hex>` fallback
index, cosign v2 `sha256-<hex>.sig` tag). Each one is verified in full (chain, SCT, log
evidence, signature) before the identity policy is applied, so that when no signature is by
the expected identity the error can name who really signed, and never names a forger.

A cosign v2 signature carries only the log's signed entry timestamp, not the inclusion proof
and checkpoint a bundle needs; `client.verify.cosign_legacy` fetches its entry from the log
named in the trusted root and makes a bundle of it, checked like any other.

By key (`keyless verify --key`, a policy's `key:` authority) any one of several keys may have
signed, and each passing signature names the key that verified it; where the log may be
ignored, a signature that verifies with a key counts without log evidence
(`client.verify.key_only`).

The image verifies when at least one signature is valid, names this digest, and satisfies the
policy. Otherwise the failure says why, most useful first: signed only by other identities,
signatures for a different digest, only invalid signatures, or no signatures at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keyless.client.bundle import Bundle
from keyless.client.errors import ClientError
from keyless.client.oci import ImageSignatures, Reference, RegistryClient, find_signatures
from keyless.client.oci.signatures import (
    COSIGN_PAYLOAD_TYPE,
    COSIGN_SIGN_PREDICATE,
)
from keyless.client.verify import VerificationError, Verifier
from keyless.client.verify.cosign_legacy import (
    LogEntrySource,
    RekorBundle,
    RekorEntries,
    legacy_bundle,
    read_simple_signing,
    rekor_bundle,
)
from keyless.client.verify.dsse import INTOTO_PAYLOAD_TYPE
from keyless.client.verify.key_only import check_bundle_by_key, check_payload_by_key
from keyless.client.verify.keys import verify_with_any_key
from keyless.client.verify.policy import certificate_identities, certificate_issuer
from keyless.core.encoding import format_rfc3339
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from keyless.client.keys import VerifierKey
    from keyless.client.oci import BundleReferrer, LegacySignature
    from keyless.client.trust import TrustedRoot
    from keyless.client.verify import Policy

# Where a signature was found: `referrers-api` and `fallback-tag` (cli.oci), or this.
SOURCE_LEGACY_TAG = "legacy-tag"

# Why a found signature did not count.
WRONG_DIGEST = "wrong-digest"
WRONG_IDENTITY = "wrong-identity"
INVALID = "invalid"


class ImageVerificationError(ClientError):
    """No signature on the image satisfies the policy; `reason` says which case it is.

    `outcome` holds the signatures found and why each was rejected (None when none was found).
    """

    outcome: ImageVerification | None = None


@dataclass(frozen=True)
class VerifiedSignature:
    """One signature that passed: who signed which digest, and where it was logged and found."""

    digest: str
    docker_reference: str
    signature_type: str
    identity: str | None
    issuer: str | None
    log_index: int | None  # None: judged by its key alone, no log evidence checked
    source: str
    log_url: str = ""
    entry_kind: str = ""
    signed_times: tuple[datetime, ...] = ()
    key: str | None = None  # the key reference that verified it (key-signed images)
    # What cosign prints of it (`keyless verify -o cosign`), beyond the digest and type: the
    # verified signing certificate; for a cosign v2 signature the docker-reference and
    # `optional` its payload claims, for a bundle its statement subject's annotations; and
    # the log's signed entry timestamp, in cosign v2's annotation shape.
    certificate: x509.Certificate | None = None
    claimed_reference: str | None = None
    annotations: Mapping[str, Any] | None = None
    rekor_bundle: RekorBundle | None = None

    def to_json(self) -> dict[str, Any]:
        """One entry of `keyless verify -o json`'s `signatures` (the README documents it)."""
        return {
            "identity": self.identity,
            "issuer": self.issuer,
            "log": {"url": self.log_url, "index": self.log_index, "kind": self.entry_kind},
            "signedTimes": [format_rfc3339(t) for t in self.signed_times],
            "type": self.signature_type,
            "source": self.source,
            "key": self.key,
        }


@dataclass(frozen=True)
class RejectedSignature:
    """One signature that did not count, and why (`WRONG_DIGEST`, `WRONG_IDENTITY`, `INVALID`)."""

    source: str
    kind: str
    detail: str
    signer: str | None = None
    identity: str | None = None
    issuer: str | None = None


@dataclass(frozen=True)
class ImageVerification:
    """The outcome for one digest: signatures that passed, the rest, and skipped entries."""

    reference: Reference
    digest: str
    verified: tuple[VerifiedSignature, ...]
    rejected: tuple[RejectedSignature, ...]
    problems: tuple[str, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [signature.to_json() for signature in self.verified]


def verify_image(
    client: RegistryClient,
    image: Reference,
    *,
    trusted_root: TrustedRoot,
    policy: Policy,
    now: datetime,
    entries: LogEntrySource | None = None,
) -> ImageVerification:
    """Verify that `image` (tag resolved once) carries a valid signature satisfying `policy`.

    Raises:
        ImageVerificationError: no signature passed; the message names the case.
        RegistryError: the image cannot be resolved, or the registry refused or failed.
    """
    pinned = image.with_digest(client.resolve(image).digest)
    found = find_signatures(client, pinned, pinned.digest or "")
    return check_signatures(
        pinned,
        found,
        verifier=Verifier(trusted_root),
        trusted_root=trusted_root,
        policy=policy,
        now=now,
        entries=entries,
    )


def check_signatures(
    pinned: Reference,
    found: ImageSignatures,
    *,
    verifier: Verifier,
    trusted_root: TrustedRoot,
    now: datetime,
    policy: Policy | None = None,
    keys: Sequence[VerifierKey] = (),
    ignore_tlog: bool = False,
    bundles_only: bool = False,
    first_only: bool = False,
    require_timestamp: bool = False,
    entries: LogEntrySource | None = None,
) -> ImageVerification:
    """Judge the signatures found for the digest `pinned` names, by identity or by key.

    Exactly one of `policy` (certificates, by identity) and `keys` (managed keys: any one of
    them may have signed) is given. With `keys` and `ignore_tlog`, a signature whose full
    verification fails still counts if it verifies with a key and names the digest
    (`client.verify.key_only`; cosign's `--insecure-ignore-tlog`, policy-controller's key
    authorities without `ctlog`). `bundles_only` ignores cosign's legacy `.sig` signatures.
    `first_only` stops at the first signature that passes (bundles are tried first: they need
    no log lookup), for callers that need a verdict rather than the list. `require_timestamp`
    counts only signatures with an RFC 3161 timestamp from a trusted TSA. `verifier` must be
    built over `trusted_root`; callers that judge many images reuse one.

    Raises:
        ImageVerificationError: no signature passed; `outcome` lists what was found.
    """
    if (policy is None) == (not keys):
        raise TypeError("check_signatures needs exactly one of policy and keys")
    digest = pinned.digest
    if digest is None:
        raise TypeError("check_signatures needs a reference pinned to a digest")
    legacy = () if bundles_only else found.legacy
    if not found.bundles and not legacy:
        only_legacy = bundles_only and bool(found.legacy)
        raise ImageVerificationError(
            f"no signatures found for {digest}"
            + (" (only cosign legacy signatures, and bundles are required)" if only_legacy else ""),
            reason=Reason.ONLY_LEGACY_SIGNATURES if only_legacy else Reason.NO_SIGNATURES,
            hint=_skipped_hint(found.problems)
            or f"sign it with: keyless sign {pinned.name}@{digest}",
        )
    judge = _Judge(
        digest=digest,
        verifier=verifier,
        trusted_root=trusted_root,
        policy=policy,
        keys=tuple(keys),
        # A key-only signature has no signed time, so a required timestamp rules it out.
        ignore_tlog=ignore_tlog and not require_timestamp,
        now=now,
        require_timestamp=require_timestamp,
        entries=entries or RekorEntries(),
        docker_reference=pinned.name,
    )
    for referrer in found.bundles:
        if first_only and judge.verified:
            break
        judge.bundle(referrer)
    for signature in legacy:
        if first_only and judge.verified:
            break
        judge.legacy(signature)
    outcome = ImageVerification(
        pinned, digest, tuple(judge.verified), tuple(judge.rejected), found.problems
    )
    if not outcome.verified:
        error = _failure(outcome)
        error.outcome = outcome
        raise error
    return outcome


class _AnyIdentity:
    """A policy that accepts every certificate: used only so that the cryptographic checks run
    in full before the real policy is applied to a signature already known to be genuine."""

    def check(self, cert: x509.Certificate) -> None:
        return None


@dataclass
class _Judge:
    """Sorts the signatures of one digest into verified and rejected."""

    digest: str
    verifier: Verifier
    trusted_root: TrustedRoot
    policy: Policy | None
    keys: tuple[VerifierKey, ...]
    ignore_tlog: bool
    now: datetime
    require_timestamp: bool
    entries: LogEntrySource
    docker_reference: str

    def __post_init__(self) -> None:
        self.verified: list[VerifiedSignature] = []
        self.rejected: list[RejectedSignature] = []
        self._sha256 = bytes.fromhex(self.digest.partition(":")[2])

    def bundle(self, referrer: BundleReferrer) -> None:
        """Judge a Sigstore bundle found as a referrer (API or fallback index)."""
        source = referrer.source
        if referrer.subject_digest not in (None, self.digest):
            self._reject(source, WRONG_DIGEST, f"it is attached to {referrer.subject_digest}")
            return
        try:
            bundle = Bundle.from_json(referrer.bundle)
        except VerificationError as exc:
            # A key-signed bundle with no log entry and no timestamp does not load as a
            # bundle to verify in full; judged by its key alone, it may still count.
            self._by_key_alone(
                source,
                exc.detail,
                lambda key: check_bundle_by_key(
                    referrer.bundle,
                    sha256=self._sha256,
                    key=key,
                    predicate_type=COSIGN_SIGN_PREDICATE,
                ),
                annotations=self._subject_annotations(referrer.bundle),
            )
            return
        signature_type = COSIGN_SIGN_PREDICATE
        annotations: Mapping[str, Any] = {}
        if bundle.envelope is not None:
            # An unreadable statement is left to the verifier, which names the defect.
            subjects, predicate = _statement(bundle.envelope.payload_type, bundle.envelope.payload)
            if subjects is not None and self.digest not in subjects:
                self._reject(source, WRONG_DIGEST, f"it signs {', '.join(subjects) or 'nothing'}")
                return
            if subjects is not None:
                annotations = subjects[self.digest]
            if subjects is not None and predicate != COSIGN_SIGN_PREDICATE:
                self._reject(
                    source, INVALID, f"it is an attestation ({predicate}), not a signature"
                )
                return
        else:
            digest = bundle.message_digest
            if digest is not None and digest.digest != self._sha256:
                self._reject(source, WRONG_DIGEST, f"it signs sha256:{digest.digest.hex()}")
                return
            signature_type = "message-signature"
        raw = referrer.bundle
        self._judge(
            bundle,
            source,
            signature_type,
            self._sha256,
            by_key=lambda key: check_bundle_by_key(
                raw, sha256=self._sha256, key=key, predicate_type=COSIGN_SIGN_PREDICATE
            ),
            annotations=annotations,
        )

    def _subject_annotations(self, raw: bytes) -> Mapping[str, Any]:
        """The annotations of this digest's subject in a bundle's statement, read from its
        JSON ({} when there is none to read; they count only if the key check passes)."""
        import base64
        import binascii

        try:
            envelope = json.loads(raw)["dsseEnvelope"]
            payload = base64.b64decode(envelope["payload"], validate=True)
            subjects, _ = _statement(envelope["payloadType"], payload)
        except (ValueError, RecursionError, KeyError, TypeError, binascii.Error):
            return {}
        return (subjects or {}).get(self.digest, {})

    def legacy(self, signature: LegacySignature) -> None:
        """Judge a cosign v2 simple-signing signature from the `.sig` tag."""
        source = SOURCE_LEGACY_TAG

        def by_key(key: PublicKeyTypes) -> str:
            check_payload_by_key(signature.payload, _signature_bytes(signature), key=key)
            return COSIGN_PAYLOAD_TYPE

        # The payload is read first, outside the fallback below: a key signs more than image
        # payloads (`cosign sign-blob`), and only a simple-signing payload naming this digest
        # may count, whatever the key says.
        try:
            claims = read_simple_signing(signature.payload)
        except ClientError as exc:
            self._reject(source, INVALID, exc.message)
            return
        if claims.digest != self.digest:
            self._reject(source, WRONG_DIGEST, f"its payload names {claims.digest}")
            return
        claimed = {
            "claimed_reference": claims.docker_reference,
            "annotations": claims.optional,
        }
        try:
            if signature.certificate is None and not self.keys:
                # By identity, a managed key's signature cannot pass: no need to fetch its entry.
                raise ClientError("it is signed with a managed key, not a certificate")
            if signature.certificate is not None and self.keys:
                raise ClientError("it carries a signing certificate, not a managed key's signature")
            bundle = legacy_bundle(signature, trusted_root=self.trusted_root, entries=self.entries)
        except (VerificationError, ClientError) as exc:
            if signature.certificate is None:
                self._by_key_alone(source, exc.message, by_key, **claimed)
            else:
                self._reject(source, INVALID, exc.message)
            return
        sha256 = hashlib.sha256(signature.payload).digest()
        self._judge(
            bundle,
            source,
            COSIGN_PAYLOAD_TYPE,
            sha256,
            by_key=by_key,
            rekor_annotation=signature.rekor_bundle,
            **claimed,
        )

    def _judge(
        self,
        bundle: Bundle,
        source: str,
        signature_type: str,
        sha256: bytes,
        *,
        by_key: Callable[[PublicKeyTypes], str],
        claimed_reference: str | None = None,
        annotations: Mapping[str, Any] | None = None,
        rekor_annotation: str | None = None,
    ) -> None:
        matched: VerifierKey | None = None
        try:
            if self.keys:
                result, matched = verify_with_any_key(
                    self.verifier, bundle, keys=self.keys, sha256=sha256, now=self.now
                )
            else:
                result = self.verifier.verify(
                    bundle, sha256=sha256, policy=_AnyIdentity(), now=self.now
                )
        except VerificationError as exc:
            self._by_key_alone(
                source,
                exc.message,
                by_key,
                claimed_reference=claimed_reference,
                annotations=annotations,
            )
            return
        # The verifier checked each timestamp against the trusted TSAs; a failed one is only
        # listed in `timestamp_failures`, so count those that verified.
        if self.require_timestamp and len(bundle.timestamps) <= len(result.timestamp_failures):
            detail = "; ".join(result.timestamp_failures)
            self._reject(
                source,
                INVALID,
                "it has no verified RFC 3161 timestamp, and the policy requires one"
                + (f" ({detail})" if detail else ""),
            )
            return
        if self.policy is not None:
            try:
                self.policy.check(bundle.leaf)
            except VerificationError as exc:
                self.rejected.append(
                    RejectedSignature(
                        source,
                        WRONG_IDENTITY,
                        exc.detail,
                        _describe_signer(bundle.leaf),
                        result.identity,
                        result.issuer,
                    )
                )
                return
        self.verified.append(
            VerifiedSignature(
                digest=self.digest,
                docker_reference=self.docker_reference,
                signature_type=signature_type,
                identity=result.identity,
                issuer=result.issuer,
                log_index=result.log_index,
                source=source,
                log_url=result.log_url,
                entry_kind=result.entry_kind,
                signed_times=result.signed_times,
                key=matched.reference if matched is not None else None,
                certificate=bundle.leaf,
                claimed_reference=claimed_reference,
                annotations=annotations,
                rekor_bundle=self._rekor_bundle(bundle, rekor_annotation),
            )
        )

    def _rekor_bundle(self, bundle: Bundle, annotation: str | None) -> RekorBundle | None:
        if bundle.entry is None:
            return None
        log = self.trusted_root.tlogs.get(bundle.entry.log_id.key_id)
        return rekor_bundle(bundle.entry, log=log, annotation=annotation)

    def _by_key_alone(
        self,
        source: str,
        detail: str,
        check: Callable[[PublicKeyTypes], str],
        *,
        claimed_reference: str | None = None,
        annotations: Mapping[str, Any] | None = None,
    ) -> None:
        """Count a signature whose full verification failed (for `detail`) if the log may be
        ignored and it verifies with one of the keys; else reject it for `detail`."""
        if self.keys and self.ignore_tlog:
            for key in self.keys:
                try:
                    signature_type = check(key.public_key)
                except VerificationError:
                    continue
                self.verified.append(
                    VerifiedSignature(
                        digest=self.digest,
                        docker_reference=self.docker_reference,
                        signature_type=signature_type,
                        identity=None,
                        issuer=None,
                        log_index=None,
                        source=source,
                        key=key.reference,
                        claimed_reference=claimed_reference,
                        annotations=annotations,
                    )
                )
                return
        self._reject(source, INVALID, detail)

    def _reject(self, source: str, kind: str, detail: str) -> None:
        self.rejected.append(RejectedSignature(source, kind, detail))


def _signature_bytes(signature: LegacySignature) -> bytes:
    """The raw bytes of a cosign v2 signature annotation (VerificationError if not base64)."""
    import base64
    import binascii

    try:
        return base64.b64decode(signature.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(
            reason=Reason.SIGNATURE, detail="the signature annotation is not base64"
        ) from exc


def _failure(outcome: ImageVerification) -> ImageVerificationError:
    """The error for an image with signatures of which none passed, most useful case first."""
    by_kind: dict[str, list[RejectedSignature]] = {}
    for rejected in outcome.rejected:
        by_kind.setdefault(rejected.kind, []).append(rejected)
    digest = outcome.digest
    others = _others_hint(outcome, exclude=WRONG_IDENTITY)
    if WRONG_IDENTITY in by_kind:
        wrong = by_kind[WRONG_IDENTITY]
        signers = sorted({r.signer for r in wrong if r.signer})
        return ImageVerificationError(
            f"none of the signatures on {digest} is by the expected identity "
            f"({wrong[0].detail}); signed by: {', '.join(signers)}",
            reason=Reason.IDENTITY_MISMATCH,
            hint=others,
        )
    if WRONG_DIGEST in by_kind:
        wrong = by_kind[WRONG_DIGEST]
        return ImageVerificationError(
            f"the signatures found for {digest} are for a different digest "
            f"({wrong[0].source}: {wrong[0].detail})",
            reason=Reason.WRONG_DIGEST,
            hint=_others_hint(outcome, exclude=WRONG_DIGEST),
        )
    invalid = by_kind.get(INVALID, [])
    first = invalid[0] if invalid else None
    return ImageVerificationError(
        f"no valid signature for {digest}: {len(invalid)} found, none verifies"
        + (f" ({first.source}: {first.detail})" if first else ""),
        reason=Reason.INVALID_SIGNATURES,
        hint=_skipped_hint(outcome.problems),
    )


def _others_hint(outcome: ImageVerification, *, exclude: str) -> str | None:
    rest = [r for r in outcome.rejected if r.kind != exclude]
    notes = [f"{r.source}: {r.detail}" for r in rest[:3]] + list(outcome.problems[:3])
    return ("also found: " + "; ".join(notes)) if notes else None


def _skipped_hint(problems: tuple[str, ...]) -> str | None:
    return ("skipped unreadable entries: " + "; ".join(problems[:3])) if problems else None


def _describe_signer(leaf: x509.Certificate | None) -> str | None:
    if leaf is None:
        return None
    identities = certificate_identities(leaf)
    identity = identities[0] if identities else "(no identity)"
    return f"{identity} (issuer {certificate_issuer(leaf) or 'unknown'})"


def _statement(
    payload_type: str, payload: bytes
) -> tuple[dict[str, dict[str, Any]] | None, str | None]:
    """The sha256 subjects of an in-toto statement (`sha256:<hex>`, each with its annotations:
    {} when it has none, as cosign reads them), and its predicate type.

    (None, None) when the payload is not a readable statement: the verifier then refuses it
    with its own named check.
    """
    if payload_type != INTOTO_PAYLOAD_TYPE:
        return None, None
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None
    if not isinstance(statement, dict) or not isinstance(statement.get("subject"), list):
        return None, None
    subjects: dict[str, dict[str, Any]] = {}
    for subject in statement["subject"]:
        if not isinstance(subject, dict):
            continue
        digest = subject.get("digest")
        value = digest.get("sha256") if isinstance(digest, dict) else None
        annotations = subject.get("annotations")
        if isinstance(value, str):
            subjects.setdefault(
                f"sha256:{value.lower()}", annotations if isinstance(annotations, dict) else {}
            )
    predicate = statement.get("predicateType")
    return subjects, predicate if isinstance(predicate, str) else None
