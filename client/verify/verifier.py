"""The verification checklist: one orchestrating method, numbered steps, one named check each.

A `Verifier` parses nothing per call that it could parse once: the trusted root's keys and CA
stores are built in the constructor, so one instance can verify many bundles quickly.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from keyless.client.verify import entry as log_body
from keyless.client.verify import transparency
from keyless.client.verify.artifact import Artifact
from keyless.client.verify.certs import extension_value
from keyless.client.verify.dsse import check_subject
from keyless.client.verify.errors import VerificationError
from keyless.client.verify.policy import certificate_identities, certificate_issuer
from keyless.client.verify.sct import check_sct
from keyless.client.verify.timestamps import check_timestamps
from keyless.core.dsse import pae
from keyless.core.encoding import format_rfc3339
from keyless.core.errors import Reason
from keyless.core.keys import HASH_ALGORITHMS, describe_key, key_details, signature_verifier

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from keyless.client.bundle import Bundle
    from keyless.client.trust import Authority, LogKey, TrustedRoot
    from keyless.client.verify.policy import Policy

# A signed time later than the verifier's clock plus this skew is refused as impossible.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# How many verified signed times (SET and RFC 3161 timestamps) a bundle needs by default, as
# in sigstore-python and cosign (sigstore-go's observer-timestamp threshold of 1).
DEFAULT_TIME_THRESHOLD = 1
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerificationResult:
    """What a successful verification established, for `-o json` and the deploy gate."""

    identity: str | None
    issuer: str | None
    log_url: str | None  # None (and log_index, entry_kind): a log-less bundle, see Verifier
    log_index: int | None
    signed_times: tuple[datetime, ...]
    entry_kind: str | None
    dsse_payload_type: str | None
    # RFC 3161 timestamps that did not verify and so were not counted (each with its reason).
    timestamp_failures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "verified": True,
            "identity": self.identity,
            "issuer": self.issuer,
            "log": None
            if self.log_url is None
            else {"url": self.log_url, "index": self.log_index, "kind": self.entry_kind},
            "signedTimes": [format_rfc3339(t) for t in self.signed_times],
            "dssePayloadType": self.dsse_payload_type,
            "timestampFailures": list(self.timestamp_failures),
        }


class Verifier:
    """Verifies bundles against one trusted root; reusable and thread-safe (no mutable state)."""

    def __init__(
        self, trusted_root: TrustedRoot, *, time_threshold: int = DEFAULT_TIME_THRESHOLD
    ) -> None:
        """`time_threshold`: how many of a bundle's signed times must verify (at least 1)."""
        from cryptography import x509
        from cryptography.x509.verification import Criticality, ExtensionPolicy, Store

        if time_threshold < 1:
            raise ValueError("a bundle needs at least one verified signed time")
        self._root = trusted_root
        self._time_threshold = time_threshold
        # Every certificate of a CA's chain is a trust anchor, as in sigstore-python: the chain
        # itself was checked when the trusted root was loaded (each link signed by the next), so
        # path building stops at the first trusted certificate instead of re-verifying the
        # CA's own links for every bundle. Their validity at signing time is checked per call.
        # With each CA, when every certificate of its chain is valid (read once: each
        # validity read builds new datetimes).
        self._ca_stores = [
            (ca, Store(list(ca.certificates)), _chain_window(ca))
            for ca in trusted_root.certificate_authorities
        ]
        self._ca_certificates = frozenset(
            cert for ca in trusted_root.certificate_authorities for cert in ca.certificates
        )
        # Fulcio leaves carry code-signing, not client-auth, EKUs; accept any non-critical EKU
        # in path validation and check code-signing in the profile step.
        self._ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )
        self._ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )

    def verify(
        self,
        bundle: Bundle,
        *,
        sha256: bytes | None = None,
        artifact: Artifact | None = None,
        policy: Policy,
        now: datetime,
    ) -> VerificationResult:
        """Verify a certificate bundle over an artifact for an identity policy.

        The artifact is given by its SHA-256 or as an `Artifact` (a file, or a digest of
        another algorithm).

        Raises:
            VerificationError: the first check that fails, by name.
        """
        # 1. Key material: an identity can only be proven by a certificate.
        leaf = bundle.leaf
        if leaf is None:
            raise VerificationError(
                reason=Reason.KEY_MATERIAL,
                detail="bundle is signed with a managed key, not a certificate",
                hint="verify it with --key",
            )
        subject = _artifact(sha256, artifact)
        times, log, failures = self._signed_times(bundle, now=now)
        # 6. Every signed time lies inside the leaf certificate's validity window.
        for moment in times:
            _check_within_certificate(leaf, moment)
        # 7. The leaf chains to a trusted CA that was valid at every signed time (a root the
        #    bundle ships must be one of the trusted root's own).
        _check_shipped_roots(bundle.chain, trusted=self._ca_certificates)
        chain: list[x509.Certificate] = []
        for moment in times:
            chain = self.check_chain(leaf, moment)
        # 8. The SCT proves the certificate was logged in a trusted CT log. A root that lists
        #    no CT log (a log-less instance's) has nothing to check one against.
        if self._root.ctlogs:
            check_sct(leaf, chain[1], ctlogs=self._root.ctlogs)
        # 9. The leaf is a code-signing certificate.
        _check_profile(leaf)
        # 10. The identity policy holds.
        policy.check(leaf)
        # 11-14. Log inclusion, artifact binding, signature, log body.
        self._check_signing(bundle, log, artifact=subject, key=leaf.public_key(), leaf=leaf)
        return _result(bundle, log, times, failures, leaf=leaf)

    def verify_with_key(
        self,
        bundle: Bundle,
        *,
        sha256: bytes | None = None,
        artifact: Artifact | None = None,
        key: PublicKeyTypes,
        now: datetime,
    ) -> VerificationResult:
        """Verify a managed-key bundle over an artifact with a known public key.

        Raises:
            VerificationError: the first check that fails, by name.
        """
        # 1. Key material: a key verifies only bundles that carry no certificate.
        if bundle.leaf is not None:
            raise VerificationError(
                reason=Reason.KEY_MATERIAL,
                detail="bundle carries a signing certificate; verify it by identity, not with "
                "--key",
            )
        subject = _artifact(sha256, artifact)
        times, log, failures = self._signed_times(bundle, now=now)
        # 6-10 concern certificates and do not apply; 11-14 as for certificates.
        self._check_signing(bundle, log, artifact=subject, key=key, leaf=None)
        return _result(bundle, log, times, failures, leaf=None)

    def _signed_times(
        self, bundle: Bundle, *, now: datetime
    ) -> tuple[list[datetime], LogKey | None, tuple[str, ...]]:
        """Steps 2-5: the log, every signed time the bundle proves, and the timestamps that
        did not verify (reported, not counted)."""
        entry = bundle.entry
        # 2. The entry's log is in the trusted root. A bundle without an entry (RFC 3161
        #    timestamps only) verifies only under a root that lists no transparency log at
        #    all: a log-less instance, such as GitHub's for private repositories, whose root
        #    lists its CA and TSA. Under any root with a log, a missing entry is refused.
        log: LogKey | None = None
        if entry is None:
            if self._root.tlogs:
                raise VerificationError(
                    reason=Reason.LOG_ENTRY,
                    detail="the bundle has no transparency log entry, only RFC 3161 timestamps, "
                    "and the trusted root lists transparency logs; only the root of a log-less "
                    "instance (no logs, a TSA) verifies such a bundle",
                    hint="a GitHub private-repository attestation? pass GitHub's trusted "
                    "root with --trusted-root",
                )
        else:
            log = transparency.find_log(entry, tlogs=self._root.tlogs)
        # 3. The SET, when present, vouches for the integrated time.
        times: list[datetime] = []
        if entry is not None and log is not None and entry.inclusion_promise is not None:
            times.append(transparency.check_inclusion_promise(entry, log=log))
        # 4. RFC 3161 timestamps over the signature, from trusted TSAs. Each counts only if
        #    it verifies; the others are reported (sigstore-python and sigstore-go do the same).
        outcome = check_timestamps(
            bundle.timestamps,
            signature=bundle.signature,
            authorities=self._root.timestamp_authorities,
        )
        times.extend(outcome.times)
        # 5. Enough verified signed times, none in the future, the log key valid at each.
        if not times and not outcome.failures:
            raise VerificationError(
                reason=Reason.TIME,
                detail="bundle proves no signing time: it has neither a SET nor an RFC 3161 "
                "timestamp",
                hint="Rekor v2 entries need an RFC 3161 timestamp",
            )
        if len(times) < self._time_threshold:
            reasons = "".join(f"; {failure}" for failure in outcome.failures)
            raise VerificationError(
                reason=Reason.TIMESTAMP,
                detail=f"{len(times)} of the bundle's signed times verify, {self._time_threshold} "
                f"needed{reasons}",
            )
        for moment in times:
            if moment > now + MAX_CLOCK_SKEW:
                raise VerificationError(
                    reason=Reason.TIME,
                    detail=f"signed time {format_rfc3339(moment)} is in the future"
                    f" (now {format_rfc3339(now)})",
                )
            if log is not None:
                transparency.check_log_key_validity(log, moment, what="signed time")
        for failure in outcome.failures:
            _logger.warning("warning: %s; not counted (the other signed times are)", failure)
        return times, log, outcome.failures

    def check_chain(self, leaf: x509.Certificate, moment: datetime) -> list[x509.Certificate]:
        """The chain from `leaf` to a CA of the trusted root valid at `moment`, under keyless
        verify's path-validation rules (also `keyless monitor`'s issuance check).

        Raises:
            VerificationError: reason `certificate-chain`.
        """
        from cryptography import x509
        from cryptography.x509.verification import PolicyBuilder, Store
        from cryptography.x509.verification import VerificationError as X509Error

        candidates: list[tuple[Authority, Store]] = [
            (authority, store)
            for authority, store, (start, end) in self._ca_stores
            if authority.valid_for.contains(moment) and start <= moment <= end
        ]
        if not candidates:
            raise VerificationError(
                reason=Reason.CERTIFICATE_CHAIN,
                detail=f"no trusted CA was valid at signing time {format_rfc3339(moment)}",
            )
        failures: list[str] = []
        for authority, store in candidates:
            verifier = (
                PolicyBuilder()
                .store(store)
                .time(moment)
                .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
                .build_client_verifier()
            )
            try:
                return list(verifier.verify(leaf, []).chain)
            except (X509Error, x509.UnsupportedGeneralNameType) as exc:
                failures.append(f"{authority.uri or 'CA'}: {exc}")
        raise VerificationError(
            reason=Reason.CERTIFICATE_CHAIN,
            detail=f"the certificate does not chain to a trusted CA at {format_rfc3339(moment)} "
            f"({'; '.join(failures)})",
        )

    def _check_signing(
        self,
        bundle: Bundle,
        log: LogKey | None,
        *,
        artifact: Artifact,
        key: PublicKeyTypes,
        leaf: x509.Certificate | None,
    ) -> None:
        """Steps 11-14: inclusion, artifact binding, signature and log body."""
        entry = bundle.entry
        # 11. The checkpoint is signed by the log, and the entry is included under its root.
        #     A v0.1 bundle may carry a proof without checkpoint, or no proof at all; its SET
        #     (step 3) binds it then.
        if entry is not None and log is not None and bundle.has_checkpoint:
            transparency.check_inclusion(entry, log=log)
        # 12. The signature is about this artifact.
        envelope = bundle.envelope
        if envelope is None:
            algorithm, digest = _message_digest(bundle, artifact)
            signed_bytes, prehashed = digest, True
        else:
            check_subject(envelope.payload_type, envelope.payload, artifact=artifact)
            signed_bytes, prehashed = pae(envelope.payload_type, envelope.payload), False
            algorithm, digest = "sha256", hashlib.sha256(signed_bytes).digest()
        # 13. The signature verifies with the signing key.
        details = check_signature(
            key, bundle.signature, signed_bytes, prehashed=prehashed, algorithm=algorithm
        )
        # 14. The log entry records this signature, key and artifact (a log-less bundle has none).
        if entry is None:
            return
        from cryptography.hazmat.primitives import serialization

        log_body.check_entry_body(
            entry.canonicalized_body,
            kind=entry.kind_version.kind,
            version=entry.kind_version.version,
            signed=log_body.Signed(
                key_der=key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                leaf_der=bundle.leaf_der,
                key_details=details,
                signature=bundle.signature,
                digest=digest,
                payload=envelope.payload if envelope is not None else None,
                digest_algorithm=algorithm,
                payload_type=envelope.payload_type if envelope is not None else None,
            ),
        )


