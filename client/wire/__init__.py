"""Sigstore's bundle and trusted-root JSON read without pydantic, for the verify path's start-up.

sigstore-models is the model and the writer everywhere else (signing, attestations, TUF, the
servers); importing it costs `keyless verify` more than the rest of its start-up together, so
verification reads the two documents it needs with this small reader on `keyless.strictjson`
(bounded, duplicate keys refused) into keyless's own read-only types. The types mirror
sigstore-models' field for field (`schema` says where the reader is stricter, on purpose), and
tests/cli/test_wire.py holds the two to the same verdict on every document of tests/data and
on mutated ones.

Modules: `schema` (the engine), `common`, `bundle`, `trustroot` (the shapes).
"""

from __future__ import annotations

from keyless.client.wire.bundle import read_bundle
from keyless.client.wire.schema import WireError
from keyless.client.wire.trustroot import read_client_trust_config, read_trusted_root

__all__ = ["WireError", "read_bundle", "read_client_trust_config", "read_trusted_root"]
