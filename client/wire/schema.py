"""The reading engine of the lean wire types: messages, lists and strict scalars.

A wire type is a `Message` subclass that lists its `FIELDS`; `read_document` parses strict JSON
(`keyless.strictjson`: bounded, duplicate keys refused) and builds the message tree, checking
what sigstore-models checks, in the order it reports problems, with its wording, so that a
malformed bundle reads the same to a user as before:
- at each level, unknown keys first ("Extra inputs are not permitted"), then the fields in
  their declared order ("Field required", or the field's own problem);
- a field may be spelled in lowerCamelCase or as its proto name (snake_case), as protobuf's
  JSON mapping and sigstore-models allow; `null` stands for an absent optional field;
- a message's own rule (`Message.check`) runs once its fields are read.

Where sigstore-models is lenient and this engine is not, on purpose (a parser that reads more
than one meaning into a document is what an attacker looks for):
- a key given twice, or a field given under both of its spellings (sigstore-models keeps the
  last duplicate, and the camelCase spelling over the other, which it then ignores unread);
- base64 other than the standard alphabet with `=` padding, and line breaks, which `base64`
  tools write and Go's decoder skips too (sigstore-models drops every other character, so
  `QU!JD` reads as `QUJD`, and `-` and `_`, which Go reads as URL-safe digits);
- a uint64 other than ASCII decimal digits (sigstore-models takes `" 7"`, `"+7"`, `"7_0"` and
  non-ASCII digits, as Python's `int()` does);
- a time other than RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+HH:MM]` (sigstore-models also
  takes a space or `_` for `T`, no seconds, a comma, `+HHMM` and a count of seconds).
tests/cli/test_wire.py holds the engine to sigstore-models on every document of tests/data
and on mutated ones, and lists these differences.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar

from keyless.strictjson import loads

Location = tuple[str | int, ...]
# A reader takes a JSON value and returns what it reads, or raises WireError located relative
# to that value (each enclosing message and list adds its key on the way out, so a document
# that reads builds no locations at all).
Reader = Callable[[Any], Any]
M = TypeVar("M", bound="Message")

MAX_UINT64 = 2**64 - 1
_REQUIRED: Any = object()
_ABSENT: Any = object()
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# RFC 3339 date-time; "T" and "Z" may be lower case (its section 5.6). Without an offset the
# time is naive, which the trust model refuses with its own message.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


class WireError(ValueError):
    """A document does not have its schema's shape: where (`location`) and why (`reason`)."""

    def __init__(self, location: Location, reason: str) -> None:
        where = ".".join(str(part) for part in location)
        super().__init__(f"{where}: {reason}" if where else reason)
        self.location = location
        self.reason = reason

    def within(self, part: str | int) -> WireError:
        """The same problem, seen from the value that holds this one under `part`."""
        return WireError((part, *self.location), self.reason)


class Field:
    """One field of a message: its proto name, how its value is read, and what its absence
    means (required, or a default; `nullable` fields also take `null` for None)."""

    __slots__ = ("absent", "json_name", "name", "nullable", "read", "required")

    def __init__(
        self, name: str, read: Reader, *, absent: Any = _REQUIRED, nullable: bool = False
    ) -> None:
        head, *rest = name.split("_")
        self.name = name
        self.json_name = head + "".join(part.capitalize() for part in rest)
        self.read = read
        self.absent = absent
        self.required = absent is _REQUIRED
        self.nullable = nullable


def optional(name: str, read: Reader) -> Field:
    """A field that may be absent or `null` (None)."""
    return Field(name, read, absent=None, nullable=True)


class Message:
    """Base of the wire types: read-only after construction, compared by value.

    Only the reader builds them (it passes every field by name); `FIELDS` is the schema.
    """

    FIELDS: ClassVar[tuple[Field, ...]] = ()
    _BY_KEY: ClassVar[dict[str, Field]] = {}
    _READER: ClassVar[Reader]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._BY_KEY = {key: f for f in cls.FIELDS for key in (f.json_name, f.name)}
        cls._READER = _message_reader(cls)

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *self.__dict__.values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__name__}({fields})"

    def check(self) -> None:
        """The message's own rule, once its fields are read (sigstore-models' model
        validators); raises ValueError with the reason."""


def read_document(cls: type[M], data: bytes | str, *, what: str) -> M:
    """Parse strict JSON and read it as a `cls`.

    Raises:
        JSONError: not strict JSON (`what` names the document in the message).
        WireError: not a `cls`.
    """
    document: M = cls._READER(loads(data, what=what))
    return document


def message(cls: type[M]) -> Reader:
    """The reader of a JSON object as a `cls`."""
    return cls._READER


