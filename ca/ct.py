"""How the CA reaches a CT log: a one-method seam, served in-process or over HTTP.

Both sides speak RFC 6962's wire JSON: the submitter takes DER certificates (the
precertificate or certificate first, then its chain up to the root) and returns the JSON
AddChainResponse. The in-process log (`tlog.ct_log.CTLog`) satisfies the protocol as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import requests

from keyless import strictjson
from keyless.ca.errors import CTLogError
from keyless.core.encoding import b64encode

MAX_RESPONSE_BYTES = 64 * 1024
DEFAULT_TIMEOUT_SECONDS = 30.0


class CTSubmitter(Protocol):
    """A CT log the CA submits to: it answers, or raises `CTSubmissionError`.

    Anything else it raises is a bug, and the CA lets it surface as one.
    """

    def add_pre_chain(self, chain: Sequence[bytes]) -> Mapping[str, Any]:
        """Log a precertificate chain; the AddChainResponse JSON."""
        ...

    def add_chain(self, chain: Sequence[bytes]) -> Mapping[str, Any]:
        """Log a certificate chain; the AddChainResponse JSON."""
        ...


class CTSubmissionError(CTLogError):
    """A CT log refused a chain or could not be reached."""


class InProcessCTSubmitter:
    """A CT log in this process (`tlog.ct_log.CTLog`), whose own refusals become
    `CTSubmissionError`. The log's error types are given by the composition, so `ca` need not
    import `tlog`."""

    def __init__(self, log: CTSubmitter, *, refusals: tuple[type[Exception], ...]) -> None:
        self._log = log
        self._refusals = refusals

    def add_pre_chain(self, chain: Sequence[bytes]) -> Mapping[str, Any]:
        try:
            return self._log.add_pre_chain(chain)
        except self._refusals as exc:
            raise CTSubmissionError(f"add-pre-chain: {exc}") from exc

    def add_chain(self, chain: Sequence[bytes]) -> Mapping[str, Any]:
        try:
            return self._log.add_chain(chain)
        except self._refusals as exc:
            raise CTSubmissionError(f"add-chain: {exc}") from exc


class HTTPCTSubmitter:
    """A remote RFC 6962 log at `url` (the part before `/ct/v1/`)."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()

    def add_pre_chain(self, chain: Sequence[bytes]) -> Mapping[str, Any]:
        return self._post("add-pre-chain", chain)

    def add_chain(self, chain: Sequence[bytes]) -> Mapping[str, Any]:
        return self._post("add-chain", chain)

    def _post(self, method: str, chain: Sequence[bytes]) -> Mapping[str, Any]:
        body = {"chain": [b64encode(der) for der in chain]}
        try:
            with self._session.post(
                f"{self.url}/ct/v1/{method}",
                json=body,
                timeout=self._timeout,
                stream=True,
                allow_redirects=False,
            ) as response:
                content = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
                status = response.status_code
        except requests.RequestException as exc:
            raise CTSubmissionError(f"{method}: {type(exc).__name__}") from exc
        if status != 200:
            raise CTSubmissionError(f"{method}: HTTP {status}: {content[:200]!r}")
        if len(content) > MAX_RESPONSE_BYTES:
            raise CTSubmissionError(f"{method}: response larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            parsed = strictjson.loads(content, what="response")
        except strictjson.JSONError as exc:
            raise CTSubmissionError(f"{method}: {exc}") from exc
        if not isinstance(parsed, dict):
            raise CTSubmissionError(f"{method}: response is not a JSON object")
        return parsed
