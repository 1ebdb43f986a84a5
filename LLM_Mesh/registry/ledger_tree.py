"""The ledger writer's Merkle tree: appends, roots and RFC 9162 proofs from stored nodes.

The writer stores the hash of every *complete* subtree: node ``(level, index)``
covers leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 is the leaf
hashes. An append adds the leaf and the nodes it completes (on average two rows
per entry) and updates the **frontier** (the roots of the perfect subtrees of the
tree's binary decomposition, largest first), so an append never reads the tree.

A proof names the subtree ranges the RFC's ``PATH`` (§2.1.3.1) and ``SUBPROOF``
(§2.1.4.1) definitions ask for (:func:`inclusion_ranges`, :func:`consistency_ranges`);
each range's hash is the hash of at most ``log2(n)`` stored complete nodes
(:func:`range_nodes`, :func:`range_hash`), so a proof costs one indexed read of
``O(log² n)`` rows at any tree size.

Pure: storage is the caller's (``registry/ledger.py``). The verifier does not use this
module (``core/merkle_verify.py`` is its own).
"""

from __future__ import annotations

from collections.abc import Mapping

from LLM_Mesh.core.merkle import EMPTY_ROOT, HASH_SIZE, largest_power_of_two_below, node_hash

__all__ = [
    "append_leaf",
    "consistency_ranges",
    "frontier_root",
    "inclusion_ranges",
    "node_key",
    "pack_frontier",
    "range_hash",
    "range_nodes",
    "unpack_frontier",
]

Range = tuple[int, int]
Node = tuple[int, int]  # (level, index)


def node_key(level: int, index: int) -> int:
    """One integer per node, for a single-column key: ``index * 64 + level``."""
    return (index << 6) | level


def append_leaf(
    frontier: list[bytes], size: int, leaf: bytes
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """Append leaf hash ``leaf`` as leaf number ``size``: the new frontier and the new
    complete nodes ``(level, index, hash)`` (the leaf itself first)."""
    frontier = list(frontier)
    nodes = [(0, size, leaf)]
    h, level, index = leaf, 0, size
    while index & 1:
        h = node_hash(frontier.pop(), h)
        level, index = level + 1, index >> 1
        nodes.append((level, index, h))
    frontier.append(h)
    return frontier, nodes


def frontier_root(frontier: list[bytes]) -> bytes:
    """The MTH of the tree whose frontier this is."""
    if not frontier:
        return EMPTY_ROOT
    h = frontier[-1]
    for left in reversed(frontier[:-1]):
        h = node_hash(left, h)
    return h


def pack_frontier(frontier: list[bytes]) -> bytes:
    return b"".join(frontier)


def unpack_frontier(data: bytes) -> list[bytes]:
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def inclusion_ranges(m: int, n: int) -> list[Range]:
    """The ranges whose MTHs make ``PATH(m, D[n])``, in the RFC's order."""
    if not 0 <= m < n:
        raise ValueError(f"leaf {m} is not in a tree of {n}")

    def path(m: int, lo: int, hi: int) -> list[Range]:
        if hi - lo == 1:
            return []
        k = largest_power_of_two_below(hi - lo)
        if m < k:
            return [*path(m, lo, lo + k), (lo + k, hi)]
        return [*path(m - k, lo + k, hi), (lo, lo + k)]

    return path(m, 0, n)


def consistency_ranges(m: int, n: int) -> list[Range]:
    """The ranges whose MTHs make ``PROOF(m, D[n])`` (empty for ``m in (0, n)``)."""
    if not 0 <= m <= n:
        raise ValueError(f"no consistency proof from {m} to {n}")
    if m in (0, n):
        return []

    def subproof(m: int, lo: int, hi: int, b: bool) -> list[Range]:
        if m == hi - lo:
            return [] if b else [(lo, hi)]
        k = largest_power_of_two_below(hi - lo)
        if m <= k:
            return [*subproof(m, lo, lo + k, b), (lo + k, hi)]
        return [*subproof(m - k, lo + k, hi, False), (lo, lo + k)]

    return subproof(m, 0, n, True)


def range_nodes(lo: int, hi: int) -> list[Node]:
    """The complete nodes whose hashes make the MTH of leaves ``[lo, hi)`` (left first).

    Ranges from the proofs start at a multiple of a power of two at least their size,
    so each is a perfect node or a perfect node plus a range of the same kind.
    """
    nodes: list[Node] = []
    while True:
        size = hi - lo
        if size <= 0:
            raise ValueError(f"empty range [{lo}, {hi})")
        if size & (size - 1) == 0:
            level = size.bit_length() - 1
            if lo % size:
                raise ValueError(f"range [{lo}, {hi}) is not aligned")
            nodes.append((level, lo >> level))
            return nodes
        k = largest_power_of_two_below(size)
        if lo % k:
            raise ValueError(f"range [{lo}, {hi}) is not aligned")
        level = k.bit_length() - 1
        nodes.append((level, lo >> level))
        lo += k


def range_hash(lo: int, hi: int, stored: Mapping[Node, bytes]) -> bytes:
    """The MTH of leaves ``[lo, hi)`` from the stored complete nodes."""
    hashes = [stored[n] for n in range_nodes(lo, hi)]
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h
