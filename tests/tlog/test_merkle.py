"""The Merkle engine against transparency-dev/merkle vectors, RFC 6962 known answers and a
naive reference implementation of the RFC definitions."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from keyless.tlog import merkle
from keyless.tlog.errors import ProofError
from tests.conftest import DATA

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
L1_23 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
L1_45 = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
L1_67 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
L2_47 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
L2_03 = ROOTS[4]
LH = LEAF_HASHES


class MemoryNodes:
    """Complete-subtree nodes in a dict, grown through `merkle.append_nodes`."""

    def __init__(self) -> None:
        self.nodes: dict[merkle.NodeID, bytes] = {}
        self.size = 0
        self.reads = 0

    def append(self, leaves: Sequence[bytes]) -> None:
        frontier = self.read_nodes(merkle.frontier(self.size))
        hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
        self.nodes.update(merkle.append_nodes(self.size, frontier, hashes))
        self.size += len(leaves)

    def read_nodes(self, ids: Sequence[merkle.NodeID]) -> list[bytes]:
        self.reads += len(ids)
        return [self.nodes[node] for node in ids]


def reference_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) straight from RFC 6962 §2.1."""
    if not leaves:
        return merkle.EMPTY_ROOT
    if len(leaves) == 1:
        return merkle.leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def reference_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) straight from RFC 6962 §2.1.1."""
    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*reference_path(m, leaves[:k]), reference_root(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), reference_root(leaves[:k])]


def reference_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) straight from RFC 6962 §2.1.2."""
    n = len(leaves)
    if m == n:
        return [] if complete else [reference_root(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*reference_subproof(m, leaves[:k], complete), reference_root(leaves[k:])]
    return [*reference_subproof(m - k, leaves[k:], False), reference_root(leaves[:k])]


def _hexes(values: Sequence[bytes]) -> list[str]:
    return [value.hex() for value in values]


def _vector_cases(vectors: Path, kind: str) -> list[Path]:
    root = vectors / "transparency-dev-merkle" / "testdata" / kind
    return sorted(root.rglob("*.json"))


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


VECTOR_ROOT = DATA


@pytest.mark.parametrize(
    "path",
    _vector_cases(VECTOR_ROOT, "inclusion"),
    ids=lambda p: "/".join(p.parts[-2:]),
)
def test_inclusion_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    call = lambda: merkle.verify_inclusion(  # noqa: E731
        index=case["leafIdx"],
        size=case["treeSize"],
        leaf=_b64(case["leafHash"]),
        proof=[_b64(h) for h in case["proof"] or []],
        root=_b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        call()


@pytest.mark.parametrize(
    "path",
    _vector_cases(VECTOR_ROOT, "consistency"),
    ids=lambda p: "/".join(p.parts[-2:]),
)
def test_consistency_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    call = lambda: merkle.verify_consistency(  # noqa: E731
        size1=case["size1"],
        size2=case["size2"],
        proof=[_b64(h) for h in case["proof"] or []],
        root1=_b64(case["root1"]),
        root2=_b64(case["root2"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        call()


def test_vector_counts(vectors: Path) -> None:
    assert vectors == VECTOR_ROOT
    assert len(_vector_cases(vectors, "inclusion")) == 98
    assert len(_vector_cases(vectors, "consistency")) == 98


def test_hasher_known_answers() -> None:
    assert merkle.EMPTY_ROOT.hex() == ROOTS[0]
    assert merkle.leaf_hash(b"").hex() == LEAF_HASHES[0]
    assert (
        merkle.leaf_hash(b"L123456").hex()
        == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert (
        merkle.node_hash(b"N123", b"N456").hex()
        == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def test_known_answer_leaf_hashes_and_roots() -> None:
    store = MemoryNodes()
    assert merkle.root_hash(0, store).hex() == ROOTS[0]
    for size, leaf in enumerate(LEAVES, start=1):
        store.append([leaf])
        assert store.nodes[(0, size - 1)].hex() == LEAF_HASHES[size - 1]
        assert merkle.root_hash(size, store).hex() == ROOTS[size]
    for size in range(9):
        assert merkle.root_hash(size, store).hex() == ROOTS[size]
    assert store.nodes[(1, 1)].hex() == L1_23
    assert store.nodes[(2, 1)].hex() == L2_47


@pytest.mark.parametrize(
    ("index", "size", "expected"),
    [
        (0, 1, []),
        (0, 8, [LH[1], L1_23, L2_47]),
        (5, 8, [LH[4], L1_67, L2_03]),
        (2, 3, [ROOTS[2]]),
        (1, 5, [LH[0], L1_23, LH[4]]),
    ],
)
def test_inclusion_known_answers(index: int, size: int, expected: list[str]) -> None:
    store = MemoryNodes()
    store.append(LEAVES)
    proof = merkle.inclusion_proof(index, size, store)
    assert _hexes(proof) == expected
    merkle.verify_inclusion(
        index=index,
        size=size,
        leaf=merkle.leaf_hash(LEAVES[index]),
        proof=proof,
        root=bytes.fromhex(ROOTS[size]),
    )


@pytest.mark.parametrize(
    ("size1", "size2", "expected"),
    [
        (1, 1, []),
        (1, 8, [LH[1], L1_23, L2_47]),
        (6, 8, [L1_45, L1_67, L2_03]),
        (2, 5, [L1_23, LH[4]]),
        (6, 7, [L1_45, LH[6], L2_03]),
    ],
)
def test_consistency_known_answers(size1: int, size2: int, expected: list[str]) -> None:
    store = MemoryNodes()
    store.append(LEAVES)
    proof = merkle.consistency_proof(size1, size2, store)
    assert _hexes(proof) == expected
    merkle.verify_consistency(
        size1=size1,
        size2=size2,
        proof=proof,
        root1=bytes.fromhex(ROOTS[size1]),
        root2=bytes.fromhex(ROOTS[size2]),
    )


def test_proofs_match_rfc_definitions_for_every_index_and_pair() -> None:
    leaves = [i.to_bytes(4, "big") for i in range(70)]
    store = MemoryNodes()
    # Append in uneven batches, so that batch boundaries fall everywhere.
    position = 0
    for batch in [1, 2, 3, 1, 5, 8, 13, 1, 1, 20, 15]:
        store.append(leaves[position : position + batch])
        position += batch
    assert position == len(leaves)
    for size in range(1, len(leaves) + 1):
        root = merkle.root_hash(size, store)
        assert root == reference_root(leaves[:size])
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, store)
            assert proof == reference_path(index, leaves[:size])
            merkle.verify_inclusion(
                index=index, size=size, leaf=merkle.leaf_hash(leaves[index]), proof=proof, root=root
            )
        batched = merkle.inclusion_proofs(list(range(size)), size, store)
        assert batched == {i: reference_path(i, leaves[:size]) for i in range(size)}
        for size1 in range(1, size + 1):
            proof = merkle.consistency_proof(size1, size, store)
            assert proof == reference_subproof(size1, leaves[:size], True)
            merkle.verify_consistency(
                size1=size1,
                size2=size,
                proof=proof,
                root1=reference_root(leaves[:size1]),
                root2=root,
            )


def test_proof_cost_is_logarithmic() -> None:
    store = MemoryNodes()
    for start in range(0, 4096, 512):
        store.append([i.to_bytes(4, "big") for i in range(start, start + 512)])
    store.reads = 0
    merkle.inclusion_proof(1234, 4095, store)
    assert store.reads <= 2 * 12
    store.reads = 0
    merkle.consistency_proof(1000, 4095, store)
    assert store.reads <= 2 * 12
    store.reads = 0
    merkle.root_hash(4095, store)
    assert store.reads == 12


def _proof_for(index: int, size: int) -> tuple[list[bytes], bytes, bytes]:
    leaves = [i.to_bytes(4, "big") for i in range(size)]
    store = MemoryNodes()
    store.append(leaves)
    return (
        merkle.inclusion_proof(index, size, store),
        merkle.leaf_hash(leaves[index]),
        merkle.root_hash(size, store),
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(
            lambda p, leaf, root: (p[:-1], leaf, root, 3, 10),
            "inclusion proof has 3 hashes, expected 4 for index 3 in a tree of 10",
            id="truncated-proof",
        ),
        pytest.param(
            lambda p, leaf, root: ([*p, root], leaf, root, 3, 10),
            "inclusion proof has 5 hashes, expected 4 for index 3 in a tree of 10",
            id="extra-hash",
        ),
        pytest.param(
            lambda p, leaf, root: ([p[0][:31], *p[1:]], leaf, root, 3, 10),
            "inclusion proof hash #0 is not a 32-byte SHA-256 hash",
            id="short-hash",
        ),
        pytest.param(
            lambda p, leaf, root: (p, leaf, root, 10, 10),
            "leaf index 10 is not below tree size 10",
            id="index-past-end",
        ),
        pytest.param(
            lambda p, leaf, root: (p, leaf, root, -1, 10),
            "leaf index -1 is out of range [0, 9223372036854775807]",
            id="negative-index",
        ),
        pytest.param(
            lambda p, leaf, root: (p, leaf, root, True, 10),
            "leaf index must be an integer, got bool",
            id="bool-index",
        ),
        pytest.param(
            lambda p, leaf, root: ([b"\x00" * 32] * 65, leaf, root, 3, 10),
            "inclusion proof has 65 hashes, more than 64",
            id="oversized-proof",
        ),
    ],
)
def test_inclusion_refuses(mutate, message: str) -> None:
    proof, leaf, root = _proof_for(3, 10)
    proof, leaf, root, index, size = mutate(proof, leaf, root)
    with pytest.raises(ProofError) as excinfo:
        merkle.verify_inclusion(index=index, size=size, leaf=leaf, proof=proof, root=root)
    assert excinfo.value.message == message


def test_inclusion_wrong_root_names_both_roots() -> None:
    proof, leaf, root = _proof_for(3, 10)
    other = merkle.leaf_hash(b"other")
    with pytest.raises(ProofError) as excinfo:
        merkle.verify_inclusion(index=3, size=10, leaf=leaf, proof=proof, root=other)
    assert excinfo.value.reason == "inclusion-proof-mismatch"
    assert root.hex() in excinfo.value.message and other.hex() in excinfo.value.message


def test_range_nodes_refuses_unaligned_range() -> None:
    with pytest.raises(ValueError, match="not aligned"):
        merkle.range_nodes(1, 3)
    assert merkle.range_nodes(8, 15) == [(2, 2), (1, 6), (0, 14)]


def test_the_left_of_an_inclusion_proof_hashes_up_the_rest_of_the_tree() -> None:
    """From leaf `index`'s inclusion proof alone, the leaves from `index` on rebuild the root
    of every tree that ends after them, for every index and size (the RFC reference roots)."""
    leaves = [i.to_bytes(4, "big") for i in range(40)]
    store = MemoryNodes()
    store.append(leaves)
    for size in range(1, len(leaves) + 1):
        root = reference_root(leaves[:size])
        for index in range(size):
            proof = reference_path(index, leaves[:size])
            left = merkle.left_of_inclusion(
                index=index, size=size, leaf=merkle.leaf_hash(leaves[index]), proof=proof, root=root
            )
            assert left == store.read_nodes(merkle.frontier(index))
            tree = merkle.CompactRange(index, left)
            assert tree.root() == reference_root(leaves[:index])
            for end in range(index, size):
                tree.append(merkle.leaf_hash(leaves[end]))
                assert tree.root() == reference_root(leaves[: end + 1])
            assert tree.size == size


def test_the_left_of_an_inclusion_proof_needs_the_proof_to_hold() -> None:
    proof, _, root = _proof_for(3, 10)
    with pytest.raises(ProofError) as excinfo:
        merkle.left_of_inclusion(
            index=3, size=10, leaf=merkle.leaf_hash(b"other"), proof=proof, root=root
        )
    assert excinfo.value.reason == "inclusion-proof-mismatch"


def test_a_compact_range_refuses_a_frontier_of_another_size() -> None:
    with pytest.raises(ValueError) as excinfo:
        merkle.CompactRange(5, [merkle.EMPTY_ROOT])
    assert str(excinfo.value) == "frontier of size 5 has 2 nodes, got 1"
    assert merkle.CompactRange().root() == merkle.EMPTY_ROOT
