"""The simulator's gateway and the real one run the same failover policy: one scenario
through both gives the same decisions, in the same order, with the same stop reasons."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from LLM_Mesh.core.failover import Action, Failover, FailoverPolicy, Step, Stop
from LLM_Mesh.core.route_types import Outcome
from LLM_Mesh.registry.job import Job
from LLM_Mesh.simulator.events import EventLoop
from LLM_Mesh.simulator.fleet import SimNode
from LLM_Mesh.simulator.gateway import GatewayPolicy, SimGateway
from LLM_Mesh.simulator.strategies import MODEL as SIM_MODEL
from LLM_Mesh.simulator.strategies import Ours
from tests.registry.helpers import rank, running

MODEL = "gemma-3-270m"
Decision = tuple[str | None, Outcome | None, Action, Stop | None]

# (behaviours in the order the router tries them, max_attempts, max_failovers, decisions)
SCENARIOS: list[tuple[list[str], int, int, list[Decision]]] = [
    (
        ["connect_error", "503", "500", "ok"], 3, 10,
        [
            ("n0", Outcome.CONNECT_ERROR, Action.RETRY, None),
            ("n1", Outcome.UNAVAILABLE, Action.RETRY, None),
            ("n2", Outcome.SERVER_ERROR, Action.BACKOFF, None),
            ("n3", Outcome.SUCCESS, Action.STOP, Stop.SUCCEEDED),
        ],
    ),
    (
        ["500", "500", "ok"], 2, 10,
        [
            ("n0", Outcome.SERVER_ERROR, Action.BACKOFF, None),
            ("n1", Outcome.SERVER_ERROR, Action.STOP, Stop.MAX_ATTEMPTS),
        ],
    ),
    (
        ["503", "connect_error", "ok"], 3, 1,
        [
            ("n0", Outcome.UNAVAILABLE, Action.RETRY, None),
            ("n1", Outcome.CONNECT_ERROR, Action.STOP, Stop.MAX_FAILOVERS),
        ],
    ),
    (  # a status that is neither an answer nor an error: the node's failure, as a 5xx
        ["302", "204", "ok"], 3, 10,
        [
            ("n0", Outcome.SERVER_ERROR, Action.BACKOFF, None),
            ("n1", Outcome.SERVER_ERROR, Action.BACKOFF, None),
            ("n2", Outcome.SUCCESS, Action.STOP, Stop.SUCCEEDED),
        ],
    ),
    (
        ["503", "connect_error"], 3, 10,
        [
            ("n0", Outcome.UNAVAILABLE, Action.RETRY, None),
            ("n1", Outcome.CONNECT_ERROR, Action.RETRY, None),
            (None, None, Action.STOP, Stop.NO_NODE),
        ],
    ),
]  # fmt: skip


def _decisions(steps: list[Step] | None) -> list[Decision]:
    assert steps is not None  # traced: an observer is set
    return [(s.node_id, s.outcome, s.action, s.stop) for s in steps]


def simulate(behaviours: list[str], max_attempts: int, max_failovers: int) -> list[Decision]:
    loop = EventLoop()
    rng = random.Random(1)
    nodes: dict[str, SimNode] = {}
    strategy = Ours(random.Random(2))
    for i, behaviour in enumerate(behaviours):
        node = SimNode(f"n{i}", loop, rng, ttft_s=0.01, tokens_per_s=1000.0,
                       fail_prob=1.0 if behaviour == "500" else 0.0)  # fmt: skip
        if behaviour == "connect_error":
            node.kill()
        node.paused = behaviour == "503"
        if behaviour.isdigit() and not 400 <= int(behaviour) < 600:  # a 302, a 204
            node.answer_status = int(behaviour)
        nodes[node.node_id] = node
        strategy.add_node(node.node_id, None, node.max_concurrency, node.max_queue, 0.0)
    rank(strategy.router, list(nodes), SIM_MODEL, 10.0)
    stopped: list[Failover] = []
    policy = GatewayPolicy(
        timeout_s=30.0,
        failover=FailoverPolicy(max_attempts=max_attempts, max_failovers=max_failovers),
    )
    gw = SimGateway(loop, nodes, strategy, policy, random.Random(3), on_stop=stopped.append)
    loop.at(10.0, lambda _: gw.submit(10))
    loop.run(60.0)
    (fo,) = stopped
    return _decisions(fo.steps)


async def through_the_gateway(
    tmp_path: Path, behaviours: list[str], max_attempts: int, max_failovers: int
) -> list[Decision]:
    async with running(tmp_path, max_attempts=max_attempts, max_failovers=max_failovers) as h:
        for i, behaviour in enumerate(behaviours):
            await h.register(f"n{i}", behavior=behaviour)
        rank(h.runtime.routing.router, [f"n{i}" for i in range(len(behaviours))], MODEL,
             h.clock())  # fmt: skip
        stopped: list[Failover] = []

        def observe(job: Job, fo: Failover) -> None:
            stopped.append(fo)

        h.runtime.observer = observe
        await h.client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
        (fo,) = stopped
        return _decisions(fo.steps)


@pytest.mark.parametrize(("behaviours", "max_attempts", "max_failovers", "expected"), SCENARIOS)
async def test_simulator_and_gateway_decide_alike(
    tmp_path: Path,
    behaviours: list[str],
    max_attempts: int,
    max_failovers: int,
    expected: list[Decision],
) -> None:
    simulated = simulate(behaviours, max_attempts, max_failovers)
    real = await through_the_gateway(tmp_path, behaviours, max_attempts, max_failovers)
    assert simulated == expected
    assert real == simulated
