"""``llm-mesh simulate``: the fleet simulator's runs as a table fitted to the terminal.

The simulator (``LLM_Mesh.simulator.cli``) prints a plain 110-column table, a row as each
run finishes (``python -m LLM_Mesh.simulator``, the benchmarks); here the same figures are
gathered and printed once through :func:`~LLM_Mesh.cli.render.fitted_table`: a table where
it fits, one block a run on a narrower terminal (found 2026-12-04: at 80 columns the plain
table wrapped into unreadable halves). The note on the virtual clock comes first.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, RenderableType
from rich.markup import escape

from LLM_Mesh.cli.render import fitted_table
from LLM_Mesh.simulator.cli import CLOCK_NOTE, COLUMNS, cells, planned
from LLM_Mesh.simulator.scenarios import Report, run_scenario

__all__ = ["run_simulate", "simulate_table"]

LABELS = tuple(label for label, _ in COLUMNS)


def simulate_table(reports: Sequence[Report], width: int | None) -> RenderableType:
    """The runs' figures: scenario and strategy whole, the figures right-aligned."""
    rows = [[escape(c) for c in cells(r)] for r in reports]
    return fitted_table(
        LABELS, rows, keys={"scenario", "strategy"}, width=width, right=set(LABELS[2:])
    )


def run_simulate(argv: Sequence[str], console: Console) -> int:
    """Run what ``argv`` asks for (the simulator's options), then print the table; a
    status line names the run under way (``--include-slow`` runs take minutes)."""
    runs, seed = planned(argv)
    console.print(CLOCK_NOTE, markup=False, highlight=False)
    reports = []
    with console.status("") as status:
        for i, (name, strat) in enumerate(runs, 1):
            status.update(f"run {i}/{len(runs)}: {name} × {strat} (seed {seed})")
            reports.append(run_scenario(name, strat, seed))
    console.print(simulate_table(reports, console.width))
    return 0
