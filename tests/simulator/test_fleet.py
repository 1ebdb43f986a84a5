"""A simulated node's line (simulator/fleet.py): keyed waiters first, by the node's own
rule, ``core/priority.py``, called, not copied."""

from __future__ import annotations

import random

import pytest

from LLM_Mesh.core import priority
from LLM_Mesh.simulator.events import EventLoop
from LLM_Mesh.simulator.fleet import Job, SimNode


class Served:
    """The order jobs got their first token in, by name."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def first(self, job: Job) -> None:
        self.order.append(job.request)

    def end(self, job: Job, result: str | int) -> None:
        pass


def _node(loop: EventLoop, queue: int = 100) -> SimNode:
    node = SimNode("n0", loop, random.Random(1), ttft_s=0.01, tokens_per_s=1000.0,
                   max_concurrency=1, max_queue=queue)  # fmt: skip
    node.slow_latency_s = 1.0  # every job holds the slot 1 s, first token at 0.5 s
    return node


def _submit(node: SimNode, served: Served, name: str, keyed: bool) -> Job:
    job = Job(name, node, 10, served.first, served.end, None, keyed)
    node.submit(job)
    return job


def _line_order(*waiting: tuple[str, bool]) -> list[str]:
    """One job runs; ``waiting`` join the line in order; the order they are served in."""
    loop, served = EventLoop(), Served()
    node = _node(loop)
    _submit(node, served, "first", True)
    for name, keyed in waiting:
        _submit(node, served, name, keyed)
    loop.run(100.0)
    return served.order[1:]


def test_keyed_waiters_go_before_anonymous_ones_that_came_first() -> None:
    order = _line_order(("a1", False), ("a2", False), ("k1", True), ("k2", True))
    assert order == ["k1", "k2", "a1", "a2"]


def test_one_class_is_first_come_first_served() -> None:
    assert _line_order(("a1", False), ("a2", False), ("a3", False)) == ["a1", "a2", "a3"]
    assert _line_order(("k1", True), ("k2", True), ("k3", True)) == ["k1", "k2", "k3"]


def test_the_node_calls_core_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a copy of the rule: replacing ``core.priority.next_waiter`` changes the order."""
    calls: list[int] = []

    def last(waiters: list[priority.Waiter], now: float) -> int:
        calls.append(len(waiters))
        return len(waiters) - 1

    monkeypatch.setattr(priority, "next_waiter", last)
    order = _line_order(("a1", False), ("a2", False), ("k1", True), ("k2", True))
    assert order == ["k2", "k1", "a2", "a1"] and calls == [4, 3, 2, 1]


def _slots_to_anonymous(duration: float) -> tuple[int, int]:
    """One slot of 1 s; keyed requests alone come at twice what it serves, anonymous ones
    as often, the line unbounded: (slots that went to keyed, to anonymous)."""
    loop, served = EventLoop(), Served()
    node = _node(loop, queue=10_000)
    t = 0.0
    while t < duration:
        loop.at(t, lambda _a: _submit(node, served, "k", True))
        loop.at(t + 0.25, lambda _a: _submit(node, served, "a", False))
        t += 0.5
    loop.run(duration)
    return served.order.count("k"), served.order.count("a")


@pytest.mark.parametrize("duration", [29.0, 200.0])
def test_keyed_load_that_saturates_leaves_anonymous_one_slot_in_five(duration: float) -> None:
    """Within 29 s only ``MAX_PASSED_OVER`` bounds it; later ``MAX_ORDINARY_WAIT_S`` too."""
    keyed, anonymous = _slots_to_anonymous(duration)
    assert keyed + anonymous >= duration - 2
    assert anonymous >= (keyed + anonymous) // (priority.MAX_PASSED_OVER + 1) - 1
    if duration < priority.MAX_ORDINARY_WAIT_S:
        assert keyed > anonymous  # and keyed ones do go first


@pytest.mark.parametrize("duration", [29.0, 200.0])
def test_without_the_bound_anonymous_requests_would_starve(
    monkeypatch: pytest.MonkeyPatch, duration: float
) -> None:
    """The test above can fail: strict priority (no bound) leaves anonymous nothing."""
    strict = priority.next_waiter

    def unbounded(waiters: list[priority.Waiter], now: float) -> int:
        return strict(waiters, now, max_passed=10**9, max_wait_s=float("inf"))

    monkeypatch.setattr(priority, "next_waiter", unbounded)
    keyed, anonymous = _slots_to_anonymous(duration)
    assert keyed >= duration - 2 and anonymous == 0


def test_a_cancelled_waiter_leaves_the_line() -> None:
    loop, served = EventLoop(), Served()
    node = _node(loop, queue=2)
    _submit(node, served, "first", False)
    gone = _submit(node, served, "gone", False)
    _submit(node, served, "second", False)
    node.cancel(gone)
    assert node.queued == 1
    _submit(node, served, "third", False)  # room again: not refused 429
    loop.run(10.0)
    assert served.order == ["first", "second", "third"]
