"""The store's own clock stepped back (a database server's clock put right by NTP, a VM
resumed, a failover to a standby whose clock is behind): every heartbeat stamped before the
step reads as stamped in the store's future. Its age was read as 0, heard now, at every
poll until the store's clock caught up again, and at every replica's start: a node that
died within the step was routed again for as long (found 2026-12-07, review42b). A stamp
ahead of the store's clock by more than ``core/store_heard.AHEAD_S`` is not told; the row
is read by its writer's wall-clock stamp (``core/beat_stamp.py``), as before 0033."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.snapshot import load_nodes
from tests.registry.helpers import make_settings, running
from tests.registry.test_node_sync_store_clock import (
    EXPIRY_S,
    HOUR,
    _beat,
    _healthy,
    _quiet,
    _replicas,
    _sync,
)


class _StepBack(MemoryStore):
    """A store whose own clock is stepped back by ``back[0]`` seconds when told."""

    def __init__(self) -> None:
        super().__init__()
        self.back = [0.0]
        self.store_clock = lambda: time.time() - self.back[0]

    async def server_now(self) -> float | None:
        return self.store_clock()


async def test_a_store_clock_stepped_back_does_not_bring_a_dead_node_back(
    tmp_path: Path,
) -> None:
    store = _StepBack()
    async with _replicas(tmp_path, None, shared=store) as (a, b):
        await a.register("n1")
        await _beat(a)
        sync = _sync(b, time.time)
        await sync.poll()
        assert _healthy(b)
        await _quiet(b)  # n1 died
        await sync.poll()
        assert not _healthy(b)
        store.back[0] = HOUR  # the store's clock steps back an hour
        for _ in range(3):
            await sync.poll()
            assert not _healthy(b)  # before: heard now at every poll


async def test_a_replica_started_after_the_store_clock_stepped_back_loads_a_dead_node_dead(
    tmp_path: Path,
) -> None:
    store = _StepBack()
    async with running(tmp_path / "a", store=store) as a:
        await a.register("n1")
    await asyncio.sleep(EXPIRY_S + 0.5)  # n1 died (a is gone too)
    store.back[0] = HOUR
    (rec,) = await store.list_nodes()
    assert rec.heard_age_s is None  # before: 0.0, heard now
    table = NodeTable(expiry_s=EXPIRY_S)  # a replica starting now, on real clocks
    assert await load_nodes(table, store, transport=make_settings(tmp_path).node_transport) == 1
    entry = table.get("n1")
    assert entry is not None and not table.healthy(entry)  # before: loaded as heard now


async def test_a_live_node_stays_routable_across_the_step(tmp_path: Path) -> None:
    store = _StepBack()
    async with _replicas(tmp_path, None, shared=store) as (a, b):
        await a.register("n1")
        await _beat(a)
        sync = _sync(b, time.time)
        await sync.poll()
        store.back[0] = HOUR
        await _beat(a)  # stamped on the stepped clock: told, aged on it
        await sync.poll()
        assert _healthy(b)
        await _quiet(b)
        await sync.poll()
        assert not _healthy(b)  # and it expires when it stops
