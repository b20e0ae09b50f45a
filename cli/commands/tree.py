"""`keyless tree IMAGE`: list what is attached to an image digest (referrers and cosign tags).

A listing, not a verification: nothing here says a signature is valid; `keyless verify` does.
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
            "(sha256-<hex>.sig, .att, .sbom). Nothing is verified."
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

    from keyless.client.oci import list_attachment_tags, list_referrers, parse_reference

    image = parse_reference(args.image)
    with _images.registry_hints(args), _images.registry_client(args) as client:
        digest = client.resolve(image).digest
        pinned = image.with_digest(digest)
        listing = list_referrers(client, pinned, digest)
        tags = list_attachment_tags(client, pinned, digest)
    referrers = [
        {
            "digest": descriptor.digest,
            "mediaType": descriptor.media_type,
            "artifactType": descriptor.artifact_type,
            "annotations": dict(descriptor.annotations),
            "source": source,
        }
        for descriptor, source in listing.entries
    ]
    if args.output == "json":
        document = {
            "image": f"{pinned.name}@{digest}",
            "referrersApi": listing.referrers_api,
            "referrers": referrers,
            "tags": tags,
            "problems": list(listing.problems),
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
        print(f"  referrer {item['digest']}: {kind}{detail} via {item['source']}")
    for tag in tags:
        print(f"  tag {pinned.name}:{tag}")
    for problem in listing.problems:
        print(f"  skipped: {problem}")
    return 0
