"""A start that fails at a late step stops what it had started (``registry/app_stops.py``).

Found 2026-12-07 (review, session 39): the lifespan started its background loops (the request
writer, the cut receipts' writer, the health loop, the checkpointer, the pruners ...) before its
``try: yield``, so a later start step that raised (here: loading the canary's departures, the
last step on the store) left every one of them running against a closed store: tasks pending
for ever, "Task was destroyed but it is pending" at exit. Now each stop is recorded as its
start runs, and a failed start runs the stops of what it started, in the stop order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.app_stops import Stops
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.settlement import Settlement
from tests.registry.helpers import make_settings
from tests.waiting import scaled


class LateFailingStore(MemoryStore):
    """A store that fails the start's last step (the canary's departures' load)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    async def canary_departure_rows(self, pairs: Any = None) -> Any:
        raise RuntimeError("the departures' table is broken")

    async def close(self) -> None:
        self.closed = True
        await super().close()


async def test_a_failed_late_start_step_stops_every_task_it_started(tmp_path: Path) -> None:
    store = LateFailingStore()
    app = create_registry_app(make_settings(tmp_path), store=store)
    before = asyncio.all_tasks()
    lifespan = app.router.lifespan_context(app)
    with pytest.raises(RuntimeError, match="departures' table is broken"):
        await lifespan.__aenter__()
    for _ in range(5):  # the stopped loops' last turns
        await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == []  # before: the writer's, health's, the checkpointer's ... loops
    assert store.closed
    assert app.state.runtime.client is None  # the node client it made: closed, dropped


async def test_the_stops_run_in_the_stop_order_not_the_start_order() -> None:
    ran: list[str] = []

    def stop(what: str) -> Any:
        async def run() -> None:
            ran.append(what)

        return run

    stops = Stops()
    for name in ("writer", "checkpointer", "prune", "settlement"):
        stops.add(name, stop(name))
    stops.add("prune", stop("prune 2"))
    await stops.run()
    assert ran == ["prune 2", "prune", "settlement", "checkpointer", "writer"]
    await stops.run()  # each once
    assert len(ran) == 5
    with pytest.raises(ValueError, match="no stop named"):
        stops.add("the writer", stop("x"))


async def test_a_stop_that_raises_keeps_none_of_the_others_from_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("first")

    async def broken_too() -> None:
        raise RuntimeError("second")

    async def writer() -> None:
        ran.append("writer")

    stops = Stops()
    stops.add("canary", broken)
    stops.add("health", broken_too)
    stops.add("writer", writer)
    with pytest.raises(RuntimeError, match="first"):
        await stops.run()
    assert ran == ["writer"]
    assert "stopping health failed" in caplog.text  # the first raised, the later logged


def _settle_threads() -> set[threading.Thread]:
    return {
        t for t in threading.enumerate() if t.name.startswith("llm-mesh-settle") and t.is_alive()
    }


async def test_a_settlement_start_that_raises_part_way_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-07 (start40): the settlement's stop is recorded only once its start
    returned, so a start that raised after opening its connection (here: the pool's top-up)
    left the connection's thread running and the connection open (``settle_start.py``)."""

    async def top_up_fails(self: Settlement) -> None:
        raise RuntimeError("the pool's top-up failed")

    monkeypatch.setattr(Settlement, "top_up_pool", top_up_fails)
    app = create_registry_app(make_settings(tmp_path))
    settle = app.state.runtime.settlement
    assert settle is not None
    before, threads = asyncio.all_tasks(), _settle_threads()
    lifespan = app.router.lifespan_context(app)
    with pytest.raises(RuntimeError, match="top-up failed"):
        await lifespan.__aenter__()
    for _ in range(5):
        await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() - before if not t.done()] == []
    deadline = time.monotonic() + scaled(10.0)  # its connection's thread ends soon after
    while (left := _settle_threads() - threads) and time.monotonic() < deadline:
        await asyncio.to_thread(next(iter(left)).join, 0.05)  # (not joined by its close)
    assert not left, left
    assert settle._db is not None and settle._db._conn is None  # its connection closed
