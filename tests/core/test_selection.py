"""The least-loaded baseline (core/selection.py), the simulator's comparison strategy."""

from __future__ import annotations

from LLM_Mesh.core.selection import Candidate, pick_least_loaded


def c(nid: str, **kw: object) -> Candidate:
    return Candidate(nid, f"http://{nid}", **kw)  # type: ignore[arg-type]


def test_capacity_and_saturation() -> None:
    n = c("a", max_concurrency=2, max_queue=3)
    assert n.capacity == 5
    assert not c("a", in_flight=2, queued=2, max_concurrency=2, max_queue=3).saturated
    assert c("a", in_flight=2, queued=3, max_concurrency=2, max_queue=3).saturated
    assert c("a", in_flight=6, max_concurrency=2, max_queue=3).saturated


def test_fewest_in_flight_relative_to_concurrency_wins() -> None:
    # load / concurrency: a = 2/4 = 0.5, b = 1/1 = 1.0: a wins despite more requests
    a = c("a", in_flight=2, max_concurrency=4)
    b = c("b", in_flight=1, max_concurrency=1)
    assert pick_least_loaded([b, a]) is a
    a3 = c("a", in_flight=3, max_concurrency=4)  # 0.75 still beats 1.0
    assert pick_least_loaded([b, a3]) is a3
    # queued requests count as load too: 1 running + 2 queued beats 0 + 4
    x = c("x", in_flight=1, queued=2, max_concurrency=1)
    y = c("y", queued=4, max_concurrency=1)
    assert pick_least_loaded([y, x]) is x


def test_ties_go_to_lower_latency_then_node_id() -> None:
    slow = c("a", latency_ms_ewma=50.0)
    fast = c("b", latency_ms_ewma=10.0)
    assert pick_least_loaded([slow, fast]) is fast
    unknown = c("c")  # no latency yet counts as 0: tried first
    assert pick_least_loaded([slow, fast, unknown]) is unknown
    very_fast = c("d", latency_ms_ewma=0.5)
    assert pick_least_loaded([very_fast, unknown]) is unknown
    assert pick_least_loaded([c("z"), c("m"), c("q")]).node_id == "m"  # type: ignore[union-attr]


def test_skips_excluded_and_saturated_and_may_find_none() -> None:
    full = c("a", in_flight=1, max_concurrency=1, max_queue=0)
    busy = c("b", in_flight=3, max_concurrency=1, max_queue=8)
    tried = c("c")
    assert pick_least_loaded([full, busy, tried], exclude={"c"}) is busy
    assert pick_least_loaded([full, tried], exclude={"c"}) is None
    assert pick_least_loaded([]) is None


def test_zero_concurrency_does_not_divide_by_zero() -> None:
    odd = c("a", max_concurrency=0, max_queue=2)
    fine = c("b", in_flight=1, max_concurrency=4)
    # odd's load 0 / max(1, 0) = 0 beats fine's 0.25
    assert pick_least_loaded([fine, odd]) is odd
    busy_odd = c("a", in_flight=1, max_concurrency=0, max_queue=2)
    # 1 / max(1, 0) = 1.0 loses to 0.25; without the max() it would raise
    assert pick_least_loaded([busy_odd, fine]) is fine
