"""The writer's tree: frontier roots and stored-node proofs, checked by the verifier's code."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.merkle import leaf_hash, root_of
from LLM_Mesh.core.merkle_verify import verify_consistency, verify_inclusion
from LLM_Mesh.registry.ledger_tree import (
    append_leaf,
    consistency_ranges,
    frontier_root,
    inclusion_ranges,
    node_key,
    pack_frontier,
    range_hash,
    range_nodes,
    unpack_frontier,
)

N = 40


def _grow(n: int) -> tuple[list[bytes], list[bytes], dict[tuple[int, int], bytes]]:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    frontier: list[bytes] = []
    stored: dict[tuple[int, int], bytes] = {}
    roots = []
    for i, leaf in enumerate(leaves):
        frontier, nodes = append_leaf(frontier, i, leaf)
        stored.update({(lv, ix): h for lv, ix, h in nodes})
        assert unpack_frontier(pack_frontier(frontier)) == frontier
        roots.append(frontier_root(frontier))
    return leaves, roots, stored


def test_frontier_roots_are_the_mth() -> None:
    leaves, roots, stored = _grow(N)
    for n in range(1, N + 1):
        assert roots[n - 1] == root_of(leaves[:n])
        assert range_hash(0, n, stored) == roots[n - 1]
    assert len(stored) == 2 * N - bin(N).count("1")  # every complete subtree, once


def test_every_inclusion_proof_verifies() -> None:
    leaves, roots, stored = _grow(N)
    for n in range(1, N + 1):
        for m in range(n):
            path = [range_hash(a, b, stored) for a, b in inclusion_ranges(m, n)]
            assert verify_inclusion(m, n, leaves[m], path, roots[n - 1])
            if n > 1:
                assert not verify_inclusion(m, n, leaves[(m + 1) % n], path, roots[n - 1])


def test_every_consistency_proof_verifies() -> None:
    _, roots, stored = _grow(N)
    for n in range(1, N + 1):
        for m in range(1, n + 1):
            proof = [range_hash(a, b, stored) for a, b in consistency_ranges(m, n)]
            assert verify_consistency(m, n, roots[m - 1], roots[n - 1], proof)
            if m < n:
                assert not verify_consistency(m, n, roots[n - 1], roots[n - 1], proof)


def test_proof_costs_stay_logarithmic() -> None:
    n = 1_000_000
    nodes = {x for a, b in consistency_ranges(333_333, n) for x in range_nodes(a, b)}
    nodes |= {x for a, b in inclusion_ranges(777_777, n) for x in range_nodes(a, b)}
    assert len(nodes) <= 2 * 20 * 20


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        inclusion_ranges(3, 3)
    with pytest.raises(ValueError):
        consistency_ranges(4, 3)
    with pytest.raises(ValueError):
        range_nodes(1, 3)  # not aligned
    assert consistency_ranges(0, 5) == consistency_ranges(5, 5) == []
    assert node_key(3, 5) == 5 * 64 + 3
