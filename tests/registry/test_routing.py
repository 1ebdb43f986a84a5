"""``Routing.view``: a node as ``GET /mesh/nodes`` shows it (``llm-mesh status``, the
dashboard)."""

from __future__ import annotations

import random

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.schemas import NodeRegistration
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.routing import Routing
from tests.registry.helpers import ManualClock


def test_a_quiet_nodes_ttft_is_shown_as_measured_not_decayed() -> None:
    """Found 2026-12-07 (newuser39, ``llm-mesh up`` with the real model): minutes after its
    last request ``status`` said a node's time to first token was 20 ms (its ~1 s answers'
    routing estimate, decayed toward 0 while idle so that the router tries it again) beside
    an undecayed total of 3.8 s. The view shows what was measured; routing still decays."""
    clock = ManualClock()
    table = NodeTable(1e9, clock)
    routing = Routing(table, clock, rng=random.Random(1))
    reg = NodeRegistration.model_validate(
        {"node_id": "a", "url": "http://a", "models": [{"id": "m"}]}
    )
    entry = table.register(reg)
    routing.upsert(entry)
    att = routing.begin("a", "m")
    clock.advance(1.0)
    routing.first_token(att)
    clock.advance(3.0)
    routing.finish(att, Outcome.SUCCESS, completion_tokens=30)
    before = routing.view(entry, clock())
    ttft = before.ttft_ms_ewma
    assert ttft is not None and ttft > 900.0, before
    clock.advance(600.0)  # ten quiet minutes
    after = routing.view(entry, clock())
    assert after.ttft_ms_ewma == ttft
    per_token = [(v.model_extra or {})["per_token_ms_ewma"] for v in (before, after)]
    assert per_token[0] is not None and per_token[0] == per_token[1]
    assert after.latency_ms_ewma == before.latency_ms_ewma
    node = routing.router.node("a")
    decayed = None if node is None else node.ttft.get(clock())
    assert decayed is not None and decayed < ttft / 10  # routing still decays it


def test_a_node_is_silent_past_the_tables_own_expiry_not_the_default() -> None:
    """Found 2026-12-07: the listing did not say whether the registry counts a node silent,
    so ``llm-mesh status`` judged a paused node by the default expiry (30 s). ``silent``
    is the table's own expiry's word; a node never heard here is silent too."""
    clock = ManualClock()
    table = NodeTable(120.0, clock)
    routing = Routing(table, clock, rng=random.Random(1))
    reg = NodeRegistration.model_validate(
        {"node_id": "a", "url": "http://a", "models": [{"id": "m"}]}
    )
    entry = table.register(reg)
    routing.upsert(entry)
    assert routing.view(entry, clock()).silent is False
    clock.advance(60.0)  # past the default expiry, within this table's
    assert routing.view(entry, clock()).silent is False
    clock.advance(60.0)
    assert routing.view(entry, clock()).silent is True
    never = table.register(reg.model_copy(update={"node_id": "b"}), last_heartbeat=None)
    assert routing.view(never, clock()).silent is True
