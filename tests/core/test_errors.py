"""The one error contract: what every package's errors carry, and how a subclass says its
HTTP status and exit code."""

from __future__ import annotations

import ast

import pytest

from keyless.core.errors import Error, ProblemsError, Reason, grpc_code
from tests.conftest import REPO
from tests.test_packaging import FOLDERS


class _ThrottledError(Error):
    status = 429
    reason = Reason.UNREACHABLE
    hint = "try again in a minute"


def test_an_error_carries_message_reason_detail_and_hint() -> None:
    error = Error("the request was refused", reason=Reason.BAD_REQUEST, detail="no body")
    assert (error.message, error.reason, error.detail, error.hint) == (
        "the request was refused",
        "bad-request",
        "no body",
        None,
    )
    assert str(error) == "the request was refused: no body"
    assert str(Error("the request was refused")) == "the request was refused"


def test_defaults_are_a_server_error_exit_1_and_the_generic_reason() -> None:
    error = Error("boom")
    assert (error.status, error.exit_code, error.reason, error.detail) == (500, 1, "error", "")


def test_a_subclass_sets_status_reason_and_hint_once_and_a_raise_site_may_override() -> None:
    assert (_ThrottledError("busy").status, _ThrottledError("busy").reason) == (429, "unreachable")
    assert _ThrottledError("busy").hint == "try again in a minute"
    overridden = _ThrottledError("busy", reason=Reason.TOO_MANY_ITEMS, hint="wait")
    assert (overridden.reason, overridden.hint) == ("too-many-items", "wait")
    assert _ThrottledError.reason == "unreachable"  # the override is the instance's only


def test_problems_are_listed_under_their_heading() -> None:
    error = ProblemsError("server.yaml is invalid", ["unknown key 'colour'", "port 0"])
    assert error.problems == ["unknown key 'colour'", "port 0"]
    assert error.message == "server.yaml is invalid:\n  - unknown key 'colour'\n  - port 0"
    assert error.one_line_per_problem is False


def test_reasons_are_slugs_and_compare_as_strings() -> None:
    assert all(r.value == r.value.lower() and " " not in r.value for r in Reason)
    assert Reason.TOO_LARGE == "too-large" and f"{Reason.TOO_LARGE}" == "too-large"


@pytest.mark.parametrize(
    ("status", "code"), [(400, 3), (404, 5), (409, 6), (413, 8), (500, 13), (418, 2)]
)
def test_grpc_codes_follow_grpc_gateway(status: int, code: int) -> None:
    assert grpc_code(status) == code


def _literal_reasons(path) -> list[str]:
    """Where a module spells a reason as a string: a `reason=` argument, or a class's
    `reason = ...`, instead of a `Reason` member."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        values = []
        if isinstance(node, ast.Call):
            values = [kw.value for kw in node.keywords if kw.arg == "reason"]
        elif isinstance(node, ast.ClassDef):
            values = [
                statement.value
                for statement in node.body
                if isinstance(statement, ast.Assign)
                and any(getattr(target, "id", None) == "reason" for target in statement.targets)
            ]
        found += [
            f"{path.relative_to(REPO)}:{value.lineno}: {value.value!r}"
            for value in values
            if isinstance(value, ast.Constant) and isinstance(value.value, str)
        ]
    return found


def test_every_reason_comes_from_the_registry() -> None:
    offenders = [
        line
        for folder in FOLDERS
        for path in sorted((REPO / folder).rglob("*.py"))
        for line in _literal_reasons(path)
    ]
    assert not offenders


def test_an_oversized_input_has_one_reason_everywhere() -> None:
    from keyless.client.oci.errors import TooLargeError
    from keyless.tlog.errors import BodyTooLargeError
    from keyless.tsa.errors import RequestTooLargeError

    assert {TooLargeError.reason, BodyTooLargeError.reason, RequestTooLargeError.reason} == {
        "too-large"
    }
    assert not {"request-too-large", "body-too-large"} & {r.value for r in Reason}
