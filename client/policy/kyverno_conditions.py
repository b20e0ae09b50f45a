"""Kyverno's attestation `conditions`, checked over a verified in-toto statement's predicate.

`conditions` is a list of `{any: [...], all: [...]}` blocks; every block must hold, and a block
holds when one of its `any` conditions does (an empty `any` list never holds, as in Kyverno)
and all of its `all` conditions do. A condition compares a `key` with a `value` by `operator`;
either may be `{{ expression }}`, a JMESPath expression over the predicate
(`pkg/engine/variables`, `pkg/engine/variables/operator` in kyverno/kyverno).

keyless reads a subset exactly and refuses the rest when loading:

- operators `Equals`/`Equal`, `NotEquals`/`NotEqual`, `AnyIn`, `AllIn`, `AnyNotIn`,
  `AllNotIn`, with Kyverno's type rules and its `*`/`?` wildcards (for `Equals`, the value is
  the pattern; for the `In` family, either side may be); the deprecated `In`/`NotIn`, the numeric
  and the `Duration*` operators are refused;
- a key or value is a literal or one whole `{{ expression }}` of standard JMESPath; Kyverno's
  own JMESPath functions (`regex_match`, `time_after`, ...) and nested or embedded `{{ }}` are
  refused.

Where Kyverno would compare Kubernetes quantities or Go durations (`"1Gi"`, `"1h"`), parse a
JSON array out of a string, or read a range (`"1-10"`), keyless does not guess: the condition
fails, and says why. So does an expression that finds nothing or `null` (Kyverno fails a
missing key; a present `null` it reads as no match). Each of these makes a check fail that
Kyverno might pass, never the other way round.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from keyless.client.policy.wildcard import match_wildcard
from keyless.client.verify import VerificationError
from keyless.core.errors import Reason

OPERATORS = {
    "Equals": "equals",
    "Equal": "equals",
    "NotEquals": "not-equals",
    "NotEqual": "not-equals",
    "AnyIn": "any-in",
    "AllIn": "all-in",
    "AnyNotIn": "any-not-in",
    "AllNotIn": "all-not-in",
}
REFUSED_OPERATORS = {
    "In": "the deprecated In is not supported; use AnyIn or AllIn",
    "NotIn": "the deprecated NotIn is not supported; use AnyNotIn or AllNotIn",
    "GreaterThanOrEquals": "numeric comparisons are not supported yet",
    "GreaterThan": "numeric comparisons are not supported yet",
    "LessThanOrEquals": "numeric comparisons are not supported yet",
    "LessThan": "numeric comparisons are not supported yet",
    "DurationGreaterThanOrEquals": "duration comparisons are not supported",
    "DurationGreaterThan": "duration comparisons are not supported",
    "DurationLessThanOrEquals": "duration comparisons are not supported",
    "DurationLessThan": "duration comparisons are not supported",
}
# The functions of JMESPath itself; Kyverno adds its own, which keyless does not provide.
JMESPATH_FUNCTIONS = frozenset(
    {
        *("abs", "avg", "ceil", "contains", "ends_with", "floor", "join", "keys", "length"),
        *("map", "max", "max_by", "merge", "min", "min_by", "not_null", "reverse", "sort"),
        *("sort_by", "starts_with", "sum", "to_array", "to_number", "to_string", "type"),
        "values",
    }
)
MAX_EXPRESSION_CHARS = 1024
COSIGN_CUSTOM_PREDICATE = "https://cosign.sigstore.dev/attestation/v1"
_VARIABLE = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.DOTALL)
# Go's time.ParseDuration grammar and Kubernetes' resource.ParseQuantity grammar.
_DURATION = re.compile(r"[-+]?((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+")
_QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?")
_GO_FLOAT = re.compile(
    r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])"
)


class ConditionError(ValueError):
    """A condition keyless cannot read exactly; the message names the part."""


@dataclass(frozen=True)
class _Operand:
    """A literal, or a compiled JMESPath expression (`{{ ... }}`)."""

    literal: Any = None
    expression: Any = None  # a jmespath ParsedResult
    text: str = ""

    def value(self, predicate: dict[str, Any]) -> Any:
        if self.expression is None:
            return self.literal
        found = self.expression.search(predicate)
        if found is None:
            raise _Undecided(
                f"{{{{ {self.text} }}}} finds nothing in the predicate (a missing key or null)"
            )
        return found


@dataclass(frozen=True)
class _Condition:
    key: _Operand
    operator: str
    value: _Operand
    message: str


@dataclass(frozen=True)
class _Block:
    any: tuple[_Condition, ...] | None
    all: tuple[_Condition, ...]


class _Undecided(Exception):
    """Kyverno would compare in a way keyless does not reproduce: the condition fails."""


@dataclass(frozen=True)
class KyvernoConditions:
    """An attestation's compiled `conditions`: `check(statement)` raises VerificationError
    ("policy") when they do not hold for the statement's predicate."""

    blocks: tuple[_Block, ...]
    predicate_type: str

    def check(self, statement: dict[str, Any]) -> None:
        predicate = _predicate(statement)
        for block in self.blocks:
            holds, message = _holds(block, predicate)
            if not holds:
                raise VerificationError(
                    reason=Reason.POLICY,
                    detail=f"attestation checks failed for predicate {self.predicate_type}"
                    + (f": {message}" if message else ""),
                )


