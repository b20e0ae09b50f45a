"""OCI registries: image references, a small registry client, and signature storage forms.

Modules: `reference` (docker/distribution reference grammar), `descriptors` (media types,
descriptors, digests), `credentials` (docker config, helpers), `auth` (challenges, bearer
tokens), `transport` (HTTP rules), `registry` (API operations), `signatures` (writing cosign
v3 referrers, the OCI fallback tag and cosign v2 `.sig` tags), `discovery` (finding them),
`errors`.
"""

from __future__ import annotations

from keyless.client.oci.credentials import (
    Credential,
    CredentialSource,
    DockerConfigCredentials,
    StaticCredentials,
)
from keyless.client.oci.descriptors import Descriptor
from keyless.client.oci.discovery import (
    BundleReferrer,
    ImageSignatures,
    ReferrerListing,
    find_signatures,
    list_attachment_tags,
    list_referrers,
)
from keyless.client.oci.errors import RegistryError
from keyless.client.oci.reference import Reference, parse_reference
from keyless.client.oci.registry import Manifest, RegistryClient
from keyless.client.oci.signatures import (
    LegacySignature,
    append_legacy_signature,
    push_bundle,
    simple_signing_payload,
)
from keyless.client.oci.transport import RegistryLimits

__all__ = [
    "BundleReferrer",
    "Credential",
    "CredentialSource",
    "Descriptor",
    "DockerConfigCredentials",
    "ImageSignatures",
    "LegacySignature",
    "Manifest",
    "Reference",
    "ReferrerListing",
    "RegistryClient",
    "RegistryError",
    "RegistryLimits",
    "StaticCredentials",
    "append_legacy_signature",
    "find_signatures",
    "list_attachment_tags",
    "list_referrers",
    "parse_reference",
    "push_bundle",
    "simple_signing_payload",
]