def _artifact(sha256: bytes | None, artifact: Artifact | None) -> Artifact:
    if (sha256 is None) == (artifact is None):
        raise TypeError("give the artifact either as sha256= or as artifact=")
    return artifact if artifact is not None else Artifact.from_sha256(sha256)  # type: ignore[arg-type]


def _result(
    bundle: Bundle,
    log: LogKey | None,
    times: list[datetime],
    failures: tuple[str, ...],
    *,
    leaf: x509.Certificate | None,
) -> VerificationResult:
    entry = bundle.entry
    kind = entry.kind_version if entry is not None else None
    return VerificationResult(
        identity=next(iter(certificate_identities(leaf)), None) if leaf is not None else None,
        issuer=certificate_issuer(leaf) if leaf is not None else None,
        log_url=log.base_url if log is not None else None,
        log_index=entry.log_index if entry is not None else None,
        signed_times=tuple(times),
        entry_kind=f"{kind.kind}/{kind.version}" if kind is not None else None,
        dsse_payload_type=bundle.envelope.payload_type if bundle.envelope else None,
        timestamp_failures=failures,
    )


def _message_digest(bundle: Bundle, artifact: Artifact) -> tuple[str, bytes]:
    """The algorithm and digest a message signature signs: the bundle's `messageDigest`
    algorithm (SHA-256, or SHA-384/SHA-512 as P-384 and P-521 signers use), which must be the
    artifact's digest by that algorithm."""
    stated = bundle.message_digest
    name = stated.algorithm if stated is not None else "SHA2_256"
    algorithm = HASH_ALGORITHMS.get(name)
    if algorithm is None:
        raise VerificationError(
            reason=Reason.MESSAGE_DIGEST,
            detail=f"bundle message digest algorithm {name} is not supported",
        )
    digest = artifact.digest(algorithm)
    if digest is None:
        raise VerificationError(
            reason=Reason.MESSAGE_DIGEST,
            detail=f"the bundle signs the artifact's {algorithm} digest, which {artifact.label} "
            "does not give",
            hint=f"verify the file itself, or give its {algorithm}:<hex> digest",
        )
    if stated is not None and stated.digest != digest:
        raise VerificationError(
            reason=Reason.MESSAGE_DIGEST,
            detail=f"bundle message digest {stated.digest.hex()} is not the artifact's "
            f"{algorithm} {digest.hex()}",
        )
    return algorithm, digest


