"""The issuance pipeline: token, proof of possession, profile, precertificate, CT, final leaf.

`CertificateAuthority.issue` runs Fulcio's checks in Fulcio's order (fulcio.md §1.7); every
check comes before the CT submission, so a refused request leaves no trace in the CT log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.ca import pop
from keyless.ca.ct import CTSubmissionError, CTSubmitter
from keyless.ca.errors import (
    MSG_CA_BACKEND,
    MSG_CT_FAILED,
    MSG_KEY_UNPARSEABLE,
    BackendError,
    CTLogError,
    IdentityTokenError,
    RequestError,
)
from keyless.ca.profile import DEFAULT_VALIDITY, build_leaf
from keyless.ca.sct import (
    SCT,
    SCTFormatError,
    build_final_certificate,
    build_precertificate,
    check_embedded_sct,
)
from keyless.ca.signers import CASigner
from keyless.core.errors import Reason
from keyless.oidc import Principal, TokenError

log = logging.getLogger(__name__)


class Authenticator(Protocol):
    """Turns an identity token into a verified principal (`oidc.Authenticator`)."""

    def authenticate(self, raw: str, *, now: datetime) -> Principal:
        """The principal `raw` proves; raises `oidc.TokenError`."""
        ...

    def configuration(self) -> list[dict[str, Any]]:
        """The trusted issuers, as Fulcio's configuration lists them."""
        ...


@dataclass(frozen=True)
class SigningRequest:
    """One certificate request: a token, and either a CSR or a key with its proof."""

    token: str
    csr: bytes | None = None
    public_key: bytes | None = None
    proof_of_possession: bytes | None = None


@dataclass(frozen=True)
class IssuedCertificate:
    """An issued leaf with its chain (leaf first, root last).

    `sct` is the SCT the CT log returned: embedded in the leaf, or detached; None only in
    detached mode with no CT log. It and `principal` (the identity the leaf was issued for) are
    kept, so nothing downstream parses the leaf back for them.
    """

    chain: tuple[x509.Certificate, ...]
    embedded: bool
    principal: Principal
    sct: SCT | None = None

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


class CertificateAuthority:
    """The CA service: stateless, thread-safe, one instance per process.

    With `ct_log_key`, every embedded SCT is verified against the final certificate before the
    certificate is returned (Fulcio's `--ct-log-public-key-path`), as a client would.
    """

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        signer: CASigner,
        ct: CTSubmitter | None,
        validity: timedelta = DEFAULT_VALIDITY,
        detached: bool = False,
        ct_log_key: ec.EllipticCurvePublicKey | None = None,
    ) -> None:
        if ct is None and not detached:
            raise ValueError("embedded SCTs need a CT log; configure one or use detached mode")
        self._authenticator = authenticator
        self._signer = signer
        self._ct = ct
        self.validity = validity
        self.detached = detached
        self._ct_log_key = ct_log_key
        self._chain = signer.chain
        self._chain_der = tuple(c.public_bytes(serialization.Encoding.DER) for c in self._chain)

    @property
    def ca_chain(self) -> tuple[x509.Certificate, ...]:
        """The CA chain (issuing CA first, root last)."""
        return self._chain

    def trust_bundle(self) -> tuple[tuple[x509.Certificate, ...], ...]:
        """Every chain this CA issues under; one for an in-process key."""
        return (self._chain,)

    def configuration(self) -> list[dict[str, Any]]:
        """The trusted issuers for GET /api/v2/configuration."""
        return self._authenticator.configuration()

    def issue(self, request: SigningRequest, *, now: datetime) -> IssuedCertificate:
        """Issue a certificate for `request` at time `now`.

        Raises:
            IdentityTokenError: the token is refused (the message is Fulcio's).
            RequestError: the key, CSR or proof of possession is refused.
            BackendError: the CA key failed to sign.
            CTLogError: the CT log refused or failed; nothing was issued.
        """
        # (1) The identity token, in Fulcio's words, with the specific cause as detail.
        try:
            principal = self._authenticator.authenticate(request.token, now=now)
        except TokenError as exc:
            raise IdentityTokenError(exc.message, reason=exc.reason, detail=exc.detail) from exc
        # (2)-(4) The key: from a CSR (self-signed) or a public key with a proof of possession.
        public_key = _checked_key(request, principal)
        # (5) The profile, decided by the CA alone.
        builder = build_leaf(
            principal,
            public_key=public_key,
            issuer=self._chain[0],
            serial=x509.random_serial_number(),
            now=now,
            validity=self.validity,
        )
        # (6)-(9) Sign, log, sign again.
        if self.detached or self._ct is None:
            return self._issue_detached(builder, principal)
        precert = self._sign(lambda: build_precertificate(builder, self._signer))
        sct = self._submit(self._ct.add_pre_chain, precert)
        leaf = self._sign(lambda: build_final_certificate(builder, self._signer, [sct]))
        if self._ct_log_key is not None:
            try:
                check_embedded_sct(
                    sct, certificate=leaf, issuer=self._chain[0], log_key=self._ct_log_key
                )
            except SCTFormatError as exc:
                log.error("the CT log returned a bad SCT: %s", exc)
                raise CTLogError(MSG_CT_FAILED, detail=str(exc)) from exc
        return IssuedCertificate((leaf, *self._chain), embedded=True, principal=principal, sct=sct)

    def _issue_detached(
        self, builder: x509.CertificateBuilder, principal: Principal
    ) -> IssuedCertificate:
        leaf = self._sign(lambda: self._signer.sign(builder))
        sct = self._submit(self._ct.add_chain, leaf) if self._ct is not None else None
        return IssuedCertificate((leaf, *self._chain), embedded=False, principal=principal, sct=sct)

    def _sign(self, sign: Callable[[], x509.Certificate]) -> x509.Certificate:
        try:
            return sign()
        except Exception as exc:  # The backend's own failure, whatever it is: log it, say 500.
            log.exception("CA signing failed")
            raise BackendError(MSG_CA_BACKEND, detail=type(exc).__name__) from exc

    def _submit(
        self, method: Callable[[Sequence[bytes]], Mapping[str, Any]], cert: x509.Certificate
    ) -> SCT:
        chain: Sequence[bytes] = (cert.public_bytes(serialization.Encoding.DER), *self._chain_der)
        # A CT failure means nothing is issued (Fulcio row 7); any other exception is a bug and
        # surfaces as one (a 500 with its traceback), not as a CT error.
        try:
            return SCT.from_add_chain_response(method(chain))
        except (CTSubmissionError, SCTFormatError) as exc:
            log.error("CT log submission failed: %s", exc)
            raise CTLogError(MSG_CT_FAILED, detail=type(exc).__name__) from exc


def _checked_key(request: SigningRequest, principal: Principal) -> pop.ClientKey:
    if request.csr is not None:
        return pop.check_csr(pop.load_csr(request.csr))
    if not request.public_key:
        raise RequestError(MSG_KEY_UNPARSEABLE, reason=Reason.KEY_MISSING, detail="no public key")
    key = pop.load_public_key(request.public_key)
    pop.check_proof_of_possession(
        public_key=key,
        signature=request.proof_of_possession or b"",
        challenge=principal.challenge,
    )
    return key
