"""Attestations on container images, stored and found as cosign v3 does.

`attest_image` signs an in-toto statement whose subject is the manifest digest (a tag is
resolved once) and pushes the bundle as an OCI 1.1 referrer with the predicate type annotated
(`client.oci.push_bundle`), falling back to the `sha256-<hex>` index on registries without the
referrers API. `verify_image_attestations` reads the same places back: every bundle referrer
is verified in full, then kept only if it is an attestation of the wanted type by the wanted
identity and (when a Rego policy is given) allowed by it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keyless.client.attest.statement import (
    VerifiedAttestation,
    check_type,
    most_telling,
    statement,
    statement_of,
    verify_attestation,
)
from keyless.client.bundle import Bundle
from keyless.client.errors import ClientError
from keyless.client.oci import Reference, RegistryClient, find_signatures, push_bundle
from keyless.client.oci.signatures import COSIGN_SIGN_PREDICATE
from keyless.client.verify import VerificationError, Verifier
from keyless.client.verify.dsse import INTOTO_PAYLOAD_TYPE
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from keyless.client.keys import VerifierKey
    from keyless.client.oci import ImageSignatures
    from keyless.client.sign.signer import EphemeralSigner, SigningResult
    from keyless.client.trust import TrustedRoot
    from keyless.client.verify import Policy


class AttestationVerificationError(ClientError):
    """No attestation on the image passed; `reason` names the check that stopped the best one."""


@dataclass(frozen=True)
class AttestedImage:
    """One attestation made for an image, and where it was stored."""

    reference: Reference
    digest: str
    result: SigningResult
    referrer_digest: str
    stored_via: str


def attest_image(
    client: RegistryClient,
    image: Reference,
    *,
    signer: Callable[[], EphemeralSigner],
    predicate_type: str,
    predicate: dict[str, Any],
    created_at: datetime,
    subject_name: str | None = None,
) -> AttestedImage:
    """Attest the manifest `image` names and store the bundle as a referrer.

    The subject is named `subject_name`, by default the image's repository
    (`registry/repository`), as cosign names it.

    `signer` is called once the image is resolved, so a registry problem costs no login, no
    certificate and no log entry.

    Raises:
        RegistryError: the image cannot be resolved, or storing failed.
        ServiceRefusedError, NetworkError, UnverifiedBundleError: as for signing.
    """
    manifest = client.resolve(image)
    digest = manifest.digest
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256":
        raise ClientError(f"only sha256 image digests can be attested, not {digest[:80]!r}")
    payload = statement([(subject_name or image.name, hex_digest)], predicate_type, predicate)
    result = signer().sign_dsse(
        payload, payload_type=INTOTO_PAYLOAD_TYPE, subject_sha256=bytes.fromhex(hex_digest)
    )
    pinned = image.with_digest(digest)
    referrer, stored_via = push_bundle(
        client,
        pinned,
        manifest.descriptor,
        result.to_json().encode(),
        created_at=created_at,
        predicate_type=predicate_type,
    )
    return AttestedImage(pinned, digest, result, referrer.digest, stored_via)


@dataclass(frozen=True)
class ImageAttestations:
    """The attestations on one digest that passed every check."""

    reference: Reference
    digest: str
    verified: tuple[VerifiedAttestation, ...]


def verify_image_attestations(
    client: RegistryClient,
    image: Reference,
    *,
    trusted_root: TrustedRoot,
    policy: Policy | None = None,
    keys: Sequence[VerifierKey] = (),
    predicate_type: str | None,
    now: datetime,
    rego: Callable[[dict[str, Any]], None] | None = None,
) -> ImageAttestations:
    """The attestations on `image` (tag resolved once) that verify, match and are allowed.

    `rego`, when given, raises VerificationError("policy") for a statement it does not allow.

    Raises:
        AttestationVerificationError: none passed; the message names the check.
        RegistryError: the image cannot be resolved, or the registry refused or failed.
    """
    manifest = client.resolve(image)
    digest = manifest.digest
    pinned = image.with_digest(digest)
    found = find_signatures(client, pinned, digest)
    verified = judge_attestations(
        found,
        digest,
        verifier=Verifier(trusted_root),
        policy=policy,
        keys=keys,
        predicate_type=predicate_type,
        now=now,
        rego=rego,
    )
    return ImageAttestations(pinned, digest, verified)


def judge_attestations(
    found: ImageSignatures,
    digest: str,
    *,
    verifier: Verifier,
    policy: Policy | None = None,
    keys: Sequence[VerifierKey] = (),
    predicate_type: str | None,
    now: datetime,
    rego: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[VerifiedAttestation, ...]:
    """The attestations among the bundles found for `digest` that verify in full, are of
    `predicate_type` (any, if None), by an identity `policy` accepts (or signed with any one of
    `keys`), and that `rego` allows.

    Raises:
        AttestationVerificationError: none passed; the message names the check.
    """
    sha256 = bytes.fromhex(digest.partition(":")[2])
    verified: list[VerifiedAttestation] = []
    failures: list[VerificationError] = []
    types: set[str] = set()
    for referrer in found.bundles:
        try:
            bundle = Bundle.from_json(referrer.bundle)
            claimed = statement_of(bundle)
        except VerificationError as exc:
            failures.append(exc)
            continue
        if claimed["predicateType"] == COSIGN_SIGN_PREDICATE:
            continue  # a signature, not an attestation
        types.add(claimed["predicateType"])
        try:
            check_type(claimed, predicate_type)
            result = verify_attestation(
                verifier,
                bundle,
                sha256=sha256,
                policy=policy,
                keys=keys,
                predicate_type=predicate_type,
                now=now,
            )
            if rego is not None:
                rego(result.statement)
        except VerificationError as exc:
            failures.append(exc)
            continue
        verified.append(dataclasses.replace(result, source=referrer.source))
    if not verified:
        raise _failure(digest, failures, types, predicate_type, found.problems)
    return tuple(verified)


def _failure(
    digest: str,
    failures: list[VerificationError],
    types: set[str],
    predicate_type: str | None,
    problems: tuple[str, ...],
) -> AttestationVerificationError:
    skipped = ("skipped: " + "; ".join(problems[:3])) if problems else None
    if not failures:
        return AttestationVerificationError(
            f"no attestations found for {digest}", reason=Reason.NO_ATTESTATIONS, hint=skipped
        )
    first = most_telling(failures)
    if first.check == "type":
        return AttestationVerificationError(
            f"verification failed (type): none of the attestations on {digest} is of "
            f"predicate type {predicate_type!r}; found: {', '.join(sorted(types))}",
            reason=Reason.TYPE,
            hint=skipped,
        )
    return AttestationVerificationError(
        f"verification failed ({first.check}): no attestation on {digest} passed "
        f"({len(failures)} checked): {first.detail}",
        reason=first.check,
        hint=first.hint or skipped,
    )
