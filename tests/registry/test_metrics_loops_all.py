"""Every ``RoundLog`` a running replica holds is on its ``/metrics`` (alarm42's
``LoopMetrics.watch`` finds them by reflection, a part's attributes and one level below;
``failed_rounds.LoopWatch``). The settlement writer's (newuser42, merged after alarm42) was
not: its failed batches logged, escalated, and never counted (found 2026-12-07, review42b).
The walk below reaches every object the app holds, not only what ``round_logs`` looks at,
so a loop added later out of its reach fails here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from LLM_Mesh.registry.failed_rounds import RoundLog
from tests.registry.helpers import running
from tests.registry.test_metrics import scrape

FAILED = "llm_mesh_gateway_loop_failed_rounds_total"


def _held(root: object, depth: int = 8) -> Iterator[RoundLog]:
    """Every ``RoundLog`` reachable from ``root`` through the mesh's own objects
    (attributes, and the lists, dicts, sets and tuples they hold)."""
    seen: set[int] = set()
    todo: list[tuple[Any, int]] = [(root, 0)]
    while todo:
        obj, d = todo.pop()
        if id(obj) in seen or d > depth:
            continue
        seen.add(id(obj))
        if isinstance(obj, RoundLog):
            yield obj
            continue
        if isinstance(obj, dict):
            todo += [(v, d + 1) for v in obj.values()]
        elif isinstance(obj, list | tuple | set | frozenset):
            todo += [(v, d + 1) for v in obj]
        elif type(obj).__module__.startswith("LLM_Mesh.") and hasattr(obj, "__dict__"):
            todo += [(v, d + 1) for v in vars(obj).values()]


async def test_every_loop_a_replica_runs_is_on_its_metrics(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        assert h.runtime.settlement is not None
        held = list(_held(h.runtime)) + list(_held(h.app.state._state))
        labels = {log.label for log in held}
        assert "settlement_writer" in labels  # the walk reaches it
        unwatched = sorted({log.label for log in held if log.watch is None})
        assert unwatched == []  # before: ['settlement_writer']
        s = await scrape(h)
        assert labels <= s.label_values(FAILED, "loop")