def _chain_window(authority: Authority) -> tuple[datetime, datetime]:
    """When every certificate of the CA's chain is valid: the latest start, the earliest end
    (a start after the end, for chains that never were valid all at once, matches nothing)."""
    return (
        max(cert.not_valid_before_utc for cert in authority.certificates),
        min(cert.not_valid_after_utc for cert in authority.certificates),
    )


def _check_shipped_roots(
    chain: tuple[x509.Certificate, ...], *, trusted: frozenset[x509.Certificate]
) -> None:
    """A root (self-issued) certificate in the bundle's chain is one of the trusted root's.

    Chain certificates are never trusted for being in a bundle, so a copy of the trusted
    root's own root does no harm, and sigstore-go accepts it; any other root invites
    verifiers that would trust it, and is refused, as sigstore-conformance requires.

    Raises:
        VerificationError("certificate-chain"): another root.
    """
    for cert in chain:
        if cert.issuer == cert.subject and cert not in trusted:
            raise VerificationError(
                reason=Reason.CERTIFICATE_CHAIN,
                detail="the bundle's certificate chain contains a root that is not in the trusted "
                f"root ({cert.subject.rfc4514_string()})",
            )


def _check_within_certificate(leaf: x509.Certificate, moment: datetime) -> None:
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if not start <= moment <= end:
        raise VerificationError(
            reason=Reason.CERTIFICATE_VALIDITY,
            detail=f"signed time {format_rfc3339(moment)} is outside the certificate validity "
            f"{format_rfc3339(start)}..{format_rfc3339(end)}",
        )


