"""Rego policies over attestations, evaluated by `regopy` (rego-cpp), cosign's way.

cosign's convention: the input is the whole in-toto statement, the policy declares
`package signature`, and the statement is accepted only when `data.signature.allow` is `true`
(`pkg/cosign/rego/rego.go`). Undefined, false or any other value refuses. When refused, the
messages of an optional `deny` rule in the same package say why (a keyless addition; cosign
only reports the count of failures). policy-controller's convention for ClusterImagePolicy
policies (`package sigstore`, `isCompliant` true or a set of `{result, error, warning}`
objects) is `RegoPolicy(text, query=POLICY_CONTROLLER_QUERY)`; the deploy gate calls that.

The policy is compiled once (`RegoPolicy`) and then evaluated per statement; compiling costs
milliseconds, an evaluation a fraction of one. What regopy 1.5 does differently from OPA, found
while building this (none of it changes what is allowed, since only `true` allows):
- `default allow := false` leaves the query undefined rather than false when no rule holds;
- a v0 partial set rule `deny[msg] { ... }` comes back as an object keyed by the messages (the
  v1 reading of that syntax), so both shapes are read here;
- compile errors are printed to the process's stdout unless the log level is NONE (set here);
- `Output.expressions()` on an undefined result aborts the process (std::out_of_range), so the
  result is read from its JSON text instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from keyless.client.errors import ClientError
from keyless.client.files import read_bounded
from keyless.core.errors import Reason

COSIGN_QUERY = "data.signature.allow"
# policy-controller's ClusterImagePolicy convention (cosign's ValidateJSONWithModuleInput):
# `isCompliant` is true, or a set of {"result": bool, "error": str, "warning": str} objects.
POLICY_CONTROLLER_QUERY = "data.sigstore.isCompliant"
MAX_POLICY_BYTES = 256 * 1024
MAX_MESSAGES = 8


class PolicyError(ClientError):
    """A Rego policy that cannot be read or compiled, or that failed while evaluating."""


class RegoPolicy:
    """One compiled Rego module and the rule that decides; safe to share between threads."""

    def __init__(self, text: str, *, query: str = COSIGN_QUERY, name: str = "policy.rego"):
        """Compile `text` for `query` (`data.<package>.<rule>`).

        Raises:
            PolicyError: regopy is missing, or the module does not compile.
        """
        try:
            from regopy import Interpreter, LogLevel, RegoError
        except ImportError as exc:  # pragma: no cover - a dependency of keyless
            raise PolicyError("Rego policies need the regopy package") from exc
        package, _, rule = query.rpartition(".")
        if not package.startswith("data.") or not rule:
            raise PolicyError(f"the policy query {query!r} is not data.<package>.<rule>")
        self.name = name
        self.query = query
        self._deny_query = f"{package}.deny"
        self._result_objects = query == POLICY_CONTROLLER_QUERY
        self._lock = threading.Lock()
        self._interpreter = Interpreter()
        self._interpreter.log_level = LogLevel.NONE
        self._error = RegoError
        try:
            self._interpreter.add_module(name, text)
            self._plan = self._interpreter.build(query)
            self._deny_plan = self._interpreter.build(self._deny_query)
        except RegoError as exc:
            raise PolicyError(f"policy {name} does not compile: {_first_error(exc)}") from exc

    @classmethod
    def from_file(cls, path: Path, *, query: str = COSIGN_QUERY) -> RegoPolicy:
        """Read and compile a `.rego` file (bounded in size, UTF-8).

        Raises:
            PolicyError: unreadable, too large, not UTF-8, or not compilable.
        """
        try:
            text = read_bounded(path, limit=MAX_POLICY_BYTES).decode()
        except ClientError as exc:
            raise PolicyError(f"policy: {exc.message}") from exc
        except UnicodeDecodeError as exc:
            raise PolicyError(f"policy {path} is not UTF-8 text") from exc
        return cls(text, query=query, name=path.name)

    def evaluate(self, input_document: Any) -> tuple[bool, list[str]]:
        """(allowed, messages): allowed only when the rule is exactly `true` (or, for
        `POLICY_CONTROLLER_QUERY`, holds a result object with `"result": true`).

        Messages: the `error`s of policy-controller result objects (the `warning` of an
        allowing one), else the members of a `deny` rule in the policy's package.

        Raises:
            PolicyError: the input is not JSON-encodable, or evaluation failed.
        """
        try:
            encoded = json.dumps(input_document)
        except (TypeError, ValueError) as exc:
            raise PolicyError("the policy input is not a JSON document") from exc
        with self._lock:
            try:
                self._interpreter.set_input_term(encoded)
                value = _value(self._interpreter.query_bundle(self._plan))
                allowed, messages = _decide(value, result_objects=self._result_objects)
                if not allowed and not messages:
                    messages = _messages(self._interpreter.query_bundle(self._deny_plan))
            except self._error as exc:
                raise PolicyError(
                    f"policy {self.name} failed to evaluate: {_first_error(exc)}"
                ) from exc
        return allowed, messages


def rego_check(policies: Sequence[RegoPolicy]) -> Callable[[dict[str, Any]], None] | None:
    """A check that raises VerificationError("policy") when a policy refuses a statement."""
    from keyless.client.verify import VerificationError

    if not policies:
        return None

    def check(statement: dict[str, Any]) -> None:
        for policy in policies:
            allowed, messages = policy.evaluate(statement)
            if not allowed:
                why = "; ".join(messages) if messages else f"{policy.query} is not true"
                raise VerificationError(
                    reason=Reason.POLICY, detail=f"policy {policy.name} denies: {why}"
                )

    return check


def evaluate_rego(
    policy_text: str, input_document: Any, *, query: str = COSIGN_QUERY
) -> tuple[bool, list[str]]:
    """Evaluate one Rego module against one input: (allowed, deny messages).

    For one-off use; to evaluate a policy many times, keep a `RegoPolicy`.

    Raises:
        PolicyError: the module does not compile or fails to evaluate.
    """
    return RegoPolicy(policy_text, query=query).evaluate(input_document)


def _value(output: Any) -> Any:
    """The single expression value of a query result, or None when undefined or an error."""
    if not output.ok():
        raise PolicyError(f"policy evaluation failed: {_first_line(str(output))}")
    text = str(output)
    if text == "undefined":
        return None
    try:
        result = json.loads(text)
    except ValueError:
        return None
    if isinstance(result, list):
        result = result[0] if len(result) == 1 else None
    expressions = result.get("expressions") if isinstance(result, dict) else None
    if isinstance(expressions, list) and len(expressions) == 1:
        return expressions[0]
    return None


def _decide(value: Any, *, result_objects: bool) -> tuple[bool, list[str]]:
    """Whether a rule's value allows, and the messages its result objects carry."""
    if value is True:
        return True, []
    if not result_objects:
        return False, []
    errors: list[str] = []
    for member in _members(value):
        if not isinstance(member, dict):
            continue
        if member.get("result") is True:
            warning = member.get("warning")
            return True, [str(warning)[:200]] if warning else []
        if member.get("error"):
            errors.append(str(member["error"])[:200])
    return False, errors[:MAX_MESSAGES]


def _members(value: Any) -> list[Any]:
    """The members of a Rego set as regopy returns it: a list, or (v0 partial set syntax read
    as v1) an object whose keys are the members, JSON-encoded when they are objects."""
    if isinstance(value, list):
        return value
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("result"), bool):
        return [value]  # one result object, as policy-controller's rules usually give
    members = []
    for key in value:
        try:
            members.append(json.loads(key))
        except ValueError:
            members.append(key)
    return members


def _messages(output: Any) -> list[str]:
    """The messages of a `deny` set (or v1-read object keyed by message), bounded."""
    try:
        value = _value(output)
    except PolicyError:
        return []
    return [str(item)[:200] for item in _members(value)[:MAX_MESSAGES]]


def _first_error(exc: BaseException) -> str:
    """The first `errormsg` of a rego-cpp error sequence, or its first line."""
    text = str(exc)
    marker = "(errormsg "
    start = text.find(marker)
    if start >= 0:
        rest = text[start + len(marker) :]
        length, _, message = rest.partition(":")
        if length.isdigit():
            return message[: int(length)]
    return _first_line(text)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else "unknown error"
