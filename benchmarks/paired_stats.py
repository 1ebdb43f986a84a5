"""Paired rounds and what they can say: the pure statistics behind ``bench_throughput.py``.

Each round measures every path once (the mesh, llama-cpp-python called directly, ...), in
an order that rotates from round to round (``round_order``), so a round's difference
mesh − direct compares two requests made seconds apart under nearly the same load. The
figure reported is the median of those paired differences, and beside it a
**distribution-free confidence interval for that median** (``median_interval``): the
sign-test interval, two order statistics of the sorted differences, chosen from the
binomial distribution, so it holds whatever the box's noise looks like (skewed, heavy
tailed), assuming only that the rounds are independent. ``verdict`` reads a goal off the
interval: "met" only when the whole interval is on the goal's side, "not met" only when
the whole interval is on the other, else "not resolved" (the run cannot tell).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MET, NOT_MET, NOT_RESOLVED = "met", "not met", "not resolved"


@dataclass(frozen=True)
class Interval:
    """``[low, high]`` = the ``k``-th smallest and the ``k``-th largest of ``n`` values;
    ``coverage``: the probability (exact, from Binomial(n, 1/2)) that it holds the true
    median, at least the level asked for."""

    low: float
    high: float
    coverage: float
    k: int
    n: int


def round_order(paths: Sequence[str], i: int) -> list[str]:
    """The order of round ``i`` (from 0): ``paths`` rotated by ``i``, and every other cycle
    of ``len(paths)`` rounds mirrored. Over ``2 * len(paths)`` rounds each path runs in each
    place equally often, and (for two or three paths) directly after each other path equally
    often, so neither going first nor following a given path favours one of them."""
    n = len(paths)
    if n == 0:
        return []
    s = i % n
    order = list(paths[s:]) + list(paths[:s])
    return order[::-1] if (i // n) % 2 else order


def _binom_cdf_half(k: int, n: int) -> float:
    """P(B <= k) for B ~ Binomial(n, 1/2), exactly (integers, then one division)."""
    return sum(math.comb(n, j) for j in range(k + 1)) / 2**n


def median_interval(values: Sequence[float], level: float = 0.95) -> Interval | None:
    """The sign-test confidence interval for the median of ``values``: the largest ``k``
    whose ``[x_(k), x_(n+1-k)]`` still covers the median with probability
    ``1 - 2 P(B <= k-1) >= level``. None when there are too few values for any (n <= 5
    at 95 %: even ``[min, max]`` covers it with only 1 - 2/2**n)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
    xs = sorted(values)
    n = len(xs)
    best = 0
    below = 0  # sum of C(n, j) for j < k: 2**n * P(B <= k - 1), exact integers
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1)
        if 1.0 - (2 * below) / 2**n >= level:
            best = k
        else:
            break
    if best == 0:
        return None
    coverage = 1.0 - 2.0 * _binom_cdf_half(best - 1, n)
    return Interval(xs[best - 1], xs[n - best], coverage, best, n)


def verdict(interval: Interval | None, goal: float, *, at_most: bool = True) -> str:
    """Is the goal met? ``at_most``: the goal is ``median <= goal`` (else ``>= goal``).
    "met" when the whole interval meets it, "not met" when none of it does, else (or with
    no interval) "not resolved"."""
    if interval is None:
        return NOT_RESOLVED
    lo, hi = interval.low, interval.high
    if at_most:
        return MET if hi <= goal else NOT_MET if lo > goal else NOT_RESOLVED
    return MET if lo >= goal else NOT_MET if hi < goal else NOT_RESOLVED


@dataclass(frozen=True)
class PairedSummary:
    """Median of per-round paired values, its 95 % sign-test interval, a goal's verdict."""

    median: float
    interval: Interval | None
    verdict: str
    goal: float
    at_most: bool

    def line(self, what: str, unit: str = "") -> str:
        """One printable verdict line: the goal, the verdict, the median, the interval
        and how it was made (so a reader can tell "not resolved" from "not met")."""
        fmt = "{:+.2f}" if unit == "ms" else "{:.3f}"
        u = f" {unit}" if unit else ""
        sign = "<=" if self.at_most else ">="
        if self.interval is None:
            ci = "no 95 % interval: too few rounds"
        else:
            iv = self.interval
            ci = (
                f"95 % CI [{fmt.format(iv.low)}, {fmt.format(iv.high)}]{u}, sign test: the "
                f"k-th smallest and largest of {iv.n} rounds, k = {iv.k}, coverage "
                f"{iv.coverage:.3f}"
            )
        return (
            f"verdict, {what} {sign} {fmt.format(self.goal)}{u}: {self.verdict} "
            f"(median {fmt.format(self.median)}{u}; {ci})"
        )

    def as_dict(self) -> dict[str, object]:
        iv = self.interval
        return {
            "median": self.median,
            "ci95_low": iv.low if iv else None,
            "ci95_high": iv.high if iv else None,
            "ci_method": "sign test (order statistics of the paired values)",
            "ci_coverage": iv.coverage if iv else None,
            "goal": self.goal,
            "goal_is_at_most": self.at_most,
            "verdict": self.verdict,
        }


def summarize(values: Sequence[float], goal: float, *, at_most: bool = True) -> PairedSummary:
    """Median, 95 % sign-test interval and the goal's verdict of per-round paired values."""
    if not values:
        raise ValueError("no rounds")
    iv = median_interval(values)
    return PairedSummary(
        statistics.median(values), iv, verdict(iv, goal, at_most=at_most), goal, at_most
    )
