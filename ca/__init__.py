"""The certificate authority: Fulcio-compatible issuance of short-lived code-signing certs.

Public, Flask-free surface for `server.app` (the blueprint is `ca.api`: `bp`, `init_app`):
- `CAConfig.from_mapping(section, *, base_dir)`, `.load_signer(*, state_dir, now)` and
  `.load_ct_log_key()`;
- `CertificateAuthority(*, authenticator, signer, ct, validity, detached, ct_log_key)` with
  `issue(request, *, now)`, `trust_bundle()`, `configuration()`;
- the seams: `CASigner` (key backends: `load_generated_signer`, `load_file_signer`) and
  `CTSubmitter` (`InProcessCTSubmitter(log, refusals)` over `tlog.ct_log.CTLog`, or
  `HTTPCTSubmitter(url)`);
- errors: `CAError` and its kinds.

Module map: `pop` (proof of possession), `profile` (leaf profile), `signers` (key backends and
chain rules), `sct` (precertificates and embedded SCTs), `ct` (CT submitters), `issuance` (the
pipeline), `wire` (Fulcio JSON), `config` (the `ca:` section), `api` (blueprint), `errors`.
"""

from keyless.ca.config import CAConfig
from keyless.ca.ct import CTSubmissionError, CTSubmitter, HTTPCTSubmitter, InProcessCTSubmitter
from keyless.ca.errors import (
    BackendError,
    CAConfigError,
    CAError,
    CTLogError,
    IdentityTokenError,
    RequestError,
)
from keyless.ca.issuance import CertificateAuthority, IssuedCertificate, SigningRequest
from keyless.ca.signers import CASigner, KeySigner, load_file_signer, load_generated_signer

__all__ = [
    "BackendError",
    "CAConfig",
    "CAConfigError",
    "CAError",
    "CASigner",
    "CTLogError",
    "CTSubmissionError",
    "CTSubmitter",
    "CertificateAuthority",
    "HTTPCTSubmitter",
    "IdentityTokenError",
    "InProcessCTSubmitter",
    "IssuedCertificate",
    "KeySigner",
    "RequestError",
    "SigningRequest",
    "load_file_signer",
    "load_generated_signer",
]
