"""The client half of Fulcio's v2 API: ask the CA for a certificate with a CSR."""

from __future__ import annotations

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.client.errors import NetworkError, ServiceRefusedError
from keyless.client.http import error_message, json_body, new_session, request
from keyless.core.encoding import b64encode
from keyless.core.errors import Reason


class CAClient:
    """A Fulcio-compatible CA at `base_url` (the client appends /api/v2/signingCert)."""

    def __init__(self, base_url: str, *, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or new_session()

    def signing_certificate(
        self, token: str, key: ec.EllipticCurvePrivateKey
    ) -> list[x509.Certificate]:
        """The certificate chain (leaf first) binding `key` to the token's identity.

        The CSR's self-signature is the proof of possession. Its subject is empty on purpose:
        the CA decides the profile and ignores anything a CSR asks for.

        Raises:
            ServiceRefusedError: the CA refused (its message is quoted).
            NetworkError: the CA is unreachable or answered malformed data.
        """
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .sign(key, hashes.SHA256())
        )
        pem = csr.public_bytes(serialization.Encoding.PEM)
        url = f"{self.base_url}/api/v2/signingCert"
        response, body = request(
            self._session,
            "POST",
            url,
            what="the CA",
            json={"certificateSigningRequest": b64encode(pem)},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        if response.status_code != 200:
            raise ServiceRefusedError(
                f"the CA refused the request: {error_message(body)}", reason=Reason.CA_REFUSED
            )
        chain = _chain(json_body(body, what="the CA"))
        if chain[0].public_key().public_numbers() != key.public_key().public_numbers():
            raise NetworkError("the CA returned a certificate for a different key")
        return chain


def _chain(payload: object) -> list[x509.Certificate]:
    try:
        signed = (
            payload.get("signedCertificateEmbeddedSct") or payload["signedCertificateDetachedSct"]
        )
        pems = signed["chain"]["certificates"]
        chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise NetworkError("the CA's answer has no certificate chain") from exc
    if not chain:
        raise NetworkError("the CA returned an empty certificate chain")
    return chain
