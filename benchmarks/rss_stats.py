"""Pure arithmetic of ``bench_rss.py``: RSS at marks, the growth slope, the table.

No I/O here (tested in ``tests/benchmarks/test_rss_stats.py``); the benchmark samples,
this module summarizes. A sample is ``(t_s, rss_mb)``: seconds since the load started
and the process's resident set size in MB (10^6 bytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Sample = tuple[float, float]
MARKS_MIN = (1, 5, 10, 20, 30)


def slope_mb_per_10min(samples: Sequence[Sample]) -> float:
    """Least-squares slope of RSS over time, in MB per 10 minutes; NaN under 2 distinct times."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mt = sum(t for t, _ in samples) / n
    my = sum(y for _, y in samples) / n
    sxx = sum((t - mt) ** 2 for t, _ in samples)
    if sxx == 0:
        return float("nan")
    sxy = sum((t - mt) * (y - my) for t, y in samples)
    return sxy / sxx * 600.0


def at_mark(samples: Sequence[Sample], t_s: float, tolerance_s: float) -> float | None:
    """RSS of the sample nearest ``t_s``, when one lies within ``tolerance_s`` of it."""
    if not samples:
        return None
    t, y = min(samples, key=lambda s: abs(s[0] - t_s))
    return y if abs(t - t_s) <= tolerance_s else None


def settle_s(duration_s: float, settle_min: float = 5.0) -> float:
    """Where the flatness window starts: after ``settle_min`` minutes, or half the run
    when the run is not longer than that (a short smoke run)."""
    return settle_min * 60.0 if duration_s > settle_min * 60.0 else duration_s / 2.0


def summarize(
    samples: Sequence[Sample],
    duration_s: float,
    interval_s: float,
    marks_min: Sequence[float] = MARKS_MIN,
    settle_min: float = 5.0,
) -> dict[str, Any]:
    """RSS at each mark (``None`` past the run's end), first, last, max, and the slope of
    the samples from :func:`settle_s` on (MB per 10 min)."""
    start = settle_s(duration_s, settle_min)
    tail = [s for s in samples if s[0] >= start]
    return {
        "at_min": {
            f"{m:g}": at_mark(samples, m * 60.0, interval_s / 2.0 + 1e-9) for m in marks_min
        },
        "first_mb": samples[0][1] if samples else None,
        "last_mb": samples[-1][1] if samples else None,
        "max_mb": max((y for _, y in samples), default=None),
        "slope_from_s": start,
        "slope_mb_per_10min": slope_mb_per_10min(tail),
        "n_samples": len(samples),
    }


def _mb(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def table(rows: dict[str, dict[str, Any]], marks_min: Sequence[float] = MARKS_MIN) -> list[str]:
    """Lines of a fixed-width table: one row per target, its :func:`summarize` plus
    ``requests``, ``errors`` and ``rps`` (achieved requests/s)."""
    head = (
        f"{'target':<8} "
        + " ".join(f"{f'{m:g} min':>7}" for m in marks_min)
        + f" {'max':>7} {'slope*':>8} {'requests':>9} {'errors':>6} {'req/s':>6}"
    )
    lines = [head]
    for name, r in rows.items():
        slope = r["slope_mb_per_10min"]
        lines.append(
            f"{name:<8} "
            + " ".join(f"{_mb(r['at_min'].get(f'{m:g}')):>7}" for m in marks_min)
            + f" {_mb(r['max_mb']):>7} "
            + (f"{'-':>8}" if math.isnan(slope) else f"{slope:>+8.2f}")
            + f" {r['requests']:>9} {r['errors']:>6} {r['rps']:>6.1f}"
        )
    return lines