def _message_reader(cls: type[M]) -> Reader:
    fields = cls.FIELDS
    by_key = cls._BY_KEY
    camel = frozenset(field.json_name for field in fields)
    checked = cls.check is not Message.check

    def read(value: Any) -> M:
        if not isinstance(value, dict):
            raise WireError((), "Input should be an object")
        # The usual document spells every key in camelCase: then none is unknown or twice.
        given = value if value.keys() <= camel else _by_json_name(value, by_key)
        values: dict[str, Any] = {}
        for field in fields:
            item = given.get(field.json_name, _ABSENT)
            if item is _ABSENT:
                if field.required:
                    raise WireError((field.json_name,), "Field required")
                values[field.name] = field.absent
            elif item is None and field.nullable:
                values[field.name] = None
            else:
                try:
                    values[field.name] = field.read(item)
                except WireError as exc:
                    raise exc.within(field.json_name) from None
        result = object.__new__(cls)
        result.__dict__.update(values)
        if checked:
            try:
                result.check()
            except ValueError as exc:
                raise WireError((), f"Value error, {exc}") from None
        return result

    return read


def _by_json_name(value: dict[str, Any], by_key: dict[str, Field]) -> dict[str, Any]:
    """The object's fields by their camelCase names, whichever spelling it used; unknown keys
    first (sigstore-models reports them before anything else), then a field given twice."""
    given: dict[str, Any] = {}
    twice = None
    for key, item in value.items():
        field = by_key.get(key)
        if field is None:
            raise WireError((key,), "Extra inputs are not permitted")
        if field.json_name in given and twice is None:
            twice = field
        given[field.json_name] = item
    if twice is not None:
        raise WireError(
            (twice.json_name,), f"given twice, as {twice.json_name!r} and as {twice.name!r}"
        )
    return given


def list_of(item: Reader) -> Reader:
    """The reader of a JSON array of `item`s, as a tuple."""

    def read(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise WireError((), "Input should be a valid array")
        read_items = []
        for index, element in enumerate(value):
            try:
                read_items.append(item(element))
            except WireError as exc:
                raise exc.within(index) from None
        return tuple(read_items)

    return read


def one_of(*allowed: str) -> Reader:
    """The reader of a string that must be one of `allowed` (an enum or a media type)."""
    choices = frozenset(allowed)
    quoted = [f"'{value}'" for value in allowed]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"

    def read(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise WireError((), f"Input should be {listed}")
        return value

    return read


def text(value: Any) -> str:
    """A JSON string that is Unicode text (no lone surrogate escape, which is no character)."""
    if not isinstance(value, str) or (not value.isascii() and _LONE_SURROGATE.search(value)):
        raise WireError((), "Input should be a valid string")
    return value


def data(value: Any) -> bytes:
    """Protobuf `bytes`: standard base64 with padding, perhaps broken into lines."""
    if not isinstance(value, str):
        raise WireError(
            (),
            f"Value error, Expected protobuf bytes as string or bytes, got {type(value).__name__}",
        )
    if "\n" in value or "\r" in value:
        value = value.replace("\r", "").replace("\n", "")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or a non-ASCII string
        raise WireError((), f"Value error, {exc}") from None


def uint64(value: Any) -> int:
    """Protobuf `uint64`, which JSON writes as a string of decimal digits."""
    if not isinstance(value, str):
        raise WireError(
            (),
            f"Value error, Expected protobuf uint64 as string, got {type(value).__name__}",
        )
    try:
        number = int(value)  # first, for sigstore-models' message where both refuse
    except ValueError as exc:
        raise WireError((), f"Value error, {exc}") from None
    if not 0 <= number <= MAX_UINT64:
        raise WireError((), f"Value error, Value exceeds uint64 domain: {value}")
    if not (value.isascii() and value.isdigit()):
        raise WireError((), "Value error, Expected protobuf uint64 as decimal digits")
    return number


def integer(value: Any) -> int:
    """A JSON integer (not a float, a boolean or a string)."""
    if type(value) is not int:
        raise WireError((), "Input should be a valid integer")
    return value


def timestamp(value: Any) -> datetime:
    """An RFC 3339 date-time; fractions beyond microseconds are cut, as sigstore-models does."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise WireError(
            (),
            "Input should be a valid datetime, as RFC 3339 (YYYY-MM-DDTHH:MM:SS[.fraction]Z)",
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone = None
    if offset is not None and offset in "Zz":
        zone = UTC
    elif offset is not None:
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise WireError((), "Input should be a valid datetime, with a valid offset")
        delta = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-delta if offset[0] == "-" else delta)
    micros = int((fraction or "")[:6].ljust(6, "0"))
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, zone
        )
    except ValueError as exc:
        raise WireError((), f"Input should be a valid datetime, {exc}") from None
