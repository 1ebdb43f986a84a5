"""``Routing.pick``: the router's choice re-checked against the node table's liveness."""

from __future__ import annotations

import random

from LLM_Mesh.core.balancer import Verdict
from LLM_Mesh.core.schemas import Heartbeat, NodeRegistration, NodeState
from LLM_Mesh.core.scoring import RouteRequest
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.routing import Routing
from tests.registry.helpers import ManualClock

REQ = RouteRequest(("m",))


def _mesh(*ids: str) -> tuple[ManualClock, NodeTable, Routing]:
    clock = ManualClock()
    table = NodeTable(30.0, clock)
    routing = Routing(table, clock, rng=random.Random(3))
    for nid in ids:
        reg = NodeRegistration.model_validate(
            {"node_id": nid, "url": f"http://{nid}", "models": [{"id": "m"}]}
        )
        routing.upsert(table.register(reg))
    return clock, table, routing


def _beat(table: NodeTable, routing: Routing, nid: str, queued: int = 0) -> None:
    hb = Heartbeat(in_flight=1, queued=queued)
    table.heartbeat(nid, hb)
    routing.heartbeat(nid, hb)


def test_a_node_expired_between_sweeps_is_never_chosen_and_leaves_routing() -> None:
    clock, table, routing = _mesh("a", "b", "c")
    assert {routing.pick(REQ).node_id for _ in range(40)} == {"a", "b", "c"}
    clock.advance(20.0)
    _beat(table, routing, "b", queued=6)  # busy: costlier than a, even with a stale
    _beat(table, routing, "c", queued=6)
    clock.advance(15.0)  # a's heartbeat is 35 s old (expiry 30 s); no sweep ran
    node_a = routing.router.node("a")
    assert node_a is not None and node_a.routable
    assert {routing.pick(REQ).node_id for _ in range(40)} == {"b", "c"}
    assert not node_a.routable  # the pick that drew it took it out
    assert routing.router.pool_counts("m") == (2, 0, 0)


def test_a_node_no_longer_online_is_not_chosen() -> None:
    _clock, table, routing = _mesh("a", "b")
    table.set_state("a", NodeState.DRAINING)  # the table knows; the router not yet
    assert {routing.pick(REQ).node_id for _ in range(20)} == {"b"}
    table.set_check_result("b", False)
    d = routing.pick(REQ)
    assert d.verdict is Verdict.NO_NODE and d.node_id is None
    assert routing.router.pool_counts("m") == (0, 0, 0)
