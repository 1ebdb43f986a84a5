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

__all__ = ["CLOCK_NOTE", "format_row", "format_table", "main"]

CLOCK_NOTE = (
    "sim p50/p99/p99.9 ms: simulated time on the virtual clock, not measured; "
    "wall s: real time of the run"
)


def _header() -> str:
    return (
        f"{'scenario':<13} {'strategy':<13} {'requests':>8} {'success':>9} {'sim p50 ms':>10} "
        f"{'sim p99 ms':>10} {'sim p99.9 ms':>12} {'fail w/ alt':>11} {'attempts':>8} "
        f"{'wall s':>7}"
    )


def format_row(r: Report) -> str:
    return (
        f"{r.scenario:<13} {r.strategy:<13} {r.requests:>8} {r.success_rate:>9.4%} "
        f"{r.p50_ms:>10.0f} {r.p99_ms:>10.0f} {r.p999_ms:>12.0f} "
        f"{r.failed_with_alternative:>11} {r.attempts:>8} {r.wall_s:>7.2f}"
    )


def _head() -> list[str]:
    head = _header()
    return [CLOCK_NOTE, head, "-" * len(head)]


def format_table(reports: Sequence[Report]) -> str:
    """The note on the clock, the header, one row per report."""
    return "\n".join([*_head(), *(format_row(r) for r in reports)])


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table once: the head first, then each row as its run finishes."""
    ap = argparse.ArgumentParser(prog="llm-mesh simulate", description=__doc__)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--strategy", action="append", choices=sorted(STRATEGIES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--include-slow", action="store_true")
    args = ap.parse_args(argv)
    print("\n".join(_head()), flush=True)
    for name in args.scenario or list(SCENARIOS):
        for strat in args.strategy or list(STRATEGIES):
            big = SCENARIOS[name].nodes > 1000
            if strat == "least-loaded" and big and not (args.include_slow or args.strategy):
                continue
            print(format_row(run_scenario(name, strat, args.seed)), flush=True)
    return 0
