"""Strict JSON for untrusted input: the one reader every request parser and token parser uses.

It lives in its own dependency-free package because both `oidc` and `tlog` must use it and
neither may import the other (DESIGN.md's dependency rules); `ca` reaches it the same way.

Strict means: UTF-8 bytes only, no duplicate object keys (an attacker must not be able to make
two readers see different values), no NaN or Infinity, and nesting bounded so that a few KB of
`[[[...` can neither exhaust the interpreter's recursion limit nor cost a deep walk later.
Errors are `JSONError` (a `ValueError`) with one short line for the caller's own error body.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class JSONError(ValueError):
    """The input is not strict JSON; `str(error)` says why in one short line."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"has a duplicate field {key[:64]!r}")
            seen.add(key)
    return result


def _no_constant(name: str) -> None:
    raise _Refused(f"contains {name}")


class _Refused(Exception):
    """Raised inside the decoder's hooks; `loads` prefixes it with what was parsed."""


def _check_depth(value: Any, max_depth: int, what: str) -> None:
    """Iterative, so the check itself cannot recurse too deeply."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > max_depth:
            raise JSONError(f"{what} is nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, what: str = "request body") -> Any:
    """Parse strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, at most `max_depth` levels.

    `what` names the input in error messages ("request body", "token header").

    Raises:
        JSONError: the input is not such JSON.
    """
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError(f"{what} is not UTF-8") from exc
    else:
        text = data
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Refused as exc:
        raise JSONError(f"{what} {exc}") from None
    except RecursionError as exc:
        raise JSONError(f"{what} is nested too deeply") from exc
    except ValueError as exc:
        raise JSONError(f"{what} is not valid JSON: {exc}") from exc
    _check_depth(value, max_depth, what)
    return value
