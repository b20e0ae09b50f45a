"""Errors of the policy package: bad policy files (exit 2) and undecidable images (exit 3)."""

from __future__ import annotations

from keyless.client.errors import ClientError


class PolicyFileError(ClientError):
    """The policy files are invalid; `problems` holds one line per problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "the policy is invalid:\n" + "\n".join(f"  - {p}" for p in problems),
            reason="policy-invalid",
        )
        self.problems = problems
