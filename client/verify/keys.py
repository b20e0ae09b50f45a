"""Managed public keys (`--key`): read a PEM public key, bounded and with a clear error, and
verify a bundle with any one of several keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.client.verify.errors import VerificationError
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from keyless.client.bundle import Bundle
    from keyless.client.keys import VerifierKey
    from keyless.client.verify.artifact import Artifact
    from keyless.client.verify.verifier import VerificationResult, Verifier

MAX_KEY_BYTES = 64 * 1024


def load_public_key(path: str | os.PathLike[str]) -> PublicKeyTypes:
    """Read a PEM `PUBLIC KEY` file (ECDSA or RSA).

    Raises:
        VerificationError("key"): unreadable, oversized, not PEM, or an unsupported key type.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise VerificationError(
            reason=Reason.KEY, detail=f"cannot read key {path}: {exc.strerror}"
        ) from exc
    if len(data) > MAX_KEY_BYTES:
        raise VerificationError(
            reason=Reason.KEY, detail=f"key file {path} is larger than {MAX_KEY_BYTES} bytes"
        )
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        raise VerificationError(
            reason=Reason.KEY, detail=f"{path} is not a valid PEM public key"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise VerificationError(reason=Reason.KEY, detail=f"{path} holds an unsupported key type")
    return key


def verify_with_any_key(
    verifier: Verifier,
    bundle: Bundle,
    *,
    keys: Sequence[VerifierKey],
    now: datetime,
    sha256: bytes | None = None,
    artifact: Artifact | None = None,
) -> tuple[VerificationResult, VerifierKey]:
    """Verify a managed-key bundle with the first of `keys` that verifies it (a rotation window:
    any one key may have signed); returns the result and the key that matched.

    Raises:
        VerificationError: no key verifies it; with one key, that key's own failure, else the
            first failure with how many keys were tried.
    """
    if not keys:
        raise TypeError("verify_with_any_key needs at least one key")
    failures: list[VerificationError] = []
    for key in keys:
        try:
            result = verifier.verify_with_key(
                bundle, sha256=sha256, artifact=artifact, key=key.public_key, now=now
            )
        except VerificationError as exc:
            failures.append(exc)
            continue
        return result, key
    first = failures[0]
    if len(keys) == 1:
        raise first
    tried = ", ".join(key.reference for key in keys)
    raise VerificationError(
        reason=first.check, detail=f"{first.detail} (with each of the {len(keys)} keys: {tried})"
    ) from first


def verify_by_key_alone(
    data: bytes,
    *,
    artifact: Artifact,
    keys: Sequence[VerifierKey],
    failure: VerificationError,
) -> tuple[VerificationResult, VerifierKey]:
    """After `failure` of the full verification, accept a managed-key bundle that verifies with
    one of `keys` and names the artifact, with no log evidence (`--insecure-ignore-tlog`).

    Raises:
        VerificationError: `failure` itself, when no key verifies the bundle by itself either.
    """
    from keyless.client.verify.key_only import check_bundle_by_key
    from keyless.client.verify.verifier import VerificationResult

    sha256 = artifact.digest("sha256")
    if sha256 is None:
        raise failure
    for key in keys:
        try:
            signed = check_bundle_by_key(data, sha256=sha256, key=key.public_key)
        except VerificationError:
            continue
        result = VerificationResult(
            identity=None,
            issuer=None,
            log_url=None,
            log_index=None,
            signed_times=(),
            entry_kind=None,
            dsse_payload_type=None if signed == "message-signature" else signed,
        )
        return result, key
    raise failure
