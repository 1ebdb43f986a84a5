"""The admit stage's wait (an anonymous request's ``X-Mesh-Wait`` on a full model,
``registry/access.AnonymousLast``) by the same code in the simulator's gateway and the real
one (``core/anonymous_wait.clear``, ``core/slot_wait.SlotWait`` with ``every_s``): one
scenario through both gives the same looks and the same end.

One node of one slot and no queue, busy; an anonymous request that opted into a wait finds
it full. The busy attempt ends while the waiter sleeps (woken by the change), or never (its
wait runs out). ``anonymous_wait.LOOK_S`` is set to 1 s in both for the woken case, so that
on a loaded machine the real waiter's timer cannot fire before the test frees the slot."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from LLM_Mesh.core import anonymous_wait
from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.route_types import Verdict
from LLM_Mesh.core.slot_wait import Next, SlotWait, ran_out
from LLM_Mesh.registry.job import Job
from LLM_Mesh.simulator.events import EventLoop
from LLM_Mesh.simulator.fleet import SimNode
from LLM_Mesh.simulator.gateway import ANONYMOUS, GatewayPolicy, SimGateway
from LLM_Mesh.simulator.strategies import Ours
from tests.registry.helpers import running
from tests.registry.test_access import CHAT, MODEL, _until, chat

Look = tuple[Verdict, Next, float, str, bool | None]
SAT = Verdict.SATURATED
ARRIVES = 0.05

# (LOOK_S, wait_s, whether the slot frees while it sleeps, the looks, the end)
SCENARIOS: list[tuple[float, float, bool, list[Look], str]] = [
    (1.0, 30.0, True, [(SAT, Next.SLEEP, 1.0, "", None), (Verdict.OK, Next.SEND, 0.0, "", True)],
     "served"),
    (anonymous_wait.LOOK_S, 0.05, False,
     [(SAT, Next.SLEEP, 0.05, "", None), (SAT, Next.RAN_OUT, 0.0, ran_out(0.05), False)],
     "refused"),
]  # fmt: skip


def _looks(wait: SlotWait) -> list[Look]:
    assert wait.looks is not None  # traced: an observer is set
    return [(k.verdict, k.next, round(k.sleep_s, 2), k.why, k.woken) for k in wait.looks]


def simulate(wait_s: float, frees: bool) -> tuple[list[Look], str]:
    loop = EventLoop()
    node = SimNode("n0", loop, random.Random(1), ttft_s=0.01, tokens_per_s=1000.0,
                   max_concurrency=1, max_queue=0)  # fmt: skip
    node.slow_latency_s = ARRIVES + 0.2 if frees else 5.0
    strategy = Ours(random.Random(2))
    strategy.add_node("n0", None, 1, 0, 0.0)
    waits: list[SlotWait] = []
    policy = GatewayPolicy(timeout_s=30.0, anonymous_last=True, anonymous_wait_s=wait_s)
    gw = SimGateway(loop, {"n0": node}, strategy, policy, random.Random(3), on_wait=waits.append)
    loop.at(0.0, gw.submit_anonymous, 10)  # the busy one: a node open, sent on at once
    loop.at(ARRIVES, gw.submit_anonymous, 10)
    loop.run(60.0)
    (wait,) = waits
    anon = gw.by_class[ANONYMOUS]
    end = "served" if len(anon.latencies) == 2 else "refused"
    assert end == "served" or anon.failures == {"saturated": 1}
    assert gw.anonymous_waiting == 0 and len(anon.gate_waits) == 1
    return _looks(wait), end


async def through_the_gateway(tmp_path: Path, wait_s: float, frees: bool) -> tuple[list[Look], str]:
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        routing = h.runtime.routing
        waits: list[SlotWait] = []

        def observe(job: Job, wait: SlotWait) -> None:
            waits.append(wait)

        h.runtime.wait_observer = observe
        busy = routing.begin("a", MODEL)
        waiting = asyncio.create_task(h.client.post(CHAT, json=chat(mesh_wait_s=wait_s)))
        if frees:
            await _until(lambda: routing.waiters == 1)
            routing.finish(busy, Outcome.SUCCESS)
        r = await asyncio.wait_for(waiting, 10)
        if not frees:
            routing.finish(busy, Outcome.CANCELLED)
        (wait,) = waits
        return _looks(wait), "served" if r.status_code == 200 else "refused"


@pytest.mark.parametrize(("look_s", "wait_s", "frees", "expected", "end"), SCENARIOS)
async def test_simulator_and_gateway_wait_alike_at_admission(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    look_s: float,
    wait_s: float,
    frees: bool,
    expected: list[Look],
    end: str,
) -> None:
    monkeypatch.setattr(anonymous_wait, "LOOK_S", look_s)  # both read it through the module
    simulated = simulate(wait_s, frees)
    real = await through_the_gateway(tmp_path, wait_s, frees)
    assert real == simulated
    assert simulated == (expected, end)
