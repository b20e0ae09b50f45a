"""Signed time: RFC 3161 timestamps over the bundle signature, checked with `rfc3161-client`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from keyless.client.verify.errors import VerificationError
from keyless.core.encoding import format_rfc3339
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from rfc3161_client import TimeStampResponse

    from keyless.client.trust import Authority


@dataclass(frozen=True)
class TimestampOutcome:
    """The generation times of the timestamps that verified, and why each other one did not."""

    times: tuple[datetime, ...]
    failures: tuple[str, ...]


def check_timestamps(
    responses: Sequence[bytes], *, signature: bytes, authorities: Sequence[Authority]
) -> TimestampOutcome:
    """Verify each RFC 3161 response over `signature`, independently.

    A response counts when it verifies against one trusted TSA (token signed by its chain's
    first certificate, chain valid at the generation time, imprint = hash of `signature`) whose
    `validFor` contains the generation time. The others are reported, not fatal: as in
    sigstore-python and sigstore-go, the caller compares the verified times with a threshold,
    so a bundle that also carries a timestamp from an authority this root does not trust is
    judged by the ones it does. A response that is not a well-formed TimeStampResp is another
    matter: the bundle itself is malformed, and is refused, as sigstore-python and
    sigstore-java refuse it.

    Raises:
        VerificationError("timestamp"): a response is not a valid DER TimeStampResp.
    """
    times: list[datetime] = []
    failures: list[str] = []
    for index, raw in enumerate(responses):
        response = _decode(raw, index=index)
        moment, failure = _check_one(response, signature=signature, authorities=authorities)
        if moment is not None:
            times.append(moment)
        else:
            failures.append(f"timestamp #{index} {failure}")
    return TimestampOutcome(times=tuple(times), failures=tuple(failures))


def _decode(raw: bytes, *, index: int) -> TimeStampResponse:
    """The parsed response, its token decoded too (it is decoded lazily, so its defects
    surface on first access).

    Raises:
        VerificationError("timestamp"): not a valid DER TimeStampResp.
    """
    from rfc3161_client import decode_timestamp_response

    try:
        response = decode_timestamp_response(raw)
        response.tst_info.gen_time  # noqa: B018
    except ValueError as exc:
        raise VerificationError(
            reason=Reason.TIMESTAMP, detail=f"timestamp #{index} is not a valid DER TimeStampResp"
        ) from exc
    return response


def _check_one(
    response: TimeStampResponse, *, signature: bytes, authorities: Sequence[Authority]
) -> tuple[datetime | None, str]:
    from rfc3161_client import VerificationError as TSAVerificationError
    from rfc3161_client import VerifierBuilder

    gen_time = response.tst_info.gen_time
    if not authorities:
        return None, f"({format_rfc3339(gen_time)}): the trusted root lists no TSA"
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
            failures.append(
                f"{authority.uri or 'TSA'}: time {format_rfc3339(gen_time)} is outside the trusted "
                f"validity {authority.valid_for.describe()}"
            )
            continue
        return gen_time, ""
    return None, (
        f"({format_rfc3339(gen_time)}) does not verify against any trusted TSA over the bundle "
        f"signature ({'; '.join(failures)})"
    )
