"""The gateway's traffic series: buckets, rates, percentiles, expiry, per node and model."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.traffic import MODEL, NODE, TrafficSeries

T0 = 1_699_999_980.0  # a bucket boundary (divisible by 5 and 60)


def _ok(s: TrafficSeries, now: float, latency: float = 10.0, **kw: object) -> None:
    s.observe(now, ok=True, failed=False, latency_ms=latency, ttft_ms=latency / 2, tokens=4, **kw)  # type: ignore[arg-type]


def test_points_cover_the_window_with_gaps_filled() -> None:
    s = TrafficSeries(window_s=60, bucket_s=5)
    assert len(s.points(T0)) == 12
    assert all(p.requests == 0 and p.latency_p50_ms is None for p in s.points(T0))
    _ok(s, T0 + 1)
    _ok(s, T0 + 11, latency=30)
    pts = s.points(T0 + 12)
    assert len(pts) == 12
    assert pts[-1].t == T0 + 10 and pts[-1].requests == 1
    assert pts[-3].t == T0 and pts[-3].requests == 1
    assert pts[-2].requests == 0 and pts[-2].req_per_s == 0.0
    assert pts[-3].req_per_s == pytest.approx(1 / 5)
    assert pts[-3].tokens_per_s == pytest.approx(4 / 5)
    assert pts[-3].latency_p50_ms == pytest.approx(10, rel=0.021)
    assert pts[-3].ttft_p50_ms == pytest.approx(5, rel=0.021)
    # the current bucket's rate is over its elapsed part (2 s here)
    assert pts[-1].req_per_s == pytest.approx(1 / 2)


def test_since_returns_only_newer_buckets_and_closed_points_are_kept() -> None:
    s = TrafficSeries(window_s=60, bucket_s=5)
    _ok(s, T0 + 1)
    first = s.points(T0 + 7)
    closed = first[-2]
    assert closed.requests == 1
    later = s.points(T0 + 7, since=T0)
    assert [p.t for p in later] == [T0, T0 + 5]
    assert later[0] is closed  # computed once


def test_old_buckets_leave_the_window() -> None:
    s = TrafficSeries(window_s=60, bucket_s=5)
    _ok(s, T0)
    assert s.summary(T0 + 1).requests_window == 1
    assert s.summary(T0 + 61).requests_window == 0
    assert sum(p.requests for p in s.points(T0 + 61)) == 0


def test_errors_and_cancelled_requests() -> None:
    s = TrafficSeries()
    s.observe(T0, ok=False, failed=True, latency_ms=500.0, node_id="n1", model="m")
    s.observe(T0, ok=False, failed=False, latency_ms=900.0, tokens=3)  # cancelled
    _ok(s, T0, latency=20.0)
    p = s.points(T0 + 1)[-1]
    assert (p.requests, p.errors, p.tokens) == (3, 1, 7)
    # only the answered request is a latency sample
    assert p.latency_p95_ms == pytest.approx(20, rel=0.021)
    assert s.totals(NODE, T0 + 1)["n1"].errors == 1


def test_summary_rates_over_the_last_minute_percentiles_over_five() -> None:
    s = TrafficSeries()
    for i in range(10):  # 3 minutes earlier: slow ones, still in the five-minute percentiles
        _ok(s, T0 - 200 + i, latency=5000.0)
    for i in range(120):  # then 2 requests a second for a minute, 100 ms
        _ok(s, T0 + i / 2, latency=100.0)
    now = T0 + 60
    sm = s.summary(now)
    assert sm.requests_window == 130
    assert sm.requests_1m == 110  # the oldest 5 s of that minute just left it
    assert sm.req_per_s == pytest.approx(2.0, rel=0.05)
    assert sm.tokens_per_s == pytest.approx(8.0, rel=0.05)
    assert sm.latency_p50_ms == pytest.approx(100, rel=0.021)
    assert sm.latency_p95_ms == pytest.approx(5000, rel=0.021)
    assert s.summary(now + 600).latency_p50_ms is None


def test_a_clock_that_steps_back_counts_in_the_newest_bucket() -> None:
    s = TrafficSeries(window_s=60, bucket_s=5)
    _ok(s, T0 + 20)
    _ok(s, T0 + 2)  # the clock stepped back
    assert s.points(T0 + 21)[-1].requests == 2


def test_history_and_totals_per_node_and_model() -> None:
    s = TrafficSeries(window_s=600, key_bucket_s=60)
    _ok(s, T0 + 1, latency=10, node_id="a", model="m1")
    _ok(s, T0 + 2, latency=30, node_id="a", model="m1")
    _ok(s, T0 + 70, latency=50, node_id="b", model="m2")
    h = s.history(NODE, "a", T0 + 70)
    assert len(h) == 10
    assert h[-2].t == T0 and h[-2].requests == 2 and h[-2].latency_ms == pytest.approx(20)
    assert h[-1].requests == 0 and h[-1].latency_ms is None
    assert s.history(NODE, "nobody", T0)[-1].requests == 0
    tot = s.totals(NODE, T0 + 70)
    assert (tot["a"].requests, tot["a"].tokens) == (2, 8)
    assert s.totals(MODEL, T0 + 70)["m2"].requests == 1
    # a node not heard from for the window is forgotten
    later = s.totals(NODE, T0 + 600 + 30)
    assert "a" not in later and "b" in later
    assert "b" not in s.totals(NODE, T0 + 1300)


def test_at_most_max_keys_least_recent_dropped() -> None:
    s = TrafficSeries(max_keys=2)
    _ok(s, T0, node_id="a")
    _ok(s, T0, node_id="b")
    _ok(s, T0, node_id="a")
    _ok(s, T0, node_id="c")
    assert set(s.totals(NODE, T0)) == {"a", "c"}


def test_memory_is_bounded_by_the_window() -> None:
    s = TrafficSeries(window_s=60, bucket_s=5)
    for i in range(1000):
        _ok(s, T0 + i, node_id="a")
    assert len(s._buckets) <= 12
    assert len(s._keys[NODE]["a"].rows) <= 1


@pytest.mark.parametrize(
    "kw", [{"bucket_s": 0}, {"bucket_s": 7200}, {"key_bucket_s": 0}, {"max_keys": 0}]
)
def test_bad_settings(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TrafficSeries(**kw)  # type: ignore[arg-type]
