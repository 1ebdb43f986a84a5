"""Every ``RoundLog`` a running replica holds is on its ``/metrics``. What is watched is
declared: each part that owns loops names their logs (``failed_rounds.HasRoundLogs``,
``round_logs()``) and ``LoopMetrics.watch`` takes those only (loops42; before, alarm42's
reflection found them, a part's attributes and one level below, and the settlement
writer's, out of its reach, was never counted: found 2026-12-07, review42b). The walk below
reaches every object the app holds, not only what the parts declare, so a loop a part
leaves out of its declaration (or a part the app never gives the metrics) fails here."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.settlement import Settlement
from tests.registry.helpers import Harness, running
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


def _app_logs(h: Harness) -> list[RoundLog]:
    return list(_held(h.runtime)) + list(_held(h.app.state._state))


def _unwatched(logs: Iterable[RoundLog]) -> list[str]:
    return sorted({log.label for log in logs if log.watch is None})


async def test_every_loop_a_replica_runs_is_on_its_metrics(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        assert h.runtime.settlement is not None
        held = _app_logs(h)
        labels = {log.label for log in held}
        assert {"settlement_writer", "settlement_settling"} <= labels  # the walk reaches them
        assert _unwatched(held) == []  # review42b, before: ['settlement_writer']
        s = await scrape(h)
        assert labels <= s.label_values(FAILED, "loop")
        # the settlement's rounds declared, so shown at 0 before they fail (loops42; before,
        # each made at its first failed round, and shown only from then)
        rounds = {"settlement_settling", "settlement_syncing", "settlement_upkeep"}
        assert all(s.value(FAILED, loop=name) == 0 for name in rounds)


async def test_a_loop_left_out_of_its_parts_declaration_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: the settlement declaring its rounds but not its writer
    (as review42b found it), the writer's log is held and unwatched, and not on /metrics."""
    declared = Settlement.round_logs

    def without_writer(self: Settlement) -> list[RoundLog]:
        return [log for log in declared(self) if log.label != "settlement_writer"]

    monkeypatch.setattr(Settlement, "round_logs", without_writer)
    async with running(tmp_path) as h:
        assert _unwatched(_app_logs(h)) == ["settlement_writer"]
        assert "settlement_writer" not in (await scrape(h)).label_values(FAILED, "loop")
