"""Strict YAML: the one reader of every YAML file keyless takes (server.yaml, issuers, policies,
manifests), so that a file means one thing to its reviewer and the same thing to keyless.

It is PyYAML's safe loader (no `!!python/` tags) with what a reviewer cannot see refused:
- a duplicate mapping key (PyYAML keeps the last value silently: `mode: warn` then
  `mode: enforce` would read as enforce), in block and flow mappings alike;
- a key that is not a string (`1:`, `true:`, `null:`, `on:`, a mapping): JSON keys are strings,
  and readers that turn YAML into JSON (Kubernetes) make `1` and `"1"` one key; quote it;
- merge keys (`<<`), anchors (`&name`) and aliases (`*name`): a value stands where it is
  written, and a few hundred bytes of aliases cannot expand into gigabytes ("billion laughs").
  One opt-in, `scalar_aliases=True`, for Fulcio's own configuration, which names its issuer
  types with scalar anchors (`&github-type "github-workflow"`): anchors on scalars and their
  aliases are kept (a repeated string costs nothing), an anchor on a collection is still refused;
- every type JSON lacks: timestamps stay strings (no `datetime` appears by surprise), `.nan` and
  `.inf`, explicit tags other than `!!str`, `!!seq` and `!!map` (`!!binary`, `!!set`,
  `!!timestamp`, `!!int`...), base-60 numbers (`22:22` is 1342 to YAML 1.1, a string to 1.2)
  and integers longer than 64 characters (their conversion costs time).

Input is UTF-8, at most `max_bytes` long, nested at most `max_depth` collections deep. Every
error is a `StrictYAMLError` naming the file, the line and the column (1-based):
`server.yaml:7:1: duplicate key 'dev-issuer' (first at line 3)`; syntax errors read
`not valid YAML: <what PyYAML says>`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 64

_TAG = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP = f"{_TAG}str", f"{_TAG}seq", f"{_TAG}map"
_INT, _FLOAT, _MERGE = f"{_TAG}int", f"{_TAG}float", f"{_TAG}merge"
_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, f"{_TAG}bool", f"{_TAG}null"})
_EXPLICIT_TAGS = frozenset({_STR, _SEQ, _MAP})


class StrictYAMLError(ValueError):
    """The input is not strict YAML; `str(error)` is `source:line:column: problem`.

    A parser's ValueError, as `strictjson.JSONError` is, not a `keyless.core.errors.Error`:
    each reader lists it among the problems of its own error (`ConfigError`,
    `ServerConfigError`, `PolicyFileError`, `WorkloadError`), whose status and exit code
    depend on what the file was.
    """

    def __init__(
        self, source: str, problem: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        self.source = source
        self.problem = problem
        self.line = line
        self.column = column
        where = source if line is None else f"{source}:{line}:{column}"
        super().__init__(f"{where}: {problem}" if where else problem)


class LocatedDict(dict[str, Any]):
    """A YAML mapping that remembers where it starts and the line of each key (1-based), for
    readers whose own problems name a line (`load(..., locate=True)`)."""

    line: int
    column: int
    key_lines: dict[str, int]


def load(
    data: bytes | str,
    *,
    source: str,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    locate: bool = False,
    scalar_aliases: bool = False,
) -> Any:
    """The one document of `data` (None when empty); `source` names it in errors.

    Raises:
        StrictYAMLError: not strict YAML, or a stream of more than one document.
    """
    documents = _Documents(data, source, max_bytes, max_depth, locate, scalar_aliases)
    first = None
    for count, (node, value) in enumerate(documents, start=1):
        if count > 1:
            raise documents.refused(node.start_mark, "holds more than one YAML document")
        first = value
    return first


def load_all(
    data: bytes | str,
    *,
    source: str,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    locate: bool = False,
    scalar_aliases: bool = False,
) -> list[Any]:
    """Every document of the stream `data` (`---` between them), an empty one as None.

    Raises:
        StrictYAMLError: any document is not strict YAML.
    """
    documents = _Documents(data, source, max_bytes, max_depth, locate, scalar_aliases)
    return [value for _, value in documents]


class _Documents:
    """Composes, checks and constructs one document at a time, turning PyYAML's errors into
    `StrictYAMLError`s with the location."""

    def __init__(
        self,
        data: bytes | str,
        source: str,
        max_bytes: int,
        max_depth: int,
        locate: bool,
        scalar_aliases: bool,
    ) -> None:
        self.source = source
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
        if len(raw) > max_bytes:
            raise StrictYAMLError(source, f"larger than {max_bytes} bytes")
        if isinstance(data, str):
            self.text = data
        else:
            try:
                self.text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                line, column = _position(raw, exc.start)
                raise StrictYAMLError(source, "not UTF-8", line=line, column=column) from None
        self.max_depth = max_depth
        self.locate = locate
        self.scalar_aliases = scalar_aliases

    def __iter__(self) -> Iterator[tuple[yaml.Node, Any]]:
        loader = None
        try:
            loader = _Loader(self)
            while loader.check_node():
                node = loader.get_node()
                if node is None:  # check_node said a document follows
                    break
                yield node, loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = f"not valid YAML: {exc.problem or exc.context}"
            error = self.refused(mark, problem) if mark else StrictYAMLError(self.source, problem)
            raise error from exc
        except yaml.reader.ReaderError as exc:
            line, column = _position(self.text, exc.position)
            problem = f"not valid YAML: the character {chr(exc.character)!r} is not allowed"
            raise StrictYAMLError(self.source, problem, line=line, column=column) from exc
        finally:
            if loader is not None:
                loader.dispose()

    def refused(self, mark: yaml.Mark, problem: str) -> StrictYAMLError:
        return StrictYAMLError(self.source, problem, line=mark.line + 1, column=mark.column + 1)


class _Loader(yaml.SafeLoader):
    """The safe loader, checking each node as it is composed (before any value is built)."""

    def __init__(self, documents: _Documents) -> None:
        super().__init__(documents.text)
        self.documents = documents
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # PyYAML's stubs lack it
        refused = self.documents.refused
        scalar = isinstance(event, yaml.ScalarEvent)
        mark: yaml.Mark = event.start_mark
        if isinstance(event, yaml.AliasEvent) and not self.documents.scalar_aliases:
            raise refused(mark, f"YAML aliases (*{event.anchor}) are not allowed")
        if isinstance(event, yaml.AliasEvent):
            return super().compose_node(parent, index)  # only scalars have anchors
        if event.anchor is not None and not (scalar and self.documents.scalar_aliases):
            raise refused(mark, f"YAML anchors (&{event.anchor}) are not allowed")
        if event.tag is not None and event.tag not in _EXPLICIT_TAGS:
            raise refused(mark, f"the tag {_short(event.tag)} is not allowed")
        collection = isinstance(event, yaml.CollectionStartEvent)
        if collection:
            self.depth += 1
            if self.depth > self.documents.max_depth:
                raise refused(mark, f"nested deeper than {self.documents.max_depth} levels")
        node = super().compose_node(parent, index)
        if collection:
            self.depth -= 1
        if node is not None:
            _check(node, refused)
        return node


# Timestamps stay strings; so does `=` (YAML 1.1's "value" type, which nothing constructs).
_DROPPED_RESOLVERS = frozenset({f"{_TAG}timestamp", f"{_TAG}value"})
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_RESOLVERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _check(node: yaml.Node, refused: Callable[[yaml.Mark, str], StrictYAMLError]) -> None:
    """A node JSON could hold: the right tag for its kind, string keys each written once."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _MERGE:
            raise refused(node.start_mark, "merge keys (<<) are not allowed")
        if node.tag not in _SCALAR_TAGS:
            raise refused(node.start_mark, f"the tag {_short(node.tag)} is not allowed")
        if node.tag in (_INT, _FLOAT) and ":" in node.value:
            raise refused(node.start_mark, f"{node.value} is a YAML 1.1 base-60 number; quote it")
        if node.tag in (_INT, _FLOAT) and len(node.value) > MAX_NUMBER_CHARS:
            raise refused(node.start_mark, f"a number longer than {MAX_NUMBER_CHARS} characters")
        return
    expected = _MAP if isinstance(node, yaml.MappingNode) else _SEQ
    if node.tag != expected:
        raise refused(node.start_mark, f"the tag {_short(node.tag)} is not allowed here")
    if not isinstance(node, yaml.MappingNode):
        return
    first_lines: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise refused(key.start_mark, "a mapping key must be a string, not a collection")
        if key.tag != _STR:
            raise refused(
                key.start_mark,
                f"the key {key.value[:64]} is not a string (YAML reads it as {_short(key.tag)});"
                " quote it",
            )
        if key.value in first_lines:
            raise refused(
                key.start_mark,
                f"duplicate key {key.value[:64]!r} (first at line {first_lines[key.value]})",
            )
        first_lines[key.value] = key.start_mark.line + 1


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _position(data: bytes | str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of `offset` in `data`."""
    if isinstance(data, bytes):
        before_bytes = data[:offset]
        return before_bytes.count(b"\n") + 1, offset - (before_bytes.rfind(b"\n") + 1) + 1
    before = data[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[dict[str, Any]]:
    data: dict[str, Any] = LocatedDict() if loader.documents.locate else {}
    if isinstance(data, LocatedDict):
        data.line, data.column = node.start_mark.line + 1, node.start_mark.column + 1
        data.key_lines = {key.value: key.start_mark.line + 1 for key, _ in node.value}
    yield data
    # Every key is a string: _check refused any other before construction.
    data.update({str(key): value for key, value in loader.construct_mapping(node).items()})


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    value = loader.construct_yaml_float(node)
    if not math.isfinite(value):
        raise loader.documents.refused(node.start_mark, f"{node.value} is not a finite number")
    return value


_Loader.add_constructor(_MAP, _construct_map)
_Loader.add_constructor(_FLOAT, _construct_float)

__all__ = ["MAX_BYTES", "MAX_DEPTH", "LocatedDict", "StrictYAMLError", "load", "load_all"]
