"""``main(argv)``: run scenarios × strategies and print a table (``llm-mesh simulate``).

The table is printed once, a row as each run finishes. Its latencies are on the
simulator's virtual clock (simulated milliseconds, not measured ones) and the
table says so; ``wall s`` is the real time each run took.

With classes (a scenario's ``keyed_share``, ``keyed-rush``'s, or ``--keyed-share``)
a second table follows: per run and class (keyed, anonymous), the requests, those
completed and refused, and latency p50/p95/p99 and the wait's p95 (arrival to the
slot that served it), all on the virtual clock. ``--anonymous-share`` sets the share
of the slots the gateway lets anonymous requests hold (default
``LLM_MESH_ANONYMOUS_SHARE``'s 0.75; 1 keeps none). ``--keyed-wait S`` has keyed
requests opt into the gateway's wait for a slot (``mesh_wait_s``; default 0: none, as
the gateway's); the table per class then counts those that waited at the gateway and
their wait's p50/p95 (``sim gw p50/p95 ms``; ``-`` where none waited), on the virtual
clock too.

``least-loaded`` scans every node on every decision (O(N)); on scenarios with
more than 1,000 nodes it runs only with ``--include-slow`` (it takes minutes).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NamedTuple

from LLM_Mesh.simulator.scenarios import (
    MAX_WAIT_S,
    SCENARIOS,
    ClassReport,
    Report,
    run_scenario,
)
from LLM_Mesh.simulator.strategies import STRATEGIES

__all__ = [
    "CLASS_COLUMNS",
    "CLASS_NOTE",
    "CLOCK_NOTE",
    "COLUMNS",
    "Plan",
    "cells",
    "class_cells",
    "format_class_table",
    "format_row",
    "format_table",
    "main",
    "planned",
]

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


CLASS_NOTE = (
    "per class (keyed: with an API key; anonymous: without): sim ms are simulated time "
    "on the virtual clock, not measured; sim wait: arrival to the slot that served it; "
    "refused: over the anonymous share, no free node, or every node's 429; waited: "
    "requests that waited at the gateway for a slot (--keyed-wait), sim gw p50/p95 ms: how long "
    "they waited there (served or not)"
)

CLASS_COLUMNS = (
    ("scenario", 13), ("strategy", 13), ("class", 9), ("requests", 8), ("completed", 9),
    ("refused", 7), ("sim p50 ms", 10), ("sim p95 ms", 10), ("sim p99 ms", 10),
    ("sim wait p95 ms", 15), ("waited", 6), ("sim gw p50/p95 ms", 17),
)  # fmt: skip


def cells(r: Report) -> tuple[str, ...]:
    """A report's figures as text, in ``COLUMNS`` order (the plain table and
    ``llm-mesh simulate``'s fitted one print the same figures)."""
    return (
        r.scenario, r.strategy, str(r.requests), f"{r.success_rate:.4%}", f"{r.p50_ms:.0f}",
        f"{r.p99_ms:.0f}", f"{r.p999_ms:.0f}", str(r.failed_with_alternative), str(r.attempts),
        f"{r.wall_s:.2f}",
    )  # fmt: skip


def class_cells(r: Report) -> list[tuple[str, ...]]:
    """A report's figures per class, in ``CLASS_COLUMNS`` order (none without classes)."""
    return [_class_row(r, name, c) for name, c in r.classes.items()]


def _class_row(r: Report, name: str, c: ClassReport) -> tuple[str, ...]:
    return (
        r.scenario, r.strategy, name, str(c.requests), str(c.completed), str(c.refused),
        f"{c.p50_ms:.0f}", f"{c.p95_ms:.0f}", f"{c.p99_ms:.0f}", f"{c.wait_p95_ms:.0f}",
        str(c.waited), _gate(c),
    )  # fmt: skip


def _gate(c: ClassReport) -> str:
    """The gateway wait's p50/p95 (``-``: none waited)."""
    return f"{c.gate_wait_p50_ms:.0f}/{c.gate_wait_p95_ms:.0f}" if c.waited else "-"


def _line(
    values: Sequence[str], columns: Sequence[tuple[str, int]] = COLUMNS, left: int = 2
) -> str:
    return " ".join(
        f"{v:<{w}}" if i < left else f"{v:>{w}}"
        for i, (v, (_, w)) in enumerate(zip(values, columns, strict=True))
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


def format_class_table(reports: Sequence[Report]) -> str:
    """The note on the classes, the header, one row per report and class ("" where no
    report has classes)."""
    rows = [_line(c, CLASS_COLUMNS, 3) for r in reports for c in class_cells(r)]
    if not rows:
        return ""
    head = _line([label for label, _ in CLASS_COLUMNS], CLASS_COLUMNS, 3)
    return "\n".join([CLASS_NOTE, head, "-" * len(head), *rows])


def _share(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # NaN fails both
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {raw!r}")
    return value


def _wait(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= MAX_WAIT_S:  # NaN fails both
        raise argparse.ArgumentTypeError(f"must be seconds from 0 to {MAX_WAIT_S:g}, got {raw!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="llm-mesh simulate", description=__doc__)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--strategy", action="append", choices=sorted(STRATEGIES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--include-slow", action="store_true")
    ap.add_argument("--keyed-share", type=_share, metavar="0..1",
                    help="share of requests with an API key (per-class table)")  # fmt: skip
    ap.add_argument("--anonymous-share", type=_share, metavar="0..1",
                    help="slots anonymous requests may hold (default 0.75; 1: all)")  # fmt: skip
    ap.add_argument("--keyed-wait", type=_wait, default=0.0, metavar="S",
                    help="seconds keyed requests wait at the gateway for a slot (default 0)")  # fmt: skip
    return ap


class Plan(NamedTuple):
    """What the options ask for: the (scenario, strategy) runs in run order, the seed, the
    class options (``None``: the scenario's own)."""

    runs: list[tuple[str, str]]
    seed: int
    keyed_share: float | None
    anonymous_share: float | None
    keyed_wait_s: float = 0.0

    def run(self, name: str, strategy: str) -> Report:
        return run_scenario(
            name, strategy, self.seed, keyed_share=self.keyed_share,
            anonymous_share=self.anonymous_share, keyed_wait_s=self.keyed_wait_s,
        )  # fmt: skip


def planned(argv: Sequence[str] | None = None) -> Plan:
    """The :class:`Plan` of the options (argparse exits on a bad option or ``--help``)."""
    args = _parser().parse_args(argv)
    runs = []
    for name in args.scenario or list(SCENARIOS):
        for strat in args.strategy or list(STRATEGIES):
            big = SCENARIOS[name].nodes > 1000
            if strat == "least-loaded" and big and not (args.include_slow or args.strategy):
                continue
            runs.append((name, strat))
    return Plan(runs, args.seed, args.keyed_share, args.anonymous_share, args.keyed_wait)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table once: the head first, then each row as its run finishes; then the
    table per class, where the runs drew classes."""
    plan = planned(argv)
    print("\n".join(_head()), flush=True)
    reports = []
    for name, strat in plan.runs:
        reports.append(plan.run(name, strat))
        print(format_row(reports[-1]), flush=True)
    per_class = format_class_table(reports)
    if per_class:
        print(per_class, flush=True)
    return 0
