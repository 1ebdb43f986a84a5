"""``keyed-rush`` with the keyed requests' opt-in wait for a slot (``--keyed-wait``):
deterministic per seed, and the wait does what it is for on the virtual clock."""

from __future__ import annotations

import dataclasses
import math

import pytest

from LLM_Mesh.simulator.scenarios import MAX_WAIT_S, Report, run_scenario


def _run(seed: int, wait_s: float) -> Report:
    return run_scenario("keyed-rush", "ours", seed, duration_s=15.0, anonymous_share=1.0,
                        keyed_wait_s=wait_s)  # fmt: skip


def _figures(r: Report) -> Report:
    return dataclasses.replace(r, wall_s=0.0)


def test_a_run_with_the_wait_is_a_pure_function_of_its_seed() -> None:
    a, b, c = _run(2, 10.0), _run(2, 10.0), _run(3, 10.0)
    assert _figures(a) == _figures(b)
    assert _figures(a) != _figures(c)


def test_keyed_requests_that_wait_are_refused_less_and_counted() -> None:
    without, waited = _run(1, 0.0), _run(1, 10.0)
    k0, k1 = without.classes["keyed"], waited.classes["keyed"]
    assert k0.waited == 0 and math.isnan(k0.gate_wait_p50_ms)
    assert k0.refused > 0  # every node full: refused at once without a wait
    assert k1.waited > 0 and k1.refused < k0.refused
    assert 0 < k1.gate_wait_p50_ms <= k1.gate_wait_p95_ms <= 10_000.0
    assert waited.classes["anonymous"].waited == 0  # only keyed requests opt in here


def test_the_wait_is_checked() -> None:
    for bad in (-1.0, MAX_WAIT_S + 1, math.nan):
        with pytest.raises(ValueError):
            run_scenario("keyed-rush", "ours", 1, duration_s=1.0, keyed_wait_s=bad)


def test_anonymous_requests_that_wait_at_admission_are_counted_and_capped() -> None:
    """``--anonymous-wait``: the admit stage's wait, at most ``max_anonymous_waiters`` at
    once (``core/anonymous_wait.may_wait``), behind the keyed requests waiting."""
    base = run_scenario("keyed-rush", "ours", 1, duration_s=15.0, anonymous_share=1.0,
                        keyed_wait_s=10.0)  # fmt: skip
    both = run_scenario("keyed-rush", "ours", 1, duration_s=15.0, anonymous_share=1.0,
                        keyed_wait_s=10.0, anonymous_wait_s=10.0)  # fmt: skip
    a0, a1 = base.classes["anonymous"], both.classes["anonymous"]
    assert a0.waited == 0 and a1.waited > 0 and a1.completed > a0.completed
    assert both.classes["keyed"].refused == 0  # keyed requests still go first
    again = run_scenario("keyed-rush", "ours", 1, duration_s=15.0, anonymous_share=1.0,
                         keyed_wait_s=10.0, anonymous_wait_s=10.0)  # fmt: skip
    assert _figures(again) == _figures(both)


def test_at_most_the_cap_of_anonymous_requests_wait() -> None:
    import random

    from LLM_Mesh.simulator.events import EventLoop
    from LLM_Mesh.simulator.fleet import SimNode
    from LLM_Mesh.simulator.gateway import ANONYMOUS, GatewayPolicy, SimGateway
    from LLM_Mesh.simulator.strategies import Ours

    loop = EventLoop()
    node = SimNode("n0", loop, random.Random(1), ttft_s=0.01, tokens_per_s=1000.0,
                   max_concurrency=1, max_queue=0)  # fmt: skip
    node.slow_latency_s = 5.0
    strategy = Ours(random.Random(2))
    strategy.add_node("n0", None, 1, 0, 0.0)
    policy = GatewayPolicy(timeout_s=30.0, anonymous_last=True, anonymous_wait_s=1.0,
                           max_anonymous_waiters=3)  # fmt: skip
    gw = SimGateway(loop, {"n0": node}, strategy, policy, random.Random(3))
    seen: list[int] = []
    loop.at(0.0, gw.submit_anonymous, 10)
    for _ in range(5):
        loop.at(0.1, gw.submit_anonymous, 10)
    loop.at(0.2, lambda _: seen.append(gw.anonymous_waiting))
    loop.run(40.0)
    anon = gw.by_class[ANONYMOUS]
    assert seen == [3] and len(anon.gate_waits) == 3 and gw.anonymous_waiting == 0
    assert anon.failures == {"saturated": 5}  # 2 at once, 3 when their wait ran out