def _check_profile(leaf: x509.Certificate) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

    usage = extension_value(leaf, ExtensionOID.KEY_USAGE)
    extended = extension_value(leaf, ExtensionOID.EXTENDED_KEY_USAGE)
    if usage is None or extended is None:
        raise VerificationError(
            reason=Reason.CERTIFICATE_PROFILE,
            detail="the certificate lacks KeyUsage or ExtendedKeyUsage",
        )
    if not usage.digital_signature:
        raise VerificationError(
            reason=Reason.CERTIFICATE_PROFILE, detail="key usage lacks digitalSignature"
        )
    if ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise VerificationError(
            reason=Reason.CERTIFICATE_PROFILE, detail="extended key usage lacks codeSigning"
        )


def check_signature(
    key: PublicKeyTypes, signature: bytes, data: bytes, *, prehashed: bool, algorithm: str
) -> str:
    """Step 13; returns the key's PublicKeyDetails, which a Rekor v2 entry records (step 14).

    A signing key must be one Sigstore names (ECDSA P-256, P-384, P-521; RSA 2048, 3072,
    4096), so a bundle cannot verify here with a key no other Sigstore verifier knows. Ed25519
    is named but not taken: a hashedrekord is a signature over a digest, which it cannot make.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            raise ValueError("an Ed25519 key signs no digest")
        details = key_details(key)
        check = signature_verifier(key, hash_name=algorithm, prehashed=prehashed)
    except ValueError as exc:
        raise VerificationError(
            reason=Reason.SIGNATURE, detail=f"unsupported signing key type {describe_key(key)}"
        ) from exc
    try:
        check(signature, data)
    except InvalidSignature as exc:
        what = "artifact" if prehashed else "DSSE envelope"
        raise VerificationError(
            reason=Reason.SIGNATURE,
            detail=f"the signature over the {what} does not verify with the signing key",
        ) from exc
    return details
