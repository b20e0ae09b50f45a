"""Signed time: RFC 3161 timestamps over the bundle signature, checked with `rfc3161-client`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cli.verify.errors import VerificationError, iso

if TYPE_CHECKING:
    from cli.trust import Authority


def check_timestamps(
    responses: Sequence[bytes], *, signature: bytes, authorities: Sequence[Authority]
) -> list[datetime]:
    """Verify every RFC 3161 response over `signature`; returns their generation times.

    Each response must verify against one trusted TSA (token signed by its chain's first
    certificate, chain valid at the generation time, imprint = hash of `signature`) whose
    `validFor` contains the generation time. One bad timestamp fails the whole bundle: an
    unverifiable time source is a defect, not something to skip silently.

    Raises:
        VerificationError("timestamp"): malformed, untrusted, mismatched or out-of-window.
    """
    if responses and not authorities:
        raise VerificationError(
            "timestamp", "bundle carries RFC 3161 timestamps but the trusted root lists no TSA"
        )
    return [
        _check_one(raw, signature=signature, authorities=authorities, index=index)
        for index, raw in enumerate(responses)
    ]


def _check_one(
    raw: bytes, *, signature: bytes, authorities: Sequence[Authority], index: int
) -> datetime:
    from rfc3161_client import VerificationError as TSAVerificationError
    from rfc3161_client import VerifierBuilder, decode_timestamp_response

    try:
        response = decode_timestamp_response(raw)
        # The token inside is decoded lazily, so its defects surface on first access.
        gen_time = response.tst_info.gen_time
    except ValueError as exc:
        raise VerificationError(
            "timestamp", f"timestamp #{index} is not a valid DER TimeStampResp"
        ) from exc
    failures: list[str] = []
    for authority in authorities:
        chain = authority.certificates
        builder = VerifierBuilder().tsa_certificate(chain[0]).add_root_certificate(chain[-1])
        for intermediate in chain[1:-1]:
            builder = builder.add_intermediate_certificate(intermediate)
        try:
            builder.build().verify_message(response, signature)
        except (TSAVerificationError, ValueError) as exc:
            failures.append(f"{authority.uri or 'TSA'}: {exc}")
            continue
        if not authority.valid_for.contains(gen_time):
            raise VerificationError(
                "timestamp",
                f"timestamp time {iso(gen_time)} is outside the trusted validity "
                f"{authority.valid_for.describe()} of TSA {authority.uri}",
            )
        return gen_time
    reasons = "; ".join(failures)
    raise VerificationError(
        "timestamp",
        f"timestamp #{index} ({iso(gen_time)}) does not verify against any trusted TSA "
        f"over the bundle signature ({reasons})",
    )
