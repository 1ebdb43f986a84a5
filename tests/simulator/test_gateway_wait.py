"""The simulator's gateway and the real one wait for a slot by the same code
(``core/slot_wait.py``, ``core/wake_on_change.py``): one scenario through both gives the
same looks (verdict, what next, the sleep), in the same order, and the same end.

The scenario: one node of one slot and no queue, busy; a keyed request that opted into a
wait (``X-Mesh-Wait``) finds it full. The node measures 0.1 ms a request (its heartbeat), so the router's
estimate of the wait is below the floor. The busy attempt ends after the waiter's first look
(woken by the change), after its second (its first sleep ran out at the 0.25 s floor, then
the change woke it), or never (its wait runs out)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.route_types import Verdict
from LLM_Mesh.core.slot_wait import RECHECK_S, Next, SlotWait, ran_out
from LLM_Mesh.registry.job import Job
from LLM_Mesh.simulator.events import EventLoop
from LLM_Mesh.simulator.fleet import SimNode
from LLM_Mesh.simulator.gateway import ANONYMOUS, KEYED, GatewayPolicy, SimGateway
from LLM_Mesh.simulator.strategies import Ours
from tests.registry.helpers import Harness, running
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key

Look = tuple[Verdict, Next, float, str, bool | None]
SAT = Verdict.SATURATED
SERVICE_S = 0.0001  # the node's own measure of a request (its heartbeat's service_s)
ARRIVES = 0.05  # the waiter's arrival (virtual), the busy request's at 0

# (wait_s, looks before the slot frees: None never, the looks expected, the end)
SCENARIOS: list[tuple[float, int | None, list[Look], str]] = [
    (
        30.0, 1,
        [(SAT, Next.SLEEP, RECHECK_S, "", None), (Verdict.OK, Next.SEND, 0.0, "", True)],
        "served",
    ),
    (
        30.0, 2,
        [(SAT, Next.SLEEP, RECHECK_S, "", None), (SAT, Next.SLEEP, RECHECK_S, "", False),
         (Verdict.OK, Next.SEND, 0.0, "", True)],
        "served",
    ),
    (
        0.1, None,
        [(SAT, Next.SLEEP, 0.1, "", None), (SAT, Next.RAN_OUT, 0.0, ran_out(0.1), False)],
        "refused",
    ),
]  # fmt: skip


def _looks(wait: SlotWait) -> list[Look]:
    assert wait.looks is not None  # traced: an observer is set
    return [(k.verdict, k.next, round(k.sleep_s, 2), k.why, k.woken) for k in wait.looks]


def simulate(wait_s: float, looks_before_free: int | None) -> tuple[list[Look], str]:
    loop = EventLoop()
    node = SimNode("n0", loop, random.Random(1), ttft_s=0.01, tokens_per_s=1000.0,
                   max_concurrency=1, max_queue=0)  # fmt: skip
    # the busy request holds the slot until the waiter's looks are made (each RECHECK_S)
    free_at = ARRIVES + RECHECK_S * (looks_before_free - 0.5) if looks_before_free else 5.0
    node.slow_latency_s = free_at
    strategy = Ours(random.Random(2))
    strategy.add_node("n0", None, 1, 0, 0.0)
    # it measures 0.1 ms a request: the router's estimate of the wait is below the floor
    strategy.router.heartbeat("n0", 0.0, in_flight=0, queued=0, service_s=SERVICE_S)
    waits: list[SlotWait] = []
    policy = GatewayPolicy(timeout_s=30.0, keyed_wait_s=wait_s)
    gw = SimGateway(loop, {"n0": node}, strategy, policy, random.Random(3), on_wait=waits.append)
    loop.at(0.0, gw.submit_keyed, 10)
    loop.at(ARRIVES, gw.submit_keyed, 10)
    loop.run(200.0)
    (wait,) = waits
    keyed = gw.by_class[KEYED]
    end = "served" if len(keyed.latencies) == 2 else "refused"  # the busy one is served
    assert end == "served" or keyed.failures == {"saturated": 1}
    assert len(keyed.gate_waits) == 1 and gw.places.waiting == 0
    return _looks(wait), end


def _count_picks(h: Harness) -> list[int]:
    routing = h.runtime.routing
    picks = [0]
    pick = routing.pick

    def counted(req):  # type: ignore[no-untyped-def]
        picks[0] += 1
        return pick(req)

    routing.pick = counted  # type: ignore[method-assign]
    return picks


async def through_the_gateway(
    tmp_path: Path, wait_s: float, looks_before_free: int | None
) -> tuple[list[Look], str]:
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        beat = {"in_flight": 0, "queued": 0, "service_s": SERVICE_S}
        assert (await h.client.post("/mesh/nodes/a/heartbeat", json=beat)).status_code == 200
        key, _ = await new_key(h, name="payer")
        routing = h.runtime.routing
        waits: list[SlotWait] = []

        def observe(job: Job, wait: SlotWait) -> None:
            waits.append(wait)

        h.runtime.wait_observer = observe
        busy = routing.begin("a", MODEL)
        picks = _count_picks(h)
        waiting = asyncio.create_task(
            h.client.post(CHAT, json=chat(), headers={"X-Mesh-Wait": f"{wait_s:g}", **bearer(key)})
        )
        if looks_before_free is not None:  # a pick before the wait, then one per look
            await _until(lambda: picks[0] >= looks_before_free and routing.waiters == 1)
            routing.finish(busy, Outcome.SUCCESS)
        r = await asyncio.wait_for(waiting, 10)
        if looks_before_free is None:
            routing.finish(busy, Outcome.CANCELLED)
        (wait,) = waits
        assert routing.send_waiters == 0
        return _looks(wait), "served" if r.status_code == 200 else "refused"


@pytest.mark.parametrize(("wait_s", "looks_before_free", "expected", "end"), SCENARIOS)
async def test_simulator_and_gateway_wait_alike(
    tmp_path: Path, wait_s: float, looks_before_free: int | None, expected: list[Look], end: str
) -> None:
    simulated = simulate(wait_s, looks_before_free)
    real = await through_the_gateway(tmp_path, wait_s, looks_before_free)
    assert real == simulated
    assert simulated == (expected, end)


async def test_no_place_to_wait_is_refused_at_once_in_both(tmp_path: Path) -> None:
    """No place left (``WaitPlaces`` of 0): refused at once, as without a wait, no wait."""
    loop = EventLoop()
    node = SimNode("n0", loop, random.Random(1), ttft_s=0.01, tokens_per_s=1000.0,
                   max_concurrency=1, max_queue=0)  # fmt: skip
    node.slow_latency_s = 5.0
    strategy = Ours(random.Random(2))
    strategy.add_node("n0", None, 1, 0, 0.0)
    waits: list[SlotWait] = []
    policy = GatewayPolicy(timeout_s=30.0, keyed_wait_s=30.0, max_waiters=0)
    gw = SimGateway(loop, {"n0": node}, strategy, policy, random.Random(3), on_wait=waits.append)
    loop.at(0.0, gw.submit_keyed, 10)
    loop.at(ARRIVES, gw.submit_keyed, 10)
    loop.run(1.0)
    keyed = gw.by_class[KEYED]
    assert waits == [] and keyed.failures == {"saturated": 1} and keyed.gate_waits == []
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        key, _ = await new_key(h, name="payer")
        routing = h.runtime.routing
        routing.max_send_waiters = 0
        h.runtime.wait_observer = lambda job, wait: waits.append(wait)
        busy = routing.begin("a", MODEL)
        r = await asyncio.wait_for(
            h.client.post(CHAT, json=chat(), headers={"X-Mesh-Wait": "30", **bearer(key)}), 10
        )
        routing.finish(busy, Outcome.CANCELLED)
        assert r.status_code == 429 and r.json()["error"]["reason"] == "saturated", r.text
        assert waits == []


def test_the_simulators_longest_wait_is_the_gateways() -> None:
    from LLM_Mesh.registry.extensions import MAX_WAIT_S as GATEWAY_MAX
    from LLM_Mesh.simulator.scenarios import MAX_WAIT_S

    assert MAX_WAIT_S == GATEWAY_MAX


def test_a_freed_slot_goes_to_the_waiting_keyed_request_not_a_new_anonymous_one() -> None:
    """The simulated gateway admits anonymous requests by the real rule,
    ``core/anonymous_wait.clear`` (``registry/access.AnonymousLast``; the real gateway's
    side: ``tests/registry/test_access.py::test_saturated_mesh_serves_keyed_requests_before_
    anonymous_ones``): an anonymous request that comes as the slot frees, before the waiting
    keyed request looks again, is held back ("anonymous_last") and the keyed one served."""
    loop = EventLoop()
    node = SimNode("n0", loop, random.Random(1), ttft_s=0.01, tokens_per_s=1000.0,
                   max_concurrency=1, max_queue=0)  # fmt: skip
    node.slow_latency_s = 0.5
    strategy = Ours(random.Random(2))
    strategy.add_node("n0", None, 1, 0, 0.0)
    policy = GatewayPolicy(timeout_s=30.0, keyed_wait_s=30.0, anonymous_last=True)
    sent: list[int] = []

    def on_stop(fo: object) -> None:  # the busy request ends: the slot is free right now
        if not sent:
            sent.append(1)
            assert strategy.pool_counts() == (1, 0) and gw.places.waiting == 1
            gw.submit_anonymous(10)

    gw = SimGateway(loop, {"n0": node}, strategy, policy, random.Random(3), on_stop=on_stop)
    loop.at(0.0, gw.submit_keyed, 10)
    loop.at(ARRIVES, gw.submit_keyed, 10)
    loop.run(10.0)
    assert sent == [1]
    assert gw.by_class[ANONYMOUS].failures == {"anonymous_last": 1}
    assert len(gw.by_class[KEYED].latencies) == 2 and gw.by_class[KEYED].gate_waits


def test_a_waiter_pushed_out_of_its_place_is_refused_at_once() -> None:
    """The simulated gateway shares the places by the gateway's push-out
    (``core/wait_places.WaitPlaces``): the newest waiter of the key holding the most loses
    its place to a key holding two fewer, is woken at once and refused as without a wait."""
    loop = EventLoop()
    node = SimNode("n0", loop, random.Random(1), ttft_s=0.01, tokens_per_s=1000.0,
                   max_concurrency=1, max_queue=0)  # fmt: skip
    node.slow_latency_s = 5.0
    strategy = Ours(random.Random(2))
    strategy.add_node("n0", None, 1, 0, 0.0)
    waits: list[SlotWait] = []
    policy = GatewayPolicy(timeout_s=30.0, keyed_wait_s=20.0, max_waiters=2, wait_keys=1)
    gw = SimGateway(loop, {"n0": node}, strategy, policy, random.Random(3), on_wait=waits.append)
    loop.at(0.0, gw.submit_keyed, 10)  # the busy one
    loop.at(0.1, gw.submit_keyed, 10)
    loop.at(0.2, gw.submit_keyed, 10)  # both places, one key's
    taken: list[object] = []
    loop.at(1.0, lambda _: taken.append(gw.places.take("other key")))
    loop.run(1.5)
    keyed = gw.by_class[KEYED]
    assert keyed.failures == {"saturated": 1}  # the newest, pushed out at 1.0 s
    assert keyed.gate_waits == [pytest.approx(0.8)] and len(waits) == 1
    assert gw.places.waiting == 2 and not isinstance(taken[0], str)
