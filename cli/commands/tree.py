"""`keyless tree IMAGE`: list what is attached to an image digest (referrers and cosign tags).

A listing, not a verification: nothing here says a signature is valid; `keyless verify` does.
Each Sigstore bundle and each cosign v2 `.sig` signature is named by what it says it was made
with: a long-lived key (a vendor's `cosign sign --key`) or a certificate (keyless signing).
"""

from __future__ import annotations

import argparse
from typing import Any

from keyless.cli.commands import _images


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tree",
        help="list the signatures and other artifacts attached to an image",
        description=(
            "Resolve IMAGE to its manifest digest once, then list its OCI 1.1 referrers (from "
            "the referrers API and the sha256-<hex> fallback tag) and cosign's attachment tags "
            "(sha256-<hex>.sig, .att, .sbom), naming each signature made with a key rather than "
            "a certificate. Nothing is verified."
        ),
    )
    parser.add_argument("image", metavar="IMAGE", help="an image reference (tag or digest)")
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="listing format"
    )
    _images.add_registry_arguments(parser)
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    import json

    from keyless.client.attest import download
    from keyless.client.oci import (
        find_signatures,
        list_attachment_tags,
        list_referrers,
        parse_reference,
    )
    from keyless.client.oci.descriptors import tag_for_digest
    from keyless.client.oci.signatures import LEGACY_SUFFIX

    image = parse_reference(args.image)
    with _images.registry_hints(args), _images.registry_client(args) as client:
        digest = client.resolve(image).digest
        pinned = image.with_digest(digest)
        listing = list_referrers(client, pinned, digest)
        tags = list_attachment_tags(client, pinned, digest)
        found = find_signatures(client, pinned, digest)
    bundles, unreadable = download.attachments(found)
    signed_with = {bundle.manifest_digest: bundle.signed_with for bundle in bundles}
    problems = list(dict.fromkeys([*listing.problems, *found.problems, *unreadable]))
    referrers = [
        {
            "digest": descriptor.digest,
            "mediaType": descriptor.media_type,
            "artifactType": descriptor.artifact_type,
            "annotations": dict(descriptor.annotations),
            "source": source,
            "signedWith": _json(signed_with.get(descriptor.digest)),
        }
        for descriptor, source in listing.entries
    ]
    legacy = [download.legacy_signed_with(signature) for signature in found.legacy]
    if args.output == "json":
        document = {
            "image": f"{pinned.name}@{digest}",
            "referrersApi": listing.referrers_api,
            "referrers": referrers,
            "tags": tags,
            "legacySignatures": [{"signedWith": kind.to_json()} for kind in legacy],
            "problems": problems,
        }
        print(json.dumps(document))
        return 0
    print(f"{pinned.name}@{digest}")
    if not referrers and not tags:
        print("  no attached artifacts found")
    for item in referrers:
        kind = item["artifactType"] or item["mediaType"]
        predicate = item["annotations"].get("dev.sigstore.bundle.predicateType")
        detail = f" (predicate {predicate})" if predicate else ""
        signer = signed_with.get(item["digest"])
        made = f", {_describe(signer)}" if signer is not None else ""
        print(f"  referrer {item['digest']}: {kind}{detail} via {item['source']}{made}")
    for tag in tags:
        print(f"  tag {pinned.name}:{tag}")
        if tag == tag_for_digest(digest, LEGACY_SUFFIX):
            for kind in legacy:
                print(f"    cosign v2 signature, {_describe(kind)}")
    for problem in problems:
        print(f"  skipped: {problem}")
    return 0


def _describe(signed_with: Any) -> str:
    """`signed with a key (...), not a certificate`, or `signed with a certificate`."""
    from keyless.client.attest.download import KEY

    if signed_with.kind != KEY:
        return "signed with a certificate"
    hint = f" (key hint {signed_with.hint})" if signed_with.hint else ""
    return f"signed with a key{hint}, not a certificate"


def _json(signed_with: Any) -> dict[str, Any] | None:
    return signed_with.to_json() if signed_with is not None else None
