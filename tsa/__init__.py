"""RFC 3161 timestamp authority: signs the time at which a digest existed.

Rekor v2 entries carry no signed time, so a signer asks a TSA to timestamp its signature and
keeps the token in the bundle; verifiers check it against the TSA chain in the trusted root.

- `request`: strict parsing of DER `TimeStampReq` and Sigstore's JSON request, with the
  RFC 3161 failure (PKIFailureInfo) each refusal maps to. Pure.
- `authority`: `TimestampAuthority`, which builds signed `TimeStampResp` tokens (and rejections)
  with asn1crypto and signs them with cryptography.
- `certs`: the TSA certificate rules (leaf with one critical timeStamping EKU, not a CA) and a
  development chain.
- `api`: the Flask blueprint (`POST /api/v1/timestamp`, `GET /api/v1/timestamp/certchain`).
- `errors`: `TSAError` and its kinds, `Rejected` first.

Imports nothing else from keyless but `core`.
"""

from keyless.tsa.authority import DEFAULT_POLICY_OID, TimestampAuthority
from keyless.tsa.certs import (
    TSAChainError,
    check_tsa_chain,
    dev_tsa_chain,
    load_pem_chain,
    pem_chain,
)
from keyless.tsa.errors import Rejected, TSAError
from keyless.tsa.request import TimestampRequest, parse_der_request, parse_json_request

__all__ = [
    "DEFAULT_POLICY_OID",
    "Rejected",
    "TSAChainError",
    "TSAError",
    "TimestampAuthority",
    "TimestampRequest",
    "check_tsa_chain",
    "dev_tsa_chain",
    "load_pem_chain",
    "parse_der_request",
    "parse_json_request",
    "pem_chain",
]
