"""``benchmarks/paired_stats.py``: the paired-rounds statistics behind ``bench_throughput.py``."""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "paired_stats.py"
_spec = importlib.util.spec_from_file_location("paired_stats", _PATH)
assert _spec is not None and _spec.loader is not None
ps = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("paired_stats", ps)
_spec.loader.exec_module(ps)


def test_two_paths_alternate_which_goes_first() -> None:
    orders = [ps.round_order(["mesh", "direct"], i) for i in range(8)]
    firsts = Counter(o[0] for o in orders)
    assert firsts == {"mesh": 4, "direct": 4}
    assert all(sorted(o) == ["direct", "mesh"] for o in orders)


def test_three_paths_cover_every_order_once_in_six_rounds() -> None:
    orders = {tuple(ps.round_order(["a", "b", "c"], i)) for i in range(6)}
    assert orders == set(itertools.permutations("abc"))


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_every_path_runs_in_every_place_equally_often(n: int) -> None:
    paths = [f"p{j}" for j in range(n)]
    places = Counter(
        (p, o.index(p)) for i in range(2 * n) for o in [ps.round_order(paths, i)] for p in o
    )
    assert set(places.values()) == {2}
    assert ps.round_order([], 3) == []


def test_sign_test_interval_is_the_textbook_one() -> None:
    # n = 20: P(B <= 5) = 0.0207 <= 0.025 < P(B <= 6) = 0.0577 -> k = 6, coverage 0.9586
    xs = list(range(1, 21))
    iv = ps.median_interval(xs)
    assert iv is not None
    assert (iv.low, iv.high, iv.k, iv.n) == (6, 15, 6, 20)
    assert iv.coverage == pytest.approx(1 - 2 * 21700 / 2**20)
    # n = 40: k = 14 (P(B <= 13) = 0.0192, P(B <= 14) = 0.0403)
    iv40 = ps.median_interval([float(v) for v in range(40)])
    assert iv40 is not None and (iv40.k, iv40.low, iv40.high) == (14, 13.0, 26.0)


def test_order_does_not_matter_and_too_few_values_give_no_interval() -> None:
    xs = [3.0, -1.0, 7.5, 2.0, 0.5, 9.0, 4.0, 1.0]
    shuffled = xs[:]
    random.Random(1).shuffle(shuffled)
    assert ps.median_interval(xs) == ps.median_interval(shuffled)
    assert ps.median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # [min, max]: 0.9375
    six = ps.median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert six is not None and (six.low, six.high) == (1.0, 6.0)
    with pytest.raises(ValueError):
        ps.median_interval(xs, level=1.0)


def test_the_interval_covers_the_median_at_least_as_often_as_it_says() -> None:
    # a skewed noise, as the box's is: Exp(1), whose median is ln 2
    rng = random.Random(7)
    true_median = math.log(2)  # of Exp(1)
    hits = trials = 0
    for _ in range(400):
        xs = [rng.expovariate(1.0) for _ in range(30)]
        iv = ps.median_interval(xs)
        assert iv is not None
        trials += 1
        hits += iv.low <= true_median <= iv.high
    assert hits / trials >= 0.92  # nominal >= 0.957 at n = 30; 400 trials' spread


def test_verdict_needs_the_whole_interval_on_one_side() -> None:
    def iv(lo: float, hi: float) -> object:
        return ps.Interval(lo, hi, 0.96, 6, 20)

    assert ps.verdict(iv(2.0, 4.9), 5.0) == "met"
    assert ps.verdict(iv(2.0, 5.0), 5.0) == "met"
    assert ps.verdict(iv(4.0, 6.0), 5.0) == "not resolved"
    assert ps.verdict(iv(5.0, 6.0), 5.0) == "not resolved"
    assert ps.verdict(iv(5.1, 9.0), 5.0) == "not met"
    assert ps.verdict(None, 5.0) == "not resolved"
    # at least: decode ratio >= 0.97
    assert ps.verdict(iv(0.97, 1.01), 0.97, at_most=False) == "met"
    assert ps.verdict(iv(0.95, 0.99), 0.97, at_most=False) == "not resolved"
    assert ps.verdict(iv(0.90, 0.969), 0.97, at_most=False) == "not met"


def test_summary_line_says_the_verdict_the_interval_and_the_method() -> None:
    added = [4.0 + 0.1 * i for i in range(20)]  # 4.0 .. 5.9, median 4.95
    s = ps.summarize(added, 5.0)
    assert s.median == pytest.approx(4.95)
    assert s.verdict == "not resolved"  # [4.5, 5.4]
    line = s.line("TTFT added", "ms")
    assert "not resolved" in line and "[+4.50, +5.40] ms" in line and "sign test" in line
    assert s.as_dict()["ci95_high"] == pytest.approx(5.4)
    low = ps.summarize([1.0 + 0.1 * i for i in range(20)], 5.0)
    assert low.verdict == "met" and "verdict, TTFT added <= +5.00 ms: met" in low.line(
        "TTFT added", "ms"
    )
    assert ps.summarize([1.0, 2.0], 5.0).line("x", "ms").endswith("too few rounds)")
    with pytest.raises(ValueError):
        ps.summarize([], 5.0)


def test_thousands_of_rounds_give_the_normal_approximations_k_without_overflow() -> None:
    n = 2000  # 2**n is far beyond a float: the binomial sums stay integers
    iv = ps.median_interval([float(v) for v in range(n)])
    assert iv is not None and iv.coverage >= 0.95
    assert abs(iv.k - (n / 2 - 0.98 * math.sqrt(n))) <= 2  # ~ n/2 - 1.96 sqrt(n)/2
