"""What every policy dialect's parser shares: problems located in a file, and field checks.

A parser collects every problem of a file, one line each, as `file: document N (name): path:
what`, so that a policy is refused whole, with all its faults named at once.
"""

from __future__ import annotations

import re
from typing import Any

_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class Where:
    """Adds problems prefixed with the file, document number and name."""

    def __init__(self, source: str, index: int, name: str | None, problems: list[str]) -> None:
        self.source, self.index, self.name, self.problems = source, index, name, problems

    def line(self, path: str, message: str) -> str:
        named = f" ({self.name})" if self.name else ""
        return f"{self.source}: document {self.index}{named}: {path}: {message}"

    def add(self, path: str, message: str) -> None:
        self.problems.append(self.line(path, message))


def check_keys(where: Where, value: Any, path: str, known: set[str]) -> dict[str, Any]:
    """The mapping at `path`, with a problem for each unknown key; {} when not a mapping."""
    if not isinstance(value, dict):
        where.add(path, "must be a mapping")
        return {}
    for key in value:
        if key not in known:
            where.add(f"{path}.{key}" if path else str(key), "unknown field")
    return value


def metadata_name(where: Where, document: dict[str, Any], body: str = "spec") -> str | None:
    """The document's `metadata.name` (a DNS name), after checking its top-level keys."""
    check_keys(where, document, "", {"apiVersion", "kind", "metadata", body, "status"})
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        where.add("metadata", "must be a mapping with a name")
        return None
    name = metadata.get("name")
    if not isinstance(name, str) or not _DNS_NAME.fullmatch(name):
        where.add("metadata.name", "must be a lowercase DNS name (a-z, 0-9, '-', '.')")
        return None
    return name


def string_value(where: Where, value: Any, path: str, *, required: bool = False) -> str | None:
    """A non-empty string at `path`, or None (with a problem when required or mistyped)."""
    if value is None or value == "":
        if required:
            where.add(path, "missing")
        return None
    if not isinstance(value, str):
        where.add(path, "must be a string")
        return None
    return value
