"""``main(argv)``: run scenarios × strategies and print a table (``llm-mesh simulate``).

``least-loaded`` scans every node on every decision (O(N)); on scenarios with
more than 1,000 nodes it runs only with ``--include-slow`` (it takes minutes).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from LLM_Mesh.simulator.scenarios import SCENARIOS, Report, run_scenario
from LLM_Mesh.simulator.strategies import STRATEGIES

__all__ = ["format_table", "main"]


def format_table(reports: Sequence[Report]) -> str:
    head = (
        f"{'scenario':<13} {'strategy':<13} {'requests':>8} {'success':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'p99.9 ms':>9} {'fail w/ alt':>11} {'attempts':>8} {'wall s':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(
            f"{r.scenario:<13} {r.strategy:<13} {r.requests:>8} {r.success_rate:>9.4%} "
            f"{r.p50_ms:>8.0f} {r.p99_ms:>8.0f} {r.p999_ms:>9.0f} "
            f"{r.failed_with_alternative:>11} {r.attempts:>8} {r.wall_s:>7.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="llm-mesh simulate", description=__doc__)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--strategy", action="append", choices=sorted(STRATEGIES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--include-slow", action="store_true")
    args = ap.parse_args(argv)
    reports: list[Report] = []
    for name in args.scenario or list(SCENARIOS):
        for strat in args.strategy or list(STRATEGIES):
            big = SCENARIOS[name].nodes > 1000
            if strat == "least-loaded" and big and not (args.include_slow or args.strategy):
                continue
            reports.append(run_scenario(name, strat, args.seed))
            print(format_table(reports[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_table(reports))
    return 0
