"""A flag found on the store's tallies at start whose quarantine fails (found 2026-12-06,
review36b). Since review36 a flag's quarantine that fails is kept and tried again at the
next run (``DepartureSync._quarantine``); but at start (``DepartureSync.open`` → ``load``)
the failure went on up: ``open`` raised before ``start``, so the registry's lifespan failed
and the registry did not start at all while the store refused that one write (a
restart loop), though the next run would have written it. Now ``load`` logs it, keeps
the flag, and the loop starts; its first run writes the quarantine."""

from __future__ import annotations

import asyncio

import pytest

from LLM_Mesh.core.canary_departures import Departures, DepartureTally
from LLM_Mesh.registry.canary_departures_sync import DepartureSync
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.test_canary_departures_store import _lie_and_honest, _noop


async def test_a_flag_at_start_whose_quarantine_fails_does_not_stop_the_start() -> None:
    lie, _ = _lie_and_honest()
    alone = Departures()
    needed = next(i for i in range(1, 100) if alone.add("n", "m", lie) is not None)
    store, da, dc = MemoryStore(), Departures(), Departures()
    sa, sc = DepartureSync(store, da, _noop), DepartureSync(store, dc, _noop)
    for _ in range(needed - 1):
        assert da.add("n", "m", lie) is None
    await sa.run_once()
    assert dc.add("n", "m", lie) is None
    await sc.run_once()  # the rows now hold a flag's evidence (C's afresh not yet written)
    quarantined: list[tuple[str, str]] = []
    refuse = [1]

    async def on_flag(node_id: str, model: str, _tally: DepartureTally) -> None:
        if refuse[0] > 0:
            refuse[0] -= 1
            raise OSError("the store is away")
        quarantined.append((node_id, model))

    sb = DepartureSync(store, Departures(), on_flag, flush_s=3600)
    try:
        await sb.open()  # before the fix: OSError, the loop never started (nor the app)
        assert sb._task is not None
        assert quarantined == [] and ("n", "m") in sb.unquarantined  # kept
        await sb.run_once()
        assert quarantined == [("n", "m")]
    finally:
        await sb.stop()


async def test_an_open_that_raises_once_its_loop_started_leaves_no_loop_running() -> None:
    """Found 2026-12-07 (start40): the app records the departures' stop only once ``open``
    returned (``app_stops.Stops``), so an ``open`` that raised after starting its loop left
    the loop running against the store the app then closed. Injected: a failure right after
    the loop's start."""
    sync = DepartureSync(MemoryStore(), Departures(), _noop, flush_s=3600)
    started: list[asyncio.Task[None]] = []

    def start_then_fail() -> None:
        DepartureSync.start(sync)
        assert sync._task is not None
        started.append(sync._task)
        raise RuntimeError("injected after the loop's start")

    sync.start = start_then_fail  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="injected"):
            await sync.open()
        assert len(started) == 1 and started[0].done() and sync._task is None
    finally:
        for task in started:
            task.cancel()
