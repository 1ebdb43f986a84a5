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


def test_a_key_minute_counts_requests_errors_tokens_and_the_mean_latency_of_answers() -> None:
    from LLM_Mesh.core.traffic import KeyPoint

    ts = TrafficSeries(window_s=180.0, key_bucket_s=60.0)
    ts.observe(61.0, ok=True, failed=False, latency_ms=100.0, tokens=5, node_id="n", model="m")
    ts.observe(62.0, ok=True, failed=False, latency_ms=300.0, tokens=1, node_id="n", model="m")
    # a failed request's latency is not an answer's: it counts, its latency does not
    ts.observe(63.0, ok=False, failed=True, latency_ms=9999.0, tokens=2, node_id="n", model="m")
    ts.observe(63.5, ok=False, failed=True, latency_ms=9999.0, tokens=0, node_id="n", model="m")
    expected = [
        KeyPoint(0.0, 0, 0, 0, None),
        KeyPoint(60.0, 4, 2, 8, 200.0),
        KeyPoint(120.0, 0, 0, 0, None),
    ]
    assert ts.history(NODE, "n", 150.0) == expected
    assert ts.history(MODEL, "m", 150.0) == expected
    errors_only = TrafficSeries(window_s=180.0, key_bucket_s=60.0)
    errors_only.observe(61.0, ok=False, failed=True, latency_ms=5.0, node_id="n")
    assert errors_only.history(NODE, "n", 61.0)[-1] == KeyPoint(60.0, 1, 1, 0, None)


def test_key_totals_drop_minutes_that_left_the_window() -> None:
    from LLM_Mesh.core.traffic import KeyTotals

    ts = TrafficSeries(window_s=180.0, key_bucket_s=60.0)
    ts.observe(10.0, ok=False, failed=True, tokens=3, node_id="n")
    ts.observe(70.0, ok=True, failed=False, tokens=4, node_id="n")
    ts.observe(75.0, ok=False, failed=True, tokens=1, node_id="n")
    assert ts.totals(NODE, 100.0) == {"n": KeyTotals(3, 2, 8)}
    assert ts.totals(NODE, 180.0) == {"n": KeyTotals(2, 1, 5)}  # the minute at 0 left
    ts.observe(200.0, ok=True, failed=False, tokens=7, node_id="n")  # minute 60 still in
    assert ts.totals(NODE, 200.0) == {"n": KeyTotals(3, 1, 12)}
    ts.observe(240.0, ok=True, failed=False, tokens=1, node_id="n")  # minute 60 leaves
    assert ts.totals(NODE, 240.0) == {"n": KeyTotals(2, 0, 8)}


def test_an_empty_window_is_all_zero_points() -> None:
    from LLM_Mesh.core.traffic import Point

    ts = TrafficSeries(window_s=15.0, bucket_s=5.0, key_bucket_s=15.0)
    assert ts.points(14.0) == [
        Point(t, 0, 0, 0, 0.0, 0.0, None, None, None, None) for t in (0.0, 5.0, 10.0)
    ]
    one = TrafficSeries(window_s=5.0, bucket_s=5.0, key_bucket_s=5.0)  # a window of one bucket
    assert len(one.points(12.0)) == 1


def test_percentiles_cover_exactly_the_last_five_minutes_of_buckets() -> None:
    ts = TrafficSeries(bucket_s=5.0)
    ts.observe(4.0, ok=True, failed=False, latency_ms=1000.0, ttft_ms=1000.0)  # bucket 0: out
    ts.observe(5.0, ok=True, failed=False, latency_ms=10.0, ttft_ms=20.0)  # bucket 1: in
    s = ts.summary(300.0)  # buckets 1..60 are the last five minutes
    assert s.latency_p95_ms == pytest.approx(10.0, rel=0.03)
    assert s.ttft_p50_ms == pytest.approx(20.0, rel=0.03)
    assert s.ttft_p95_ms == pytest.approx(20.0, rel=0.03)
    assert s.requests_window == 2


def test_the_last_minutes_errors_and_tokens_are_summed() -> None:
    ts = TrafficSeries(bucket_s=5.0)
    for t in (50.0, 61.0, 62.0):
        ts.observe(t, ok=False, failed=True, tokens=3)
    s = ts.summary(65.0)
    assert (s.requests_1m, s.errors_1m) == (3, 3)
    assert s.tokens_per_s == pytest.approx(3 * s.req_per_s)  # 3 tokens a request


def test_a_points_percentiles_are_its_own() -> None:
    ts = TrafficSeries(bucket_s=5.0)
    ts.observe(1.0, ok=True, failed=False, latency_ms=10.0, ttft_ms=3.0)
    p = ts.points(1.0)[-1]
    assert p.latency_p95_ms == pytest.approx(10.0, rel=0.03)
    assert p.ttft_p50_ms == pytest.approx(3.0, rel=0.03)
    assert p.ttft_p95_ms == pytest.approx(3.0, rel=0.03)


