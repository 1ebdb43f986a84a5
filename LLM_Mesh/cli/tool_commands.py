"""``llm-mesh simulate`` and ``llm-mesh migrate``: tools that run on this machine alone
(the fleet simulator; model files found and removed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from LLM_Mesh.cli.deferred import fail
from LLM_Mesh.cli.options import console
from LLM_Mesh.errors import MeshError

__all__ = ["SIMULATE_CONTEXT", "migrate", "simulate"]

#: ``simulate`` passes its arguments on to the simulator as they are
SIMULATE_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def simulate(ctx: typer.Context) -> None:
    """Fleet simulator: the real routing code vs simple strategies on a virtual clock.

    Options: --scenario slow-node|mixed-speeds|mass-kill|keyed-rush (repeatable),
    --strategy random|round-robin|least-loaded|ours (repeatable), --seed N, --include-slow,
    --keyed-share 0..1 (requests with an API key), --anonymous-share 0..1 (slots
    anonymous requests may hold; default 0.75), --keyed-wait S (keyed requests wait at the
    gateway for a slot; default 0). Prints one table once every run ends
    ("sim ... ms": virtual-clock time, not measured), a block a run where the terminal is
    too narrow for it; with classes (keyed-rush, --keyed-share) a table per class too.
    """
    from LLM_Mesh.cli.simulate_render import run_simulate

    raise typer.Exit(run_simulate(list(ctx.args), console))


def migrate(
    path: Annotated[Path, typer.Argument(help="Tree to clean [.]")] = Path("."),
    apply: Annotated[bool, typer.Option("--apply", help="Remove the model files found")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Check that none remain")] = False,
) -> None:
    """Find local model files (by their GGUF/GGML magic, not their name); --apply removes them."""
    from LLM_Mesh import migrate as mig

    try:
        if verify:
            res = mig.verify(path)
            for line in mig.render_verify(res):
                console.print(line, markup=False, highlight=False)
            raise typer.Exit(0 if res.ok else 1)
        plan = mig.scan(path)
        lines = mig.render_apply(plan, mig.apply(plan)) if apply else mig.render_plan(plan)
        for line in lines:
            console.print(line, markup=False, highlight=False)
    except MeshError as exc:
        raise fail(exc) from exc
