"""``main(argv)``: run scenarios × strategies and print a table (``llm-mesh simulate``).

The table is printed once, a row as each run finishes. Its latencies are on the
simulator's virtual clock (simulated milliseconds, not measured ones) and the
table says so; ``wall s`` is the real time each run took.

``least-loaded`` scans every node on every decision (O(N)); on scenarios with
more than 1,000 nodes it runs only with ``--include-slow`` (it takes minutes).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from LLM_Mesh.simulator.scenarios import SCENARIOS, Report, run_scenario
from LLM_Mesh.simulator.strategies import STRATEGIES

__all__ = ["CLOCK_NOTE", "COLUMNS", "cells", "format_row", "format_table", "main", "planned"]

CLOCK_NOTE = (
    "sim p50/p99/p99.9 ms: simulated time on the virtual clock, not measured; "
    "wall s: real time of the run"
)

# (label, width in the plain-text table); the first two are left-aligned, the rest figures
COLUMNS = (
    ("scenario", 13), ("strategy", 13), ("requests", 8), ("success", 9), ("sim p50 ms", 10),
    ("sim p99 ms", 10), ("sim p99.9 ms", 12), ("fail w/ alt", 11), ("attempts", 8),
    ("wall s", 7),
)  # fmt: skip


def cells(r: Report) -> tuple[str, ...]:
    """A report's figures as text, in ``COLUMNS`` order (the plain table and
    ``llm-mesh simulate``'s fitted one print the same figures)."""
    return (
        r.scenario, r.strategy, str(r.requests), f"{r.success_rate:.4%}", f"{r.p50_ms:.0f}",
        f"{r.p99_ms:.0f}", f"{r.p999_ms:.0f}", str(r.failed_with_alternative), str(r.attempts),
        f"{r.wall_s:.2f}",
    )  # fmt: skip


def _line(values: Sequence[str]) -> str:
    return " ".join(
        f"{v:<{w}}" if i < 2 else f"{v:>{w}}"
        for i, (v, (_, w)) in enumerate(zip(values, COLUMNS, strict=True))
    )


def _header() -> str:
    return _line([label for label, _ in COLUMNS])


def format_row(r: Report) -> str:
    return _line(cells(r))


def _head() -> list[str]:
    head = _header()
    return [CLOCK_NOTE, head, "-" * len(head)]


def format_table(reports: Sequence[Report]) -> str:
    """The note on the clock, the header, one row per report."""
    return "\n".join([*_head(), *(format_row(r) for r in reports)])


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="llm-mesh simulate", description=__doc__)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--strategy", action="append", choices=sorted(STRATEGIES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--include-slow", action="store_true")
    return ap


def planned(argv: Sequence[str] | None = None) -> tuple[list[tuple[str, str]], int]:
    """The (scenario, strategy) runs the options ask for, in run order, and the seed
    (argparse exits on a bad option or ``--help``)."""
    args = _parser().parse_args(argv)
    runs = []
    for name in args.scenario or list(SCENARIOS):
        for strat in args.strategy or list(STRATEGIES):
            big = SCENARIOS[name].nodes > 1000
            if strat == "least-loaded" and big and not (args.include_slow or args.strategy):
                continue
            runs.append((name, strat))
    return runs, args.seed


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table once: the head first, then each row as its run finishes."""
    runs, seed = planned(argv)
    print("\n".join(_head()), flush=True)
    for name, strat in runs:
        print(format_row(run_scenario(name, strat, seed)), flush=True)
    return 0
