"""The simulated gateway keeps the anonymous share of the slots by the real gateway's rule,
``core/anonymous_share.anonymous_cap`` (registry/access.AnonymousLast), per class."""

from __future__ import annotations

import random

import pytest

from LLM_Mesh.core.anonymous_share import KEYED_RECENT_S
from LLM_Mesh.simulator.events import EventLoop
from LLM_Mesh.simulator.fleet import SimNode
from LLM_Mesh.simulator.gateway import ANONYMOUS, KEYED, GatewayPolicy, SimGateway
from LLM_Mesh.simulator.strategies import make_strategy


def _gateway(strategy: str, share: float | None) -> tuple[EventLoop, SimGateway]:
    """Two nodes of two slots each (4 slots); a request holds its slot 1 s."""
    loop = EventLoop()
    rng = random.Random(1)
    nodes = {}
    strat = make_strategy(strategy, random.Random(2))
    for i in range(2):
        node = SimNode(f"n{i}", loop, rng, ttft_s=0.01, tokens_per_s=1000.0,
                       max_concurrency=2, max_queue=8)  # fmt: skip
        node.slow_latency_s = 1.0
        nodes[node.node_id] = node
        strat.add_node(node.node_id, None, 2, 8, 0.0)
    policy = GatewayPolicy(timeout_s=30.0, anonymous_share=share)
    return loop, SimGateway(loop, nodes, strat, policy, random.Random(3))


@pytest.mark.parametrize("strategy", ["ours", "random", "least-loaded", "round-robin"])
def test_anonymous_requests_hold_at_most_their_share(strategy: str) -> None:
    loop, gw = _gateway(strategy, 0.5)  # 2 of the 4 slots
    assert gw.strategy.slots() == 4
    loop.at(0.0, gw.submit_keyed, 10)
    for _ in range(3):
        loop.at(0.1, gw.submit_anonymous, 10)
    loop.at(5.0, gw.submit_anonymous, 10)  # the first two ended: room again
    loop.run(40.0)
    anon, keyed = gw.by_class[ANONYMOUS], gw.by_class[KEYED]
    assert anon.requests == 4 and anon.failures == {"anonymous_share": 1}
    assert len(anon.latencies) == 3 and len(keyed.latencies) == 1
    assert gw.anonymous_running == 0


def test_without_keyed_demand_anonymous_requests_get_one_slot() -> None:
    """Share 0.2 of 4 slots is none while keyed requests came lately, one once they stop
    for ``KEYED_RECENT_S`` (the small network's floor)."""
    loop, gw = _gateway("ours", 0.2)
    loop.at(0.0, gw.submit_keyed, 10)
    loop.at(1.0, gw.submit_anonymous, 10)  # keyed demand: no slot
    later = KEYED_RECENT_S + 1.0
    loop.at(later, gw.submit_anonymous, 10)
    loop.at(later, gw.submit_anonymous, 10)  # the floor is one slot
    loop.run(later + 40.0)
    anon = gw.by_class[ANONYMOUS]
    assert anon.failures == {"anonymous_share": 2} and len(anon.latencies) == 1


def test_no_share_lets_anonymous_requests_take_every_slot() -> None:
    loop, gw = _gateway("ours", None)
    loop.at(0.0, gw.submit_keyed, 10)
    for _ in range(6):
        loop.at(0.1, gw.submit_anonymous, 10)
    loop.run(40.0)
    assert gw.failures == {} and len(gw.by_class[ANONYMOUS].latencies) == 6


def test_baseline_slots_follow_the_routable_set() -> None:
    strat = make_strategy("random", random.Random(1))
    strat.add_node("a", None, 3, 8, 0.0)
    strat.add_node("b", None, 5, 8, 0.0)
    strat.set_routable("a", False)
    strat.set_routable("a", False)
    assert strat.slots() == 5
    strat.set_routable("a", True)
    assert strat.slots() == 8
