"""`keyless download signature|attestation|sbom IMAGE`: print an image's attachments as cosign
users' scripts read them. Nothing is verified: `keyless verify` and `verify-attestation` judge.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from keyless.cli.commands import _images


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "download",
        help="print an image's signatures, attestations or SBOM, as stored (not verified)",
        description=(
            "Resolve IMAGE to its digest once and print what is attached to it, as cosign "
            "download does: one JSON line per signature or attestation (an attestation's DSSE "
            "payload also at the top level, so both jq .payload and jq .dsseEnvelope.payload "
            "work), or the SBOM itself. Nothing is verified."
        ),
    )
    kinds = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    for what, help_text in (
        ("signature", "the signatures: Sigstore bundles, then cosign v2 .sig signatures"),
        ("attestation", "the attestations (DSSE bundles of any predicate type but cosign's)"),
        ("sbom", "the SBOM: an SPDX or CycloneDX attestation's predicate, or a .sbom layer"),
    ):
        sub = kinds.add_parser(what, help=help_text, description=help_text)
        sub.add_argument("image", metavar="IMAGE", help="an image reference (tag or digest)")
        if what == "attestation":
            sub.add_argument(
                "--predicate-type",
                metavar="TYPE",
                help="only attestations of this predicate type (a URI or cosign's short name)",
            )
        _images.add_registry_arguments(sub)
        sub.set_defaults(run=run, parser=sub)


def run(args: argparse.Namespace) -> int:
    from keyless.cli.main import CLIError
    from keyless.client.attest import download
    from keyless.client.attest.predicates import predicate_type_uri
    from keyless.client.oci import find_signatures, parse_reference

    wanted = (
        predicate_type_uri(args.predicate_type) if getattr(args, "predicate_type", None) else None
    )
    image = parse_reference(args.image)
    with _images.registry_hints(args), _images.registry_client(args) as client:
        digest = client.resolve(image).digest
        pinned = image.with_digest(digest)
        found = find_signatures(client, pinned, digest)
        bundles, problems = download.attachments(found)
        legacy_sbom = _legacy_sbom(client, pinned, digest) if args.what == "sbom" else None
    for problem in (*found.problems, *problems):
        print(f"warning: {problem}", file=sys.stderr)
    where = f"{pinned.name}@{digest}"
    if args.what == "sbom":
        sbom = download.sbom_predicate(bundles) or legacy_sbom
        if sbom is None:
            raise CLIError(f"no SBOM attached to {where}")
        data, media_type = sbom
        print(f"Found SBOM of media type: {media_type}", file=sys.stderr)
        sys.stdout.buffer.write(data)
        return 0
    if args.what == "signature":
        lines = download.signature_lines(found, bundles)
        missing = f"no signatures associated with {where}"
    else:
        lines = download.attestation_lines(bundles, wanted)
        of = f" of predicate type {wanted}" if wanted else ""
        missing = f"no attestations{of} associated with {where}"
    if not lines:
        raise CLIError(missing)
    for line in lines:
        print(line)
    return 0


def _legacy_sbom(client: Any, pinned: Any, digest: str) -> tuple[bytes, str] | None:
    """cosign's legacy `sha256-<hex>.sbom` attachment: its first layer and media type."""
    from keyless.client.oci import RegistryError
    from keyless.client.oci.descriptors import tag_for_digest

    tag = pinned.with_tag(tag_for_digest(digest, ".sbom"))
    try:
        if not client.manifest_exists(tag):
            return None
        layers = client.get_manifest(tag).json().get("layers") or []
        if not layers or not isinstance(layers[0], dict):
            return None
        layer = layers[0]
        data = client.get_blob(tag, layer["digest"], max_bytes=32 * 1024 * 1024)
    except (RegistryError, KeyError, TypeError):
        return None
    return data, str(layer.get("mediaType", "unknown"))
