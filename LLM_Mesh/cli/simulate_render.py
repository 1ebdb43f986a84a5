"""``llm-mesh simulate``: the fleet simulator's runs as a table fitted to the terminal.

The simulator (``LLM_Mesh.simulator.cli``) prints a plain 110-column table, a row as each
run finishes (``python -m LLM_Mesh.simulator``, the benchmarks); here the same figures are
gathered and printed once through :func:`~LLM_Mesh.cli.render.fitted_table`: a table where
it fits, one block a run on a narrower terminal (found 2026-12-04: at 80 columns the plain
table wrapped into unreadable halves). The note on the virtual clock comes first; where
the runs drew classes (keyed, anonymous), a second table of their figures per class
follows, fitted the same way, after its own note.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, RenderableType
from rich.markup import escape

from LLM_Mesh.cli.render import fitted_table
from LLM_Mesh.simulator.cli import (
    CLASS_COLUMNS,
    CLASS_NOTE,
    CLOCK_NOTE,
    COLUMNS,
    cells,
    class_cells,
    planned,
)
from LLM_Mesh.simulator.scenarios import Report

__all__ = ["class_table", "run_simulate", "simulate_table"]

LABELS = tuple(label for label, _ in COLUMNS)
CLASS_LABELS = tuple(label for label, _ in CLASS_COLUMNS)


def simulate_table(reports: Sequence[Report], width: int | None) -> RenderableType:
    """The runs' figures: scenario and strategy whole, the figures right-aligned."""
    rows = [[escape(c) for c in cells(r)] for r in reports]
    return fitted_table(
        LABELS, rows, keys={"scenario", "strategy"}, width=width, right=set(LABELS[2:])
    )


def class_table(reports: Sequence[Report], width: int | None) -> RenderableType | None:
    """The runs' figures per class (``None`` where no run drew classes)."""
    rows = [[escape(c) for c in row] for r in reports for row in class_cells(r)]
    if not rows:
        return None
    return fitted_table(
        CLASS_LABELS, rows, keys={"scenario", "strategy", "class"}, width=width,
        right=set(CLASS_LABELS[3:]),
    )  # fmt: skip


def run_simulate(argv: Sequence[str], console: Console) -> int:
    """Run what ``argv`` asks for (the simulator's options), then print the table; a
    status line names the run under way (``--include-slow`` runs take minutes)."""
    plan = planned(argv)
    runs = plan.runs
    console.print(CLOCK_NOTE, markup=False, highlight=False)
    reports = []
    with console.status("") as status:
        for i, (name, strat) in enumerate(runs, 1):
            status.update(f"run {i}/{len(runs)}: {name} × {strat} (seed {plan.seed})")
            reports.append(plan.run(name, strat))
    console.print(simulate_table(reports, console.width))
    per_class = class_table(reports, console.width)
    if per_class is not None:
        console.print(CLASS_NOTE, markup=False, highlight=False)
        console.print(per_class)
    return 0
