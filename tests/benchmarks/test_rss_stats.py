"""``benchmarks/rss_stats.py``: the pure summary behind ``bench_rss.py``."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "rss_stats.py"
_spec = importlib.util.spec_from_file_location("rss_stats", _PATH)
assert _spec is not None and _spec.loader is not None
rss_stats = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("rss_stats", rss_stats)
_spec.loader.exec_module(rss_stats)


def test_slope_of_a_line_is_its_rate_per_ten_minutes() -> None:
    # 0.01 MB/s = 6 MB per 10 min, whatever the intercept
    samples = [(t, 120.0 + 0.01 * t) for t in range(0, 1800, 10)]
    assert rss_stats.slope_mb_per_10min(samples) == pytest.approx(6.0)


def test_flat_series_has_zero_slope_and_a_falling_one_is_negative() -> None:
    assert rss_stats.slope_mb_per_10min([(t, 140.0) for t in range(0, 600, 10)]) == 0.0
    falling = [(0.0, 150.0), (600.0, 148.0), (1200.0, 146.0)]
    assert rss_stats.slope_mb_per_10min(falling) == pytest.approx(-2.0)


def test_slope_is_least_squares_not_end_to_end() -> None:
    # one spike in the middle: least squares over (0,0) (1,10) (2,0) is 0, not a rise
    assert rss_stats.slope_mb_per_10min([(0.0, 0.0), (60.0, 10.0), (120.0, 0.0)]) == 0.0
    # end points say (90 - 100) / 900 s = -6.67 MB per 10 min; the fit of all four:
    # sxy = -2700, sxx = 450000 -> -0.006 MB/s = -3.6 MB per 10 min
    pts = [(0.0, 100.0), (300.0, 90.0), (600.0, 102.0), (900.0, 90.0)]
    assert rss_stats.slope_mb_per_10min(pts) == pytest.approx(-3.6)


def test_slope_needs_two_distinct_times() -> None:
    assert math.isnan(rss_stats.slope_mb_per_10min([]))
    assert math.isnan(rss_stats.slope_mb_per_10min([(5.0, 1.0)]))
    assert math.isnan(rss_stats.slope_mb_per_10min([(5.0, 1.0), (5.0, 3.0)]))


def test_at_mark_takes_the_nearest_sample_within_tolerance() -> None:
    samples = [(0.0, 100.0), (58.0, 110.0), (71.0, 120.0)]
    assert rss_stats.at_mark(samples, 60.0, 5.0) == 110.0
    assert rss_stats.at_mark(samples, 300.0, 5.0) is None  # past the run's end
    assert rss_stats.at_mark([], 60.0, 5.0) is None


def test_settle_point_is_five_minutes_or_half_a_short_run() -> None:
    assert rss_stats.settle_s(1800.0) == 300.0
    assert rss_stats.settle_s(120.0) == 60.0
    assert rss_stats.settle_s(300.0) == 150.0


def test_summary_takes_the_slope_after_the_settle_point_only() -> None:
    # fast growth for 5 min (warm-up), then flat at 150 MB for 25 min
    samples = [(float(t), 100.0 + t / 6.0 if t < 300 else 150.0) for t in range(0, 1801, 10)]
    s = rss_stats.summarize(samples, 1800.0, 10.0)
    assert s["slope_mb_per_10min"] == 0.0
    assert s["slope_from_s"] == 300.0
    assert s["max_mb"] == 150.0
    assert s["first_mb"] == 100.0 and s["last_mb"] == 150.0
    assert s["at_min"] == {"1": 110.0, "5": 150.0, "10": 150.0, "20": 150.0, "30": 150.0}
    assert s["n_samples"] == len(samples)


def test_summary_of_a_growing_series_reports_the_growth() -> None:
    samples = [(float(t), 120.0 + 0.005 * t) for t in range(0, 1801, 10)]
    s = rss_stats.summarize(samples, 1800.0, 10.0)
    assert s["slope_mb_per_10min"] == pytest.approx(3.0)
    assert s["max_mb"] == pytest.approx(129.0)


def test_summary_of_a_short_run_leaves_later_marks_empty() -> None:
    samples = [(float(t), 130.0) for t in range(0, 121, 10)]
    s = rss_stats.summarize(samples, 120.0, 10.0)
    assert s["at_min"]["1"] == 130.0
    assert s["at_min"]["5"] is None and s["at_min"]["30"] is None
    assert s["slope_from_s"] == 60.0


def test_table_has_one_row_per_target_and_dashes_for_missing_values() -> None:
    ours = rss_stats.summarize([(float(t), 130.0) for t in range(0, 121, 10)], 120.0, 10.0)
    ours.update(requests=12000, errors=0, rps=100.0)
    other = rss_stats.summarize([(0.0, 340.0)], 120.0, 10.0)
    other.update(requests=700, errors=3, rps=5.83)
    lines = rss_stats.table({"ours": ours, "litellm": other})
    assert len(lines) == 3
    assert lines[0].split()[:3] == ["target", "1", "min"]
    row = lines[1].split()
    assert row[0] == "ours" and row[1] == "130.0" and row[2:6] == ["-", "-", "-", "-"]
    assert row[6:] == ["130.0", "+0.00", "12000", "0", "100.0"]
    lrow = lines[2].split()
    assert lrow[0] == "litellm" and lrow[1] == "-" and lrow[7] == "-"  # no slope from 1 sample
    assert lrow[-3:] == ["700", "3", "5.8"]
