"""`keyless sign --key REF`: sign a file, a digest or an image with a long-lived key.

The key is loaded (and its password asked) before anything else, so a wrong password, a
tampered key file or a key that is not allowed costs no log entry and no registry write. The
services come from the same flags as keyless signing, with no token and no login: a key needs
no CA. As cosign does by default, each signature is logged (`--no-tlog-upload` to not log it;
then no server is needed, unless a v2 signing config's TSA should timestamp it).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from keyless.cli.commands import _images, _keys

if TYPE_CHECKING:
    from keyless.client.keys import KeySigner
    from keyless.client.oci import Reference
    from keyless.client.sign.keys import KeyBundleSigner


def run(args: argparse.Namespace, image: Reference | None) -> int:
    from keyless.cli.commands import sign
    from keyless.client.sign.signer import UnverifiedBundleError

    key = _keys.signer(args, args.key)
    if image is not None:
        try:
            bundle_json = _images.sign(args, image, make_signer=lambda: _image_signer(args, key))
        except UnverifiedBundleError as exc:
            raise sign._keep(exc, beside=args.bundle) from exc
        if args.bundle is not None:
            sign._write(args.bundle, bundle_json)
        return 0
    sha256, bundle_path = sign._target(args)
    signer = key_signer(args, key, rekor_version=args.rekor_version)
    try:
        result = signer.sign_digest(sha256)
    except UnverifiedBundleError as exc:
        raise sign._keep(exc, beside=bundle_path) from exc
    sign._write(bundle_path, result.to_json())
    logged = (
        f"log index {result.log_index}"
        if result.log_index is not None
        else "not logged (--no-tlog-upload)"
    )
    print(
        f"signed {args.target} with key {args.key}, {logged}; bundle written to {bundle_path}",
        file=sys.stderr,
    )
    return 0


def _image_signer(args: argparse.Namespace, key: KeySigner) -> tuple[Any, str, bool]:
    """`make_signer` for images: cosign v2's legacy tag is written unless the log is v2."""
    from keyless.client.sign.rekor import LogV2Client

    # Images stay on v1 unless asked, as with keyless signing.
    signer = key_signer(args, key, rekor_version=args.rekor_version or 1)
    return signer, f"with key {args.key}", not isinstance(signer.log, LogV2Client)


def key_signer(
    args: argparse.Namespace, key: KeySigner, *, rekor_version: int | None
) -> KeyBundleSigner:
    """The key's bundle signer over the services the flags name (none: nothing logged)."""
    from keyless.client.sign.keys import KeyBundleSigner
    from keyless.client.sign.signer import log_clients
    from keyless.client.sign.timestamping import TimestampClient

    endpoints, trusted_root = _services(args, rekor_version=rekor_version)
    if args.tlog_upload:
        log, timestamper = log_clients(endpoints)
        return KeyBundleSigner(key, log=log, timestamper=timestamper, trusted_root=trusted_root)
    stamp = endpoints.tsa_url if endpoints is not None else None
    return KeyBundleSigner(
        key,
        log=None,
        timestamper=TimestampClient(stamp) if stamp else None,
        trusted_root=trusted_root,
    )


def _services(args: argparse.Namespace, *, rekor_version: int | None) -> tuple[Any, Any]:
    """The services and trusted root the flags name, as keyless signing reads them (a
    server's through its TUF repository); (None, None) when none is named."""
    from keyless.cli.commands.sign import _trusted_root
    from keyless.client import services
    from keyless.client.trust.tuf import fetch_server_trust

    if args.server:
        kept = fetch_server_trust(args.server, refresh_trust=args.refresh_trust)
        endpoints = services.from_server_trust(kept, args.server, rekor_version=rekor_version)
        return endpoints, kept.trusted_root
    if args.trust_config:
        endpoints = services.from_trust_config(args.trust_config, rekor_version=rekor_version)
        return endpoints, _trusted_root(args)
    if args.signing_config:
        endpoints = services.from_signing_config(args.signing_config, rekor_version=rekor_version)
        return endpoints, _trusted_root(args)
    return None, None
