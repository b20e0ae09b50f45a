"""Long-lived keys, as cosign's users keep them: encrypted key files, key references, signers.

Modules: `encrypted` (cosign's encrypted private key format), `pem` (one PEM block, as Go
reads it), `algorithms` (which keys are allowed; hints, PEM), `references` (file, `env://`,
URL, `pkcs11:`, `awskms://`: one resolver to a signer or a verifier key), `signer` (the
`KeySigner` interface and the in-memory signer), `pkcs11` (keys in a PKCS#11 token), `awskms`
(keys in AWS KMS), `imports` (unencrypted PEM keys in, for `import-key-pair`), `errors`.
"""

from __future__ import annotations

from keyless.client.keys.errors import KeyFileError, KeyReferenceError
from keyless.client.keys.references import VerifierKey, load_signer, load_verifier_key
from keyless.client.keys.signer import KeySigner

__all__ = [
    "KeyFileError",
    "KeyReferenceError",
    "KeySigner",
    "VerifierKey",
    "load_signer",
    "load_verifier_key",
]