def test_the_smallest_and_widest_settings_are_allowed() -> None:
    assert TrafficSeries(window_s=60.0, bucket_s=60.0, key_bucket_s=60.0, max_keys=1).n_buckets == 1
    assert TrafficSeries(bucket_s=0.5).n_buckets == 7200
    for bad in ({"bucket_s": 0.0}, {"key_bucket_s": 7200.0}, {"max_keys": 0}):
        with pytest.raises(ValueError) as exc:
            TrafficSeries(**bad)  # type: ignore[arg-type]
        assert str(exc.value) == "need 0 < bucket_s, key_bucket_s <= window_s and max_keys >= 1"


def test_buckets_older_than_five_minutes_keep_their_point_but_not_their_histograms() -> None:
    ts = TrafficSeries(bucket_s=5.0)
    for i in range(120):  # ten minutes, one answer a bucket, latencies 10..129 ms
        ts.observe(T0 + 5 * i, ok=True, failed=False, latency_ms=10.0 + i, ttft_ms=5.0 + i)
    fresh = ts.points(T0 + 5 * 119)  # points computed while their histograms were all kept
    for i in range(120, 240):  # ten more minutes
        ts.observe(T0 + 5 * i, ok=True, failed=False, latency_ms=1.0, ttft_ms=1.0)
    later = {p.t: p for p in ts.points(T0 + 5 * 239)}
    assert all(later[p.t] == p for p in fresh[-120:-1])  # the closed points did not change
    kept = [b for b in ts._buckets if b.latency.quantile(0.5) is not None]
    # the summary's 60 buckets (and nothing older) keep histograms
    assert [b.index for b in kept] == [b.index for b in ts._buckets][-60:]
    assert ts.summary(T0 + 5 * 239).latency_p95_ms == pytest.approx(1.0, rel=0.03)


def test_a_bucket_settled_unread_still_has_its_percentiles() -> None:
    ts = TrafficSeries(bucket_s=5.0)
    ts.observe(T0, ok=True, failed=False, latency_ms=40.0, ttft_ms=20.0)
    ts.observe(T0 + 600, ok=True, failed=False, latency_ms=1.0, ttft_ms=1.0)  # 10 min later
    first = ts.points(T0 + 600)[-121]
    assert first.t == T0 and first.requests == 1
    assert first.latency_p50_ms == pytest.approx(40.0, rel=0.03)
    assert first.ttft_p95_ms == pytest.approx(20.0, rel=0.03)


def test_a_bucket_leaves_the_window_exactly_a_window_after_it_began() -> None:
    s = TrafficSeries(window_s=60, bucket_s=5)  # 12 buckets
    _ok(s, T0)
    assert s.summary(T0 + 59.9).requests_window == 1  # its bucket is the 12th: still in
    assert s.summary(T0 + 60).requests_window == 0


def test_the_percentiles_cover_exactly_five_minutes_of_buckets() -> None:
    s = TrafficSeries()  # 5 s buckets: 60 of them
    _ok(s, T0, latency=5000.0)
    assert s.summary(T0 + 299.9).latency_p95_ms == pytest.approx(5000, rel=0.021)
    assert s.summary(T0 + 300).latency_p95_ms is None


def test_the_last_minutes_rate_is_over_at_most_60_s() -> None:
    """Buckets that do not divide a minute (7 s: nine of them span 56 s and the current
    one's elapsed part): the span is capped at 60 s, not longer, nor shortened."""
    assert T0 % 7 == 0
    s = TrafficSeries(bucket_s=7)
    for _ in range(60):
        _ok(s, T0 + 6)
    assert s.summary(T0 + 6).req_per_s == 1.0  # 56 + 6 = 62 s, capped at 60


def test_a_bucket_just_begun_counts_its_elapsed_time_as_one_second() -> None:
    """Its rate is over at least 1 s (not its few ms), and over no more than that."""
    s = TrafficSeries(bucket_s=10)
    for _ in range(51):
        _ok(s, T0)
    assert s.summary(T0 + 0.5).req_per_s == 1.0  # 5 whole buckets (50 s) + 1 s
    assert s.points(T0 + 0.5)[-1].req_per_s == 51.0  # the current bucket alone: 1 s


def test_the_smallest_buckets_are_allowed_and_none_of_zero() -> None:
    s = TrafficSeries(window_s=1.0, bucket_s=1.0, key_bucket_s=1.0)
    _ok(s, T0, node_id="n1")
    assert s.totals(NODE, T0)["n1"].requests == 1
    for bad in ({"bucket_s": 0.0}, {"key_bucket_s": 0.0}, {"max_keys": 0}):
        with pytest.raises(ValueError):
            TrafficSeries(**bad)  # type: ignore[arg-type]
