"""The router's draws for a constrained request (``core/route_sample.py``): seeded."""

from __future__ import annotations

import random

from LLM_Mesh.core.indexed_set import IndexedSet
from LLM_Mesh.core.route_sample import choose, sample
from LLM_Mesh.core.scoring import NodeStats, RouteRequest, ScoringPolicy

SP = ScoringPolicy()


def _nodes(*ids: str) -> dict[str, NodeStats]:
    return {nid: NodeStats(nid, ("m",), SP) for nid in ids}


def test_choose_takes_k_distinct_of_more() -> None:
    ok = list(_nodes("a", "b", "c", "d", "e").values())
    for seed in range(20):
        got = choose(ok, 2, random.Random(seed).random)
        assert len(got) == 2 and len(set(map(id, got))) == 2 and all(st in ok for st in got)
    assert choose([], 3, random.Random(0).random) == []


def test_an_allowed_node_outside_the_set_or_denied_is_not_drawn() -> None:
    """A short ``allow_nodes`` list is walked directly: a node it names that is known but
    not in the set drawn from (another model's, or closed) or that the request denies is
    not among the candidates."""
    nodes = _nodes("a", "b", "c", "d", "e")
    bag: IndexedSet[NodeStats] = IndexedSet()
    for nid in ("a", "b", "c", "e"):
        bag.add(nodes[nid])
    req = RouteRequest(("m",), allow_nodes=frozenset({"a", "b", "d"}), deny_nodes=frozenset({"b"}))
    for seed in range(10):
        got = sample(bag, req, 3, random.Random(seed).random, nodes, 16)
        assert [st.node_id for st in got] == ["a"]
