"""Errors of the policy package: bad policy files (exit 2) and undecidable images (exit 3)."""

from __future__ import annotations

from keyless.client.errors import ClientError
from keyless.core.errors import ProblemsError, Reason


class PolicyFileError(ClientError, ProblemsError):
    """The policy files are invalid; `problems` holds one line per problem found."""

    reason = Reason.POLICY_INVALID
    exit_code = 2
    one_line_per_problem = True

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the policy is invalid", problems)
