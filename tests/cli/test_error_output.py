"""cli/main.py is where an expected failure becomes output: `error:` and `hint:` lines on
stderr (or the Action's `::error` annotation) and the error's own exit code; a bug raises."""

from __future__ import annotations

import pytest

from keyless.cli.main import CLIError, run_reporting
from keyless.client.policy import PolicyFileError
from keyless.core.errors import Error, ProblemsError


def _failing(error: BaseException):
    def run() -> int:
        raise error

    return run


def test_a_failure_is_its_message_and_hint_and_exit_1(capsys) -> None:
    assert run_reporting(_failing(CLIError("cannot write out.json", hint="check the path"))) == 1
    assert capsys.readouterr().err == "error: cannot write out.json\nhint: check the path\n"


def test_a_configuration_lists_its_problems_under_its_heading(capsys) -> None:
    assert run_reporting(_failing(ProblemsError("server.yaml is invalid", ["a", "b"]))) == 1
    assert capsys.readouterr().err == "error: server.yaml is invalid:\n  - a\n  - b\n"


def test_policy_problems_are_one_error_line_each_and_exit_2(capsys) -> None:
    problems = ["p.yaml: document 1: spec.mode: must be enforce or warn", "p.yaml: no images"]
    assert run_reporting(_failing(PolicyFileError(problems))) == 2
    assert capsys.readouterr().err == "".join(f"error: {p}\n" for p in problems)


def test_the_cause_is_shown_with_verbose(capsys) -> None:
    error = CLIError("cannot read the bundle")
    error.__cause__ = OSError(2, "No such file or directory")
    assert run_reporting(_failing(error), verbose=True) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cause: FileNotFoundError(2, 'No such file or directory')"
    )


def test_the_action_reports_a_github_annotation(capsys) -> None:
    error = Error("no GitHub Actions OIDC token", hint="grant id-token: write")
    assert run_reporting(_failing(error), github=True) == 1
    assert capsys.readouterr().err == (
        "::error title=keyless::no GitHub Actions OIDC token (grant id-token: write)\n"
    )


def test_a_bug_is_not_reported_but_raised(capsys) -> None:
    with pytest.raises(KeyError):
        run_reporting(_failing(KeyError("oops")))
    assert capsys.readouterr().err == ""
