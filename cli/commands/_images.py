"""Command-line glue for container images, shared by `sign`, `verify` and `tree`.

Which targets are images: text that is not an existing file nor a `sha256:` digest, parses as
an image reference, and names a registry host (`ghcr.io/...`, `localhost:5000/...`), a tag
or a digest. So `dist/app.tar.gz` stays a (missing) file, while `ghcr.io/acme/app:1.4` and
`acme/app@sha256:...` are images. Imports stay inside functions: building the parser must not
load the registry client.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyless.client.oci import Reference, RegistryClient
    from keyless.client.trust import TrustedRoot

MAX_PASSWORD_BYTES = 64 * 1024


def add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    """Registry access options: credentials and plain HTTP."""
    group = parser.add_argument_group(
        "registry access (images; default: ~/.docker/config.json, then anonymous)"
    )
    group.add_argument("--registry-username", metavar="USER", help="registry user name")
    group.add_argument(
        "--registry-password-stdin",
        action="store_true",
        help="read the registry password (or token) from standard input",
    )
    group.add_argument(
        "--allow-insecure-registry",
        action="store_true",
        help="allow plain HTTP when the registry does not speak TLS (loopback, private nets)",
    )


def add_sign_arguments(parser: argparse.ArgumentParser) -> None:
    """`keyless sign IMAGE` options, on top of the registry access options."""
    group = parser.add_argument_group("images")
    group.add_argument(
        "--recursive",
        action="store_true",
        help="for a multi-platform index, also sign each platform's manifest",
    )
    group.add_argument(
        "--legacy-tag",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write cosign v2's sha256-<hex>.sig signature tag (default: on)",
    )
    add_registry_arguments(parser)


def image_reference(target: str) -> Reference | None:
    """The image reference `target` names, or None when it is a file or a digest."""
    # Decide files and digests before importing the registry client (and requests with it):
    # `keyless verify FILE` is the common case and its start-up time matters.
    from keyless.client.verify.artifact import DIGEST_ALGORITHMS

    if target.partition(":")[0] in DIGEST_ALGORITHMS or Path(target).exists():
        return None
    from keyless.client.oci import RegistryError, parse_reference

    try:
        reference = parse_reference(target)
    except RegistryError:
        return None
    first = target.split("/", 1)[0]
    names_registry = "/" in target and (first == "localhost" or "." in first or ":" in first)
    names_version = "@" in target or ":" in target.rsplit("/", 1)[-1]
    return reference if names_registry or names_version else None


@contextmanager
def registry_hints(args: argparse.Namespace) -> Iterator[None]:
    """Add the remedy to registry failures whose cause the options can fix."""
    from keyless.client.oci.errors import RegistryConnectionError

    try:
        yield
    except RegistryConnectionError as exc:
        if not args.allow_insecure_registry and exc.hint is None:
            exc.hint = (
                "if the registry speaks plain HTTP (loopback or a private network), "
                "pass --allow-insecure-registry"
            )
        raise


def registry_client(args: argparse.Namespace) -> RegistryClient:
    """A registry client with the credentials the options ask for."""
    from keyless.client.oci import DockerConfigCredentials, RegistryClient, StaticCredentials

    usage_error = getattr(args, "usage_error", None) or args.parser.error
    if args.registry_password_stdin and not args.registry_username:
        usage_error("--registry-password-stdin needs --registry-username")
    if args.registry_username and not args.registry_password_stdin:
        usage_error("--registry-username needs --registry-password-stdin")
    credentials: Any = DockerConfigCredentials()
    if args.registry_username:
        password = sys.stdin.read(MAX_PASSWORD_BYTES + 1)
        if len(password) > MAX_PASSWORD_BYTES:
            usage_error(f"the registry password is longer than {MAX_PASSWORD_BYTES} bytes")
        credentials = StaticCredentials(args.registry_username, password.rstrip("\r\n"))
    return RegistryClient(credentials=credentials, allow_insecure=args.allow_insecure_registry)


def sign(
    args: argparse.Namespace,
    image: Reference,
    *,
    make_signer: Callable[[], tuple[Any, str, bool]],
) -> str:
    """Sign `image`; returns the bundle JSON of the manifest it names (for `--bundle`).

    `make_signer` gives the signer, how to name who signs ("as alice@... (issuer ...)" or
    "with key REF") and whether cosign v2's legacy tag can be written; it is called only once
    the image has been resolved, so a registry problem is reported before any login.
    """
    from datetime import UTC, datetime

    from keyless.client.sign.images import resolve_targets, sign_image

    with registry_hints(args), registry_client(args) as client:
        targets = resolve_targets(client, image, recursive=args.recursive)
        if image.digest is None:
            print(f"resolved {image} to {targets[0].digest}", file=sys.stderr)
        signer, signed_by, legacy_possible = make_signer()
        legacy_tag = args.legacy_tag and legacy_possible
        if args.legacy_tag and not legacy_tag:
            print("Rekor v2: no cosign v2 legacy .sig tag (it needs a v1 entry)", file=sys.stderr)
        signed = sign_image(
            client,
            targets,
            signer=signer,
            legacy_tag=legacy_tag,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
    for item in signed:
        platform = f" [{item.target.platform}]" if item.target.platform else ""
        lines = [
            f"signed {item.target.reference.name}@{item.target.digest}{platform} {signed_by}:",
            f"  - Sigstore bundle (cosign v3, OCI 1.1 clients): {_logged(item.bundle)}, "
            f"{_stored(item.stored_via, item.target.digest)} ({item.stored_via}), manifest "
            f"{item.referrer.digest}",
        ]
        if item.legacy is not None and item.legacy_tag is not None:
            lines.append(
                f"  - cosign v2 signature (older verifiers): {_logged(item.legacy)}, "
                f"in tag {item.legacy_tag} (--no-legacy-tag to write only the bundle)"
            )
        print("\n".join(lines), file=sys.stderr)
        print(f"{item.target.reference.name}@{item.target.digest}")
    return signed[0].bundle.to_json()


def keyless_signer(
    inputs: Callable[[], tuple[Any, str, TrustedRoot | None]],
) -> Callable[[], tuple[Any, str, bool]]:
    """`make_signer` for keyless signing: an ephemeral key certified for the token's identity.
    `inputs` gives the services, the token and the trusted root (a login happens there)."""

    def make() -> tuple[Any, str, bool]:
        from keyless.client.sign.fulcio import CAClient
        from keyless.client.sign.signer import EphemeralSigner, log_clients

        endpoints, token, trusted_root = inputs()
        log, timestamper = log_clients(endpoints)
        signer = EphemeralSigner(
            token=token,
            ca=CAClient(endpoints.ca_url),
            log=log,
            timestamper=timestamper,
            trusted_root=trusted_root,
        )
        return signer, f"as {signer.identity} (issuer {signer.issuer})", timestamper is None

    return make


def _logged(result: Any) -> str:
    if result.log_index is None:
        return "not logged (--no-tlog-upload)"
    return f"log index {result.log_index}"


def _stored(source: str, digest: str) -> str:
    """Where a bundle of `digest` sits in the registry, from its discovery source."""
    from keyless.client.oci.descriptors import tag_for_digest
    from keyless.client.oci.signatures import (
        LEGACY_SUFFIX,
        SOURCE_FALLBACK_TAG,
        SOURCE_REFERRERS_API,
    )
    from keyless.client.verify.images import SOURCE_LEGACY_TAG

    if source == SOURCE_REFERRERS_API:
        return "an OCI referrer of the image"
    if source == SOURCE_FALLBACK_TAG:
        return f"an OCI referrer in the fallback index {tag_for_digest(digest)}"
    if source == SOURCE_LEGACY_TAG:
        return f"in tag {tag_for_digest(digest, LEGACY_SUFFIX)}"
    raise ValueError(f"unknown signature source {source!r}")


def verified_text(outcome: Any) -> str:
    """One "Verified OK" for the image, then one line per valid signature saying what it is
    (a Sigstore bundle or cosign v2's legacy signature) and where it was found."""
    from keyless.client.verify.images import SOURCE_LEGACY_TAG

    signers = {_signer(s) for s in outcome.verified}
    head = f"Verified OK: {outcome.reference.name}@{outcome.digest}"
    if len(signers) == 1:
        head += f" {next(iter(signers))}"
    count = len(outcome.verified)
    lines = [f"{head}; {count} valid signature{'s' if count > 1 else ''}:"]
    for signature in outcome.verified:
        kind = "cosign v2 signature" if signature.source == SOURCE_LEGACY_TAG else "Sigstore bundle"
        by = "" if len(signers) == 1 else f", {_signer(signature)}"
        logged = (
            "no log entry checked"
            if signature.log_index is None
            else f"log index {signature.log_index}"
        )
        lines.append(
            f"  - {kind}, {_stored(signature.source, outcome.digest)} (found via "
            f"{signature.source}), {logged}{by}"
        )
    return "\n".join(lines)


def _signer(signature: Any) -> str:
    """`signed by <identity> (<issuer>)`, or for a key signature `signed with key <ref>`."""
    if signature.key is not None:
        return f"signed with key {signature.key}"
    return f"signed by {signature.identity} ({signature.issuer})"
