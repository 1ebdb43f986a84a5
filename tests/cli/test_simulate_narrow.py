"""``llm-mesh simulate`` at a default terminal (80 columns) and a wide one: every figure
whole, every label whole, its milliseconds named as the virtual clock's (found
2026-12-04: it printed a 110-column table that an 80-column terminal wrapped into
unreadable halves)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli.main import app
from LLM_Mesh.simulator import run_scenario
from LLM_Mesh.simulator.cli import (
    CLASS_COLUMNS,
    CLASS_NOTE,
    CLOCK_NOTE,
    COLUMNS,
    cells,
    class_cells,
)

runner = CliRunner()
ARGS = ["simulate", "--scenario", "slow-node", "--strategy", "ours", "--strategy", "random"]


def simulate(columns: int) -> str:
    out = runner.invoke(app, [*ARGS, "--seed", "2"], env={"COLUMNS": str(columns)})
    assert out.exit_code == 0, out.output
    return out.output


@pytest.fixture(scope="module")
def figures() -> list[tuple[str, ...]]:
    """What each run reports (the simulator is deterministic for a seed), but wall s."""
    return [cells(run_scenario("slow-node", s, seed=2))[:-1] for s in ("ours", "random")]


@pytest.mark.parametrize("columns", [80, 160])
def test_simulate_fits_with_figures_and_labels_whole(
    columns: int, figures: list[tuple[str, ...]]
) -> None:
    out = simulate(columns)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns, out
    words = set(re.split(r"[\s│┃]+", out))
    for row in figures:
        for figure in row:
            assert figure in words, (figure, out)
    for label, _ in COLUMNS:  # each label on one line, whole
        assert any(label in line for line in lines), (label, out)
    flat = " ".join(line.strip() for line in lines)
    assert CLOCK_NOTE in flat  # the milliseconds are the virtual clock's, not measured
    assert re.search(r"\d+\.\d\d", out)  # wall s, a figure too


def test_simulate_at_80_columns_keeps_each_runs_figures_together() -> None:
    """Narrow: a block a run (label, value lines), in run order."""
    out = simulate(80)
    strategies = re.findall(r"^strategy\s+(\S+)", out, flags=re.M)
    assert strategies == ["ours", "random"], out


def test_simulate_help_and_bad_option() -> None:
    out = runner.invoke(app, ["simulate", "--help"], env={"COLUMNS": "80"})
    assert out.exit_code == 0 and "virtual clock" in " ".join(out.output.split()), out.output
    out = runner.invoke(app, ["simulate", "--scenario", "nope"], env={"COLUMNS": "80"})
    assert out.exit_code == 2, out.output


@pytest.mark.parametrize("columns", [80, 160])
def test_simulate_per_class_table_fits_with_figures_whole(columns: int) -> None:
    """keyed-rush draws classes: a second table, per run and class, after its note."""
    args = ["simulate", "--scenario", "keyed-rush", "--strategy", "ours"]
    out = runner.invoke(app, args, env={"COLUMNS": str(columns)})
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert max(len(line) for line in lines) <= columns, out.output
    words = set(re.split(r"[\s│┃]+", out.output))
    for row in class_cells(run_scenario("keyed-rush", "ours", seed=1)):
        for figure in row:
            assert figure in words, (figure, out.output)
    for label, _ in CLASS_COLUMNS:
        assert any(label in line for line in lines), (label, out.output)
    assert CLASS_NOTE in " ".join(line.strip() for line in lines)
