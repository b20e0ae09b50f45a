"""RFC 6962 / RFC 9162 Merkle trees over SHA-256: hashes, proof verification, proof building.

Pure: no I/O and no clock. Verification (`verify_inclusion`, `verify_consistency`) raises
`ProofError` and never returns a bool. Building works over stored node hashes of *complete*
subtrees, named by `NodeID` (level, index): the node covering leaves
[index * 2**level, (index + 1) * 2**level). A log stores each such node once, when its subtree
fills; every root and proof is then a fold of O(log n) stored nodes, never of all leaves:

- `plan_*` functions say which nodes an answer needs (pure, so a store can fetch them in one
  query); `root_hash`, `inclusion_proof` and `consistency_proof` fetch through a `NodeReader`;
- `append_nodes` turns the current right edge (the "frontier") plus new leaf hashes into the
  new complete-subtree nodes to store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from keyless.core.errors import Reason
from keyless.tlog.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Tree sizes and indices are int64 on the wire (Rekor, CT), so proofs have at most 63 levels.
MAX_TREE_SIZE = 2**63 - 1
MAX_PROOF_HASHES = 64

NodeID = tuple[int, int]
"""(level, index): the complete subtree over leaves [index << level, (index + 1) << level)."""


class NodeReader(Protocol):
    """Reads stored complete-subtree node hashes."""

    def read_nodes(self, ids: Sequence[NodeID]) -> Sequence[bytes]:
        """The hashes of `ids`, in the same order; raises if any is missing."""
        ...


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 leaf hash SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 interior node hash SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_size(name: str, value: int, *, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{name} must be an integer, got {type(value).__name__}")
    if not minimum <= value <= MAX_TREE_SIZE:
        raise ProofError(f"{name} {value} is out of range [{minimum}, {MAX_TREE_SIZE}]")


def _check_hashes(what: str, proof: Sequence[bytes]) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError(f"{what} has {len(proof)} hashes, more than {MAX_PROOF_HASHES}")
    for position, item in enumerate(proof):
        if not isinstance(item, bytes) or len(item) != HASH_SIZE:
            raise ProofError(f"{what} hash #{position} is not a {HASH_SIZE}-byte SHA-256 hash")


def root_from_inclusion(*, index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2), ignoring the expected root.

    Raises:
        ProofError: the sizes, hash lengths or proof length are invalid.
    """
    _check_size("tree size", size, minimum=1)
    _check_size("leaf index", index)
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is not a {HASH_SIZE}-byte SHA-256 hash")
    _check_hashes("inclusion proof", proof)
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    if len(proof) != inner + border:
        raise ProofError(
            f"inclusion proof has {len(proof)} hashes, expected {inner + border} "
            f"for index {index} in a tree of {size}"
        )
    # node_hash, inlined: a call per level was a visible share of verifying a proof.
    sha256 = hashlib.sha256
    digest = leaf
    for level, sibling in enumerate(proof[:inner]):
        if (index >> level) & 1:  # the sibling is on the left
            digest = sha256(b"\x01" + sibling + digest).digest()
        else:
            digest = sha256(b"\x01" + digest + sibling).digest()
    for sibling in proof[inner:]:
        digest = sha256(b"\x01" + sibling + digest).digest()
    return digest


