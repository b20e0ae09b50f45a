"""The subset of Go's text/template that Fulcio's `ci-provider` issuers use.

Supported: literal text, `{{ .key }}`, `{{ index . "any/key" }}` (optionally parenthesised),
`{{ "literal" }}`, `{{if eq A B}}...{{ else }}...{{end}}`, and the `{{-`/`-}}` trim markers.
Semantics follow Go with `missingkey=error`: `.key` on a missing key is an error, while `index`
on a missing key yields "" (the zero value of a map[string]string). Output is not escaped.
Templates are parsed when the configuration loads, so a bad one stops start-up, not a request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(r'\s*(?:\(|\)|"(?:[^"\\]|\\.)*"|\.[A-Za-z_][A-Za-z0-9_]*|\.|[A-Za-z_]+)')


class TemplateError(ValueError):
    """A template that does not parse."""


class MissingKeyError(KeyError):
    """A template refers to a key present in neither the claims nor the defaults."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class _Field:
    key: str


@dataclass(frozen=True)
class _Index:
    key: str


@dataclass(frozen=True)
class _Literal:
    value: str


_Arg = _Field | _Index | _Literal


@dataclass(frozen=True)
class _Eq:
    left: _Arg
    right: _Arg


@dataclass(frozen=True)
class _If:
    condition: _Eq
    then: tuple[_Node, ...]
    otherwise: tuple[_Node, ...]


_Node = str | _Field | _Index | _Literal | _If


class Template:
    """A parsed template, rendered against a string-valued data map."""

    def __init__(self, source: str) -> None:
        self.source = source
        nodes, rest = _parse_nodes(_lex(source), stop=())
        if rest:
            raise TemplateError(f"unexpected {{{{{rest[0][1]}}}}} in template {source!r}")
        self._nodes = nodes

    @classmethod
    def template_or_claim(cls, source: str) -> Template:
        """Fulcio's rule: text with `{{` is a template, anything else names one claim."""
        if "{{" in source:
            return cls(source)
        template = cls("")
        template._nodes = (_Field(source),)
        return template

    def render(self, data: Mapping[str, str]) -> str:
        """The rendered text; raises MissingKeyError for `.key` on a missing key."""
        return "".join(_render(node, data) for node in self._nodes)


def _lex(source: str) -> list[tuple[str, str]]:
    """Split into ("text", s) and ("action", s) pieces, applying trim markers."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    for match in _ACTION.finditer(source):
        text = source[pos : match.start()]
        if match.group(1):
            text = text.rstrip()
        pieces.append(("text", text))
        pieces.append(("action", match.group(2).strip()))
        pos = match.end()
        if match.group(3):
            while pos < len(source) and source[pos].isspace():
                pos += 1
    tail = source[pos:]
    if "{{" in tail:
        raise TemplateError(f"unclosed action in template {source!r}")
    pieces.append(("text", tail))
    return [piece for piece in pieces if piece != ("text", "")]


def _parse_nodes(
    pieces: list[tuple[str, str]], *, stop: tuple[str, ...]
) -> tuple[tuple[_Node, ...], list[tuple[str, str]]]:
    nodes: list[_Node] = []
    while pieces:
        kind, value = pieces[0]
        if kind == "text":
            nodes.append(value)
            pieces = pieces[1:]
            continue
        keyword = value.split(None, 1)[0] if value else ""
        if keyword in stop:
            return tuple(nodes), pieces
        pieces = pieces[1:]
        if keyword == "if":
            condition = _parse_condition(value[2:])
            then, pieces = _parse_nodes(pieces, stop=("else", "end"))
            otherwise: tuple[_Node, ...] = ()
            if pieces and pieces[0][1] == "else":
                otherwise, pieces = _parse_nodes(pieces[1:], stop=("end",))
            if not pieces or pieces[0][1] != "end":
                raise TemplateError("missing {{end}} for {{if}}")
            pieces = pieces[1:]
            nodes.append(_If(condition, then, otherwise))
        elif keyword in ("else", "end"):
            raise TemplateError(f"unexpected {{{{{value}}}}}")
        else:
            nodes.append(_parse_argument(value))
    return tuple(nodes), pieces


def _tokens(expression: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    expression = expression.rstrip()
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if not match or match.end() == pos:
            raise TemplateError(f"cannot parse {expression!r}")
        tokens.append(match.group(0).strip())
        pos = match.end()
    return tokens


def _parse_argument(expression: str) -> _Arg:
    arg, rest = _argument(_tokens(expression))
    if rest:
        raise TemplateError(f"unexpected {' '.join(rest)!r} in {expression!r}")
    return arg


def _argument(tokens: list[str]) -> tuple[_Arg, list[str]]:
    if not tokens:
        raise TemplateError("missing value for command")
    head, rest = tokens[0], tokens[1:]
    if head == "(":
        arg, rest = _argument(rest)
        if not rest or rest[0] != ")":
            raise TemplateError("unclosed parenthesis")
        return arg, rest[1:]
    if head == "index":
        if len(rest) < 2 or rest[0] != "." or not rest[1].startswith('"'):
            raise TemplateError('index takes the form: index . "key"')
        return _Index(_unquote(rest[1])), rest[2:]
    if head.startswith('"'):
        return _Literal(_unquote(head)), rest
    if head.startswith(".") and len(head) > 1:
        return _Field(head[1:]), rest
    raise TemplateError(f"unsupported template expression {head!r}")


def _parse_condition(expression: str) -> _Eq:
    tokens = _tokens(expression)
    if not tokens or tokens[0] != "eq":
        raise TemplateError("only {{if eq A B}} conditions are supported")
    left, rest = _argument(tokens[1:])
    right, rest = _argument(rest)
    if rest:
        raise TemplateError(f"unexpected {' '.join(rest)!r} in condition")
    return _Eq(left, right)


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def _value(arg: _Arg, data: Mapping[str, str]) -> str:
    if isinstance(arg, _Literal):
        return arg.value
    if isinstance(arg, _Index):
        return data.get(arg.key, "")
    if arg.key not in data:
        raise MissingKeyError(arg.key)
    return data[arg.key]


def _render(node: _Node, data: Mapping[str, str]) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, _If):
        chosen = (
            node.then
            if _value(node.condition.left, data) == _value(node.condition.right, data)
            else node.otherwise
        )
        return "".join(_render(child, data) for child in chosen)
    return _value(node, data)