def compile_conditions(value: Any, predicate_type: str) -> KyvernoConditions:
    """Compile an attestation's `conditions` list.

    Raises:
        ConditionError: a part keyless does not read exactly; the message starts with its path
            (`[0].all[1].operator: ...`).
    """
    if not isinstance(value, list):
        raise ConditionError(": must be a list of {any, all} blocks")
    blocks = []
    for index, item in enumerate(value):
        at = f"[{index}]"
        if not isinstance(item, dict):
            raise ConditionError(f"{at}: must be a mapping with any and/or all")
        for key in item:
            if key not in ("any", "all"):
                raise ConditionError(f"{at}.{key}: unknown field")
        any_ = _conditions(item.get("any"), f"{at}.any") if "any" in item else None
        all_ = _conditions(item.get("all"), f"{at}.all") if "all" in item else ()
        blocks.append(_Block(any_, all_ or ()))
    return KyvernoConditions(tuple(blocks), predicate_type)


def _conditions(value: Any, at: str) -> tuple[_Condition, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConditionError(f"{at}: must be a list of conditions")
    return tuple(_condition(item, f"{at}[{i}]") for i, item in enumerate(value))


def _condition(item: Any, at: str) -> _Condition:
    if not isinstance(item, dict):
        raise ConditionError(f"{at}: must be a mapping with key, operator and value")
    for key in item:
        if key not in ("key", "operator", "value", "message"):
            raise ConditionError(f"{at}.{key}: unknown field")
    operator = item.get("operator")
    if operator in REFUSED_OPERATORS:
        raise ConditionError(f"{at}.operator: {REFUSED_OPERATORS[operator]}")
    if operator not in OPERATORS:
        raise ConditionError(f"{at}.operator: {operator!r} is not a Kyverno condition operator")
    message = item.get("message", "")
    if not isinstance(message, str):
        raise ConditionError(f"{at}.message: must be a string")
    if "{{" in message:
        raise ConditionError(f"{at}.message: variables in messages are not supported")
    return _Condition(
        _operand(item.get("key"), f"{at}.key"),
        OPERATORS[operator],
        _operand(item.get("value"), f"{at}.value"),
        message,
    )


def _operand(value: Any, at: str) -> _Operand:
    if isinstance(value, str) and "{{" in value:
        match = _VARIABLE.fullmatch(value)
        if match is not None and "{{" in match[1]:
            raise ConditionError(f"{at}: nested {{{{ }}}} variables are not supported")
        if match is None or "}}" in match[1]:
            raise ConditionError(
                f"{at}: only a whole-value {{{{ expression }}}} is supported, not {value!r}"
            )
        return _Operand(expression=_compile(match[1], at), text=match[1])
    if _has_variable(value):
        raise ConditionError(f"{at}: variables inside a list or mapping are not supported")
    return _Operand(literal=value)


def _compile(text: str, at: str) -> Any:
    import jmespath
    from jmespath.exceptions import JMESPathError

    if text.startswith("-"):
        raise ConditionError(f"{at}: shallow substitution ({{{{- ... }}}}) is not supported")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ConditionError(f"{at}: longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        parsed = jmespath.compile(text)
    except JMESPathError as exc:
        raise ConditionError(f"{at}: {text!r} is not a JMESPath expression: {exc}") from None
    for name in _functions(parsed.parsed):
        if name not in JMESPATH_FUNCTIONS:
            raise ConditionError(
                f"{at}: {name}() is a Kyverno JMESPath function keyless does not provide"
            )
    return parsed


def _functions(node: Any) -> list[str]:
    if not isinstance(node, dict):
        return []
    found = [node["value"]] if node.get("type") == "function_expression" else []
    for child in node.get("children", ()):
        found += _functions(child)
    return found


def _has_variable(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, list):
        return any(_has_variable(v) for v in value)
    if isinstance(value, dict):
        return any(_has_variable(k) or _has_variable(v) for k, v in value.items())
    return False


def _predicate(statement: dict[str, Any]) -> dict[str, Any]:
    """The predicate Kyverno's conditions read: cosign's custom predicate has its `Data`
    string decoded when it holds a JSON object (`decodeCosignCustomProvenanceV01`)."""
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise VerificationError(
            reason=Reason.POLICY, detail="the statement's predicate is not a JSON object"
        )
    if statement.get("predicateType") == COSIGN_CUSTOM_PREDICATE and isinstance(
        predicate.get("Data"), str
    ):
        try:
            data = json.loads(predicate["Data"])
        except ValueError:
            data = None
        if isinstance(data, dict):
            predicate = {**predicate, "Data": data}
    return predicate


def _holds(block: _Block, predicate: dict[str, Any]) -> tuple[bool, str]:
    """Kyverno's evaluateAnyAllConditions: (holds, the messages of the conditions that
    decided)."""
    failed: list[str] = []
    if block.any is not None and not any(_true(c, predicate, failed) for c in block.any):
        return False, "; ".join(m for m in failed if m)
    for condition in block.all:
        if not _true(condition, predicate, failed):
            return False, "; ".join(m for m in failed if m)
    return True, ""


def _true(condition: _Condition, predicate: dict[str, Any], failed: list[str]) -> bool:
    try:
        key = condition.key.value(predicate)
        value = condition.value.value(predicate)
        result = bool(_OPERATIONS[condition.operator](key, value))
    except _Undecided as exc:
        raise VerificationError(
            reason=Reason.POLICY, detail=f"a condition cannot be decided: {exc}"
        ) from None
    if not result:
        failed.append(condition.message)
    return result


# The operators, over values as JSON decodes them (Go reads every number as a float64).


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equals(key: Any, value: Any) -> bool:
    if isinstance(key, bool):
        return isinstance(value, bool) and key == value
    if _is_number(key):
        number = _number(value)
        return number is not None and float(key) == number
    if isinstance(key, str):
        _quantity_or_duration(key, value)
        return isinstance(value, str) and match_wildcard(value, key)
    if isinstance(key, dict | list):
        return type(value) is type(key) and _deep_equal(key, value)
    return False


def _not_equals(key: Any, value: Any) -> bool:
    if isinstance(key, bool):
        return not isinstance(value, bool) or key != value
    if _is_number(key):
        number = _number(value)
        return number is None or float(key) != number
    if isinstance(key, str):
        if value == "":
            return key != ""
        _quantity_or_duration(key, value)
        return not isinstance(value, str) or not match_wildcard(value, key)
    if isinstance(key, dict | list):
        return type(value) is not type(key) or not _deep_equal(key, value)
    return False


def _number(value: Any) -> float | None:
    """A value compared with a number key: a number, or a string Go's ParseFloat reads."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        if value.lstrip("+-")[:2].lower() == "0x":
            raise _Undecided(f"{value!r} is a hexadecimal number")
        if not _GO_FLOAT.fullmatch(value):
            return None
        return float(value)
    return None


def _quantity_or_duration(key: str, value: Any) -> None:
    """Kyverno compares two durations, or a quantity with a string, before any wildcard."""
    if _is_duration(key) and (_is_duration(value) or _is_number(value)):
        raise _Undecided(f"{key!r} and {value!r} would be compared as Go durations")
    if isinstance(value, str) and _QUANTITY.fullmatch(key):
        raise _Undecided(f"{key!r} and {value!r} would be compared as Kubernetes quantities")


def _is_duration(value: Any) -> bool:
    return isinstance(value, str) and value != "0" and bool(_DURATION.fullmatch(value))


def _deep_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and float(a) == float(b)
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
        )
    return type(a) is type(b) and a == b


def _in_family(operator: str) -> Any:
    """AnyIn, AllIn, AnyNotIn and AllNotIn: a scalar key, or a list of scalars, against a list
    of scalars, each pair compared by wildcard either way round."""

    def operation(key: Any, value: Any) -> bool:
        if key is None or isinstance(key, dict):
            return False
        if not isinstance(value, list):
            raise _Undecided(
                f"{_shown(value)} is not a list (Kyverno reads JSON arrays and ranges out of "
                "strings; keyless does not)"
            )
        values = [_sprint(v) for v in value]
        if not isinstance(key, list):
            found = _found(_sprint(key), values)
            return found if operator in ("any-in", "all-in") else not found
        keys = [_sprint(k) for k in key]
        hits = [_found(k, values) for k in keys]
        if operator == "any-in":
            return any(hits)
        if operator == "all-in":
            return all(hits)
        if operator == "any-not-in":
            return not all(hits)
        return not any(hits)

    return operation


def _found(key: str, values: list[str]) -> bool:
    return any(match_wildcard(v, key) or match_wildcard(key, v) for v in values)


def _sprint(value: Any) -> str:
    """Go's fmt.Sprint for a JSON scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if _is_number(value):
        return _go_float(float(value))
    raise _Undecided(f"{_shown(value)} is not a string, number or boolean")


def _go_float(number: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64), which fmt.Sprint uses for a float64."""
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if math.isnan(number):
        return "NaN"
    if number == 0:
        return "0"
    exponent = math.floor(math.log10(abs(number)))
    if not -4 <= exponent < 21:
        return repr(number)
    if number.is_integer():
        return str(int(number))
    return format(Decimal(repr(number)), "f")


def _shown(value: Any) -> str:
    return json.dumps(value)[:80]


_OPERATIONS = {
    "equals": _equals,
    "not-equals": _not_equals,
    "any-in": _in_family("any-in"),
    "all-in": _in_family("all-in"),
    "any-not-in": _in_family("any-not-in"),
    "all-not-in": _in_family("all-not-in"),
}