def verify_inclusion(
    *, index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf` (a leaf hash) is at `index` in the tree of `size` with `root`.

    Raises:
        ProofError: the proof is malformed or does not lead to `root`.
    """
    computed = root_from_inclusion(index=index, size=size, leaf=leaf, proof=proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for index {index} in a tree of {size} leads to root "
            f"{computed.hex()}, expected {bytes(root).hex()}",
            reason=Reason.INCLUSION_PROOF_MISMATCH,
        )


def verify_consistency(
    *, size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of `size2` with `root2` extends the tree of `size1` with `root1`.

    Follows RFC 9162 §2.1.4.2. A proof from the empty tree is refused: it proves nothing.

    Raises:
        ProofError: the sizes or hashes are invalid, or the proof does not lead to both roots.
    """
    _check_size("first size", size1)
    _check_size("second size", size2)
    if size1 > size2:
        raise ProofError(f"first size {size1} is greater than second size {size2}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    _check_hashes("consistency proof", proof)
    if size1 == size2:
        if proof:
            raise ProofError(f"consistency proof between equal sizes {size1} must be empty")
        if root1 != root2:
            raise ProofError(
                f"trees of equal size {size1} have different roots",
                reason=Reason.CONSISTENCY_PROOF_MISMATCH,
            )
        return
    if not proof:
        raise ProofError(f"consistency proof from size {size1} to {size2} is empty")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    first, second = size1 - 1, size2 - 1
    while first & 1:
        first >>= 1
        second >>= 1
    first_root = second_root = path[0]
    for sibling in path[1:]:
        if second == 0:
            raise ProofError(f"consistency proof from size {size1} to {size2} is too long")
        if first & 1 or first == second:
            first_root = node_hash(sibling, first_root)
            second_root = node_hash(sibling, second_root)
            while not first & 1 and first != 0:
                first >>= 1
                second >>= 1
        else:
            second_root = node_hash(second_root, sibling)
        first >>= 1
        second >>= 1
    if second != 0:
        raise ProofError(f"consistency proof from size {size1} to {size2} is too short")
    if first_root != root1 or second_root != root2:
        raise ProofError(
            f"consistency proof from size {size1} to {size2} does not lead to both roots",
            reason=Reason.CONSISTENCY_PROOF_MISMATCH,
        )


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root of consecutive complete subtrees, largest first (a right fold of node_hash)."""
    if not hashes:
        return EMPTY_ROOT
    digest = hashes[-1]
    for left in reversed(hashes[:-1]):
        digest = node_hash(left, digest)
    return digest


def range_nodes(start: int, end: int) -> list[NodeID]:
    """The complete subtrees covering leaves [start, end), largest first.

    `start` must be aligned to a power of two at least `end - start`, as every range an RFC 6962
    root or proof needs is; the MTH of the range is then `fold` of these nodes.
    """
    if not 0 <= start < end:
        raise ValueError(f"empty or negative leaf range [{start}, {end})")
    span = 1 << (end - start - 1).bit_length()
    if start % span:
        raise ValueError(f"leaf range [{start}, {end}) is not aligned")
    nodes: list[NodeID] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def frontier(size: int) -> list[NodeID]:
    """The complete subtrees of a tree of `size`, largest first: its root is their fold."""
    return range_nodes(0, size) if size else []


def left_of_inclusion(
    *, index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> list[bytes]:
    """The hashes of `frontier(index)`, the complete subtrees left of leaf `index`, from that
    leaf's inclusion proof in the tree of `size` with `root`: they are the proof's left
    siblings. With them, the leaves from `index` on can be hashed up to later roots
    (`CompactRange`) without reading the leaves before it.

    Raises:
        ProofError: the proof does not put `leaf` at `index` under `root`.
    """
    verify_inclusion(index=index, size=size, leaf=leaf, proof=proof, root=root)
    # Below the level where the paths to `index` and to the last leaf meet, a sibling is on
    # the left where `index` has a 1 bit; above it, every sibling is (see root_from_inclusion).
    inner = (index ^ (size - 1)).bit_length()
    left = [sibling for level, sibling in enumerate(proof[:inner]) if (index >> level) & 1]
    left.extend(proof[inner:])
    return left[::-1]


class CompactRange:
    """The RFC 6962 root of leaves [0, size) as leaf hashes are appended, in O(log n) memory:
    the hashes of `frontier(size)`, largest first."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        nodes = frontier(size)
        if len(nodes) != len(hashes):
            raise ValueError(f"frontier of size {size} has {len(nodes)} nodes, got {len(hashes)}")
        self.size = size
        self._stack = [(level, digest) for (level, _), digest in zip(nodes, hashes, strict=True)]

    def append(self, leaf: bytes) -> None:
        """Add the next leaf (its leaf hash)."""
        level, digest = 0, leaf
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            level, digest = level + 1, node_hash(left, digest)
        self._stack.append((level, digest))
        self.size += 1

    def root(self) -> bytes:
        """The root of the tree of the leaves so far (`EMPTY_ROOT` for none)."""
        return fold([digest for _, digest in self._stack])


def _split(count: int) -> int:
    """The largest power of two strictly below `count` (count > 1)."""
    return 1 << ((count - 1).bit_length() - 1)


def plan_inclusion(index: int, size: int) -> list[list[NodeID]]:
    """The nodes each inclusion-proof hash folds, ordered leaf to root (RFC 9162 PATH)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of {size}")
    start, end = 0, size
    top_down: list[list[NodeID]] = []
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            top_down.append(range_nodes(middle, end))
            end = middle
        else:
            top_down.append(range_nodes(start, middle))
            start = middle
    top_down.reverse()
    return top_down


def plan_consistency(size1: int, size2: int) -> list[list[NodeID]]:
    """The nodes each consistency-proof hash folds (RFC 9162 PROOF(size1, D[size2]))."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to {size2}")
    start, end, complete = 0, size2, True
    top_down: list[list[NodeID]] = []
    while size1 != end:
        middle = start + _split(end - start)
        if size1 <= middle:
            top_down.append(range_nodes(middle, end))
            end = middle
        else:
            top_down.append(range_nodes(start, middle))
            start = middle
            complete = False
    if not complete:
        top_down.append(range_nodes(start, end))
    top_down.reverse()
    return top_down


def _fetch_and_fold(plan: list[list[NodeID]], nodes: NodeReader) -> list[bytes]:
    flat = [node for group in plan for node in group]
    hashes = list(nodes.read_nodes(flat))
    if len(hashes) != len(flat):
        raise RuntimeError(f"node reader returned {len(hashes)} hashes for {len(flat)} nodes")
    result: list[bytes] = []
    position = 0
    for group in plan:
        result.append(fold(hashes[position : position + len(group)]))
        position += len(group)
    return result


def root_hash(size: int, nodes: NodeReader) -> bytes:
    """The root of the first `size` leaves, from stored nodes."""
    return _fetch_and_fold([frontier(size)], nodes)[0] if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, nodes: NodeReader) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size`, leaf to root."""
    return _fetch_and_fold(plan_inclusion(index, size), nodes)


def inclusion_proofs(
    indexes: Sequence[int], size: int, nodes: NodeReader
) -> dict[int, list[bytes]]:
    """Audit paths of several leaves in the tree of `size`, from one batched node read."""
    plans = {index: plan_inclusion(index, size) for index in indexes}
    unique = list(
        dict.fromkeys(node for plan in plans.values() for group in plan for node in group)
    )
    if not unique:
        return {index: [] for index in indexes}
    hashes = dict(zip(unique, nodes.read_nodes(unique), strict=True))
    return {
        index: [fold([hashes[node] for node in group]) for group in plan]
        for index, plan in plans.items()
    }


def consistency_proof(size1: int, size2: int, nodes: NodeReader) -> list[bytes]:
    """The consistency proof from the tree of `size1` to the tree of `size2`."""
    return _fetch_and_fold(plan_consistency(size1, size2), nodes)


def append_nodes(
    size: int, frontier_hashes: Sequence[bytes], leaves: Sequence[bytes]
) -> dict[NodeID, bytes]:
    """The new complete-subtree nodes after appending `leaves` (leaf hashes) at `size`.

    `frontier_hashes` are the hashes of `frontier(size)`, in that order. The result includes
    the level-0 node of every new leaf; the new tree's frontier is `frontier(size + len)`.
    """
    ids = frontier(size)
    if len(ids) != len(frontier_hashes):
        raise ValueError(
            f"frontier of size {size} has {len(ids)} nodes, got {len(frontier_hashes)}"
        )
    stack: list[tuple[int, int, bytes]] = [
        (level, index, digest) for (level, index), digest in zip(ids, frontier_hashes, strict=True)
    ]
    created: dict[NodeID, bytes] = {}
    for position, digest in enumerate(leaves, start=size):
        level, index = 0, position
        created[(level, index)] = digest
        while stack and stack[-1][0] == level:
            _, _, left = stack.pop()
            digest = node_hash(left, digest)
            level, index = level + 1, index >> 1
            created[(level, index)] = digest
        stack.append((level, index, digest))
    return created
