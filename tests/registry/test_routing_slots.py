"""``Routing.slots`` read from the router's kept counts (session 34) equals the full pass it
replaced (tests/core/test_route_pools_counts.py's oracle over ``keepers_for``) through
registrations that change whether a node may keep prompts, quarantines (the router then
routes the node fewer models than ``prompt_keepers`` lists), heartbeats, requests and
goodbyes."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.indexed_set import IndexedSet
from LLM_Mesh.core.schemas import Heartbeat, NodeRegistration
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.routing import Routing
from tests.core.test_route_pools_counts import (
    declared_oracle,
    held_out_oracle,
    idle_oracle,
    shown_oracle,
)
from tests.registry.helpers import ManualClock

MODELS = ("m1", "m2")


def _register(table: NodeTable, routing: Routing, nid: str, rng: random.Random) -> None:
    models = [m for m in MODELS if rng.random() < 0.7] or [MODELS[0]]
    reg = NodeRegistration.model_validate({
        "node_id": nid, "url": f"http://{nid}", "models": [{"id": m} for m in models],
        "max_concurrency": rng.randint(1, 6), "max_queue": rng.randint(0, 3),
        "keeps_no_prompts": rng.choice((True, False, None)),
    })  # fmt: skip
    routing.upsert(table.register(reg))


def _old_slots(routing: Routing, model: str, allowed: bool) -> int:
    pool = routing.router._index.by_model.get(model)
    if pool is None:
        return 0
    keep = routing.keepers_for(model, allowed)
    counted = declared_oracle(pool) - idle_oracle(pool) - held_out_oracle(pool, keep)
    # share35: what the nodes have shown they serve (at least 2), once one has answered
    nodes = [*pool.open, *pool.open_keep, *pool.kept, *pool.kept_keep, *pool.full, *pool.full_keep]
    if not any(st.shown for st in nodes):
        return counted
    shown = shown_oracle(pool) - shown_oracle(pool, keep)
    return max(shown, min(2, counted))


def test_routing_slots_equal_the_full_pass_over_random_changes() -> None:
    for seed in range(3):
        rng, clock = random.Random(seed), ManualClock()
        table = NodeTable(30.0, clock)
        routing = Routing(table, clock, rng=random.Random(seed))
        atts = []
        for _ in range(1500):
            nid = rng.choice("abcdefg")
            op = rng.randrange(7)
            clock.advance(0.05)
            if op == 0 or table.get(nid) is None:
                _register(table, routing, nid, rng)
            elif op == 1:
                hb = Heartbeat(in_flight=rng.randint(0, 6), queued=rng.randint(0, 3))
                table.heartbeat(nid, hb)
                routing.heartbeat(nid, hb)
            elif op == 2:
                routing.set_quarantined(nid, frozenset(m for m in MODELS if rng.random() < 0.4))
            elif op == 3:
                table.forget(nid)  # a goodbye
                routing.remove(nid)
            elif op == 4 and atts:  # an ended request's node may have left since
                routing.finish(atts.pop(rng.randrange(len(atts))), rng.choice(tuple(Outcome)))
            else:
                st = routing.router.node(nid)
                if st is not None and st.models:
                    atts.append(
                        routing.begin(nid, rng.choice(sorted(st.models)), rng.random() < 0.3)
                    )
            for m in MODELS:
                for allowed in (False, True):
                    assert routing.slots(m, allowed) == _old_slots(routing, m, allowed), (
                        m,
                        allowed,
                    )


def test_an_anonymous_requests_count_walks_no_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before session 34, ``Routing.slots`` walked the model's full nodes each call and, with
    nodes that may keep prompts, every node of the model (1 ms with 10,000 of them): this
    failed then (the pass iterated the pool's sets); now it reads the pool's counts."""
    clock = ManualClock()
    routing = Routing(NodeTable(30.0, clock), clock, rng=random.Random(1))
    r = routing.router
    for i in range(6):
        r.upsert_node(f"n{i}", ["m1"], now=0.0, max_concurrency=4, max_queue=0)
    r.heartbeat("n0", 0.5, in_flight=4, queued=0)  # full: 4 idle slots
    r.begin("n0", "m1", 0.6)  # one of ours there: 3 idle
    routing._keeper("n1", frozenset({"m1"}))
    expected = (24 - 3 - 4, 24 - 3)

    def walked(self: object) -> Iterator[object]:
        raise AssertionError("a pass over the pool's nodes")

    monkeypatch.setattr(IndexedSet, "__iter__", walked)
    assert (routing.slots("m1"), routing.slots("m1", True)) == expected
