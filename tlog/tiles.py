"""C2SP tlog-tiles: tile coordinates, paths and entry bundles. Pure.

A tile at level L, index N holds up to 256 hashes: those of the Merkle nodes at tree level 8·L
with indices N·256 … N·256+255, each the root of 256^L consecutive leaves. A log stores every
complete-subtree node (`tlog.merkle`), so a tile is a read of stored hashes, never a
recomputation. Paths: `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, where N is written
in 3-digit groups with an `x` before all but the last (1234067 → `x001/x234/067`) and W
(1…255) marks a partial tile. An entry bundle is its entries, each prefixed by its length as a
big-endian uint16.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from keyless.tlog.merkle import MAX_TREE_SIZE, NodeID

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF  # an entry bundle's length prefix is a uint16
_INDEX = re.compile(r"(?:x[0-9]{3}/)*[0-9]{3}\Z")
_LEVEL = re.compile(r"(?:0|[1-9][0-9]?)\Z")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}\Z")


@dataclass(frozen=True)
class TileRef:
    """A tile named by a path: `level` None for an entry bundle; `width` None for a full tile."""

    level: int | None
    index: int
    width: int | None = None

    @property
    def count(self) -> int:
        """The number of hashes (or entries) the tile holds."""
        return TILE_WIDTH if self.width is None else self.width

    def path(self) -> str:
        """The tile's path, relative to the log's prefix."""
        level = "entries" if self.level is None else str(self.level)
        partial = "" if self.width is None else f".p/{self.width}"
        return f"tile/{level}/{encode_index(self.index)}{partial}"


def encode_index(index: int) -> str:
    """N in 3-digit path groups: 5 → `005`, 1234067 → `x001/x234/067`."""
    if index < 0:
        raise ValueError("tile index must not be negative")
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + group for group in groups[:-1]), groups[-1]])


def _parse_index(text: str) -> int:
    if not _INDEX.match(text):
        raise ValueError(f"malformed tile index {text[:80]!r}")
    index = int(text.replace("x", "").replace("/", ""))
    # One encoding per index: no leading x000 groups.
    if encode_index(index) != text:
        raise ValueError(f"tile index {text[:80]!r} is not in canonical form")
    return index


def parse_tile_path(path: str) -> TileRef:
    """Parse `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]` (the part after `tile/`).

    Raises:
        ValueError: not a canonical tile path.
    """
    if len(path) > 128:
        raise ValueError("tile path is too long")
    head, _, rest = path.partition("/")
    if head == "entries":
        level = None
    elif _LEVEL.match(head) and int(head) <= MAX_LEVEL:
        level = int(head)
    else:
        raise ValueError(f"malformed tile level {head[:8]!r}")
    index_text, partial, width_text = rest.partition(".p/")
    width = None
    if partial:
        if not _WIDTH.match(width_text) or int(width_text) >= TILE_WIDTH:
            raise ValueError(f"partial tile width {width_text[:8]!r} is not in 1..255")
        width = int(width_text)
    tile = TileRef(level, _parse_index(index_text), width)
    if tile.index * TILE_WIDTH > MAX_TREE_SIZE:
        raise ValueError("tile index is beyond any tree")
    return tile


def available(level: int, index: int, size: int) -> int:
    """How many hashes tile (level, index) holds in a tree of `size` (0 … 256)."""
    nodes = size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, nodes - index * TILE_WIDTH))


def tile_nodes(level: int, index: int, count: int) -> list[NodeID]:
    """The Merkle nodes whose hashes make up the first `count` entries of the tile."""
    start = index * TILE_WIDTH
    return [(TILE_HEIGHT * level, start + i) for i in range(count)]


def entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries as a tlog-tiles entry bundle (uint16 big-endian length before each)."""
    parts = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise ValueError(f"entry of {len(entry)} bytes does not fit an entry bundle")
        parts.append(struct.pack(">H", len(entry)) + entry)
    return b"".join(parts)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    """The entries of an entry bundle.

    Raises:
        ValueError: a length runs past the end of the data.
    """
    entries, position = [], 0
    while position < len(data):
        if position + 2 > len(data):
            raise ValueError("entry bundle ends inside a length prefix")
        (length,) = struct.unpack_from(">H", data, position)
        position += 2
        if position + length > len(data):
            raise ValueError("entry bundle ends inside an entry")
        entries.append(data[position : position + length])
        position += length
    return entries
