"""The log-bucketed histogram: quantiles within its relative accuracy, merging, edges."""

from __future__ import annotations

import random
import statistics

import pytest

from LLM_Mesh.core.sketch import LogHistogram


def _exact(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[int(q * (len(ordered) - 1))]


@pytest.mark.parametrize("dist", ["uniform", "lognormal", "bimodal"])
def test_quantiles_within_the_accuracy(dist: str) -> None:
    rng = random.Random(7)
    if dist == "uniform":
        samples = [rng.uniform(0.5, 2000.0) for _ in range(5000)]
    elif dist == "lognormal":
        samples = [rng.lognormvariate(3.0, 1.5) for _ in range(5000)]
    else:
        samples = [rng.gauss(5.0, 0.5) if rng.random() < 0.9 else rng.gauss(900.0, 50.0)
                   for _ in range(5000)]  # fmt: skip
    h = LogHistogram(0.02)
    for s in samples:
        h.add(s)
    assert h.count == len(samples)
    for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
        got = h.quantile(q)
        want = _exact(samples, q)
        assert got is not None
        assert abs(got - want) <= 0.0201 * want, (q, got, want)


def test_quantiles_in_one_pass_match_one_at_a_time() -> None:
    h = LogHistogram()
    for v in (1, 2, 3, 10, 100, 1000):
        h.add(v)
    qs = (0.95, 0.5, 0.0, 1.0)
    assert h.quantiles(qs) == [h.quantile(q) for q in qs]
    assert h.quantile(1.0) == pytest.approx(1000, rel=0.0201)
    assert h.quantile(0.0) == pytest.approx(1, rel=0.0201)


def test_empty_and_bad_input() -> None:
    h = LogHistogram()
    assert h.quantile(0.5) is None
    assert h.quantiles((0.5, 0.95)) == [None, None]
    h.add(float("nan"))
    h.add(-1.0)
    h.add(float("inf"))
    h.add(5.0, n=0)
    assert h.count == 0
    with pytest.raises(ValueError):
        h.quantile(1.5)
    with pytest.raises(ValueError):
        LogHistogram(0.0)
    with pytest.raises(ValueError):
        LogHistogram(1.0)


def test_zero_counts_as_the_smallest_value() -> None:
    h = LogHistogram()
    h.add(0.0, n=3)
    h.add(50.0)
    got = h.quantile(0.5)
    assert got is not None and got < 0.01


def test_merge_is_the_histogram_of_both() -> None:
    rng = random.Random(3)
    a_s = [rng.expovariate(1 / 40) for _ in range(1000)]
    b_s = [rng.expovariate(1 / 400) for _ in range(1000)]
    a, b = LogHistogram(), LogHistogram()
    for s in a_s:
        a.add(s)
    for s in b_s:
        b.add(s)
    both = LogHistogram.merged([a, b])
    assert both.count == 2000
    med = statistics.median_low(a_s + b_s)
    got = both.quantile(0.5)
    assert got is not None and abs(got - med) <= 0.021 * med
    with pytest.raises(ValueError):
        a.merge(LogHistogram(0.1))
