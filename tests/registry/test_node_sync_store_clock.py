"""Heartbeats aged on the store's own clock (migration 0033, ``core/store_heard.py``,
``node_sync.py``): a node heartbeating at replica A is routable at B exactly while it beats
and expires when it stops, whatever A's or B's wall clock does. Before, B aged the rows on
its own wall clock against A's stamps, and the step-telling machinery
(``core/beat_stamp.py``, now the fallback for rows with no store stamp) left holes (found
2026-12-07, sync42): each test below failed so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.registry import api
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_sync import NodeSync
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import FakeNodes, Harness, running
from tests.registry.test_node_sync import store_url

__all__ = ["store_url"]  # the fixture

HOUR = 3600.0
# b's heartbeat expiry: the tests wait it out in real time (the store's); 3 s, so a loaded
# box's pause between a beat and the poll that reads it stays well inside it
EXPIRY_S = 3.0


@asynccontextmanager
async def _replicas(
    tmp_path: Path, url: str | None, shared: MemoryStore | None = None
) -> AsyncIterator[tuple[Harness, Harness]]:
    """Replicas a and b on one store (``url``: PostgreSQL; else one memory store), b's own
    node sync stopped: each test polls b with the wall clock it gives."""
    nodes, key = FakeNodes(), Ed25519PrivateKey.generate()
    memory = shared or MemoryStore()
    a_store: Any = SqlStore(url) if url else memory
    b_store: Any = SqlStore(url) if url else memory
    async with (
        running(tmp_path / "a", store=a_store, nodes=nodes, gateway_key=key) as a,
        running(
            tmp_path / "b", store=b_store, nodes=nodes, gateway_key=key,
            heartbeat_interval_s=EXPIRY_S / 2, missed_heartbeats=2,
        ) as b,
    ):  # fmt: skip
        await a.app.state.node_sync.stop()
        await b.app.state.node_sync.stop()
        yield a, b


def _sync(
    b: Harness, wall: Callable[[], float], mono: Callable[[], float] = time.monotonic
) -> NodeSync:
    """b's node sync on the wall clock ``wall``, as a replica runs it: rows aged by their
    age (no ``clock_at``, the harness's map of real times onto its manual clock)."""
    return NodeSync(
        b.store, b.table, b.runtime.routing, wall_clock=wall, monotonic=mono,
        replica_id=b.app.state.node_sync.replica_id, transport=b.settings.node_transport,
    )  # fmt: skip


async def _quiet(b: Harness) -> None:
    """Longer than b's heartbeat expiry passes, on the store's clock (the real one: this
    process's, or PostgreSQL's on this host) and on b's table clock alike."""
    await asyncio.sleep(EXPIRY_S + 0.5)
    b.clock.advance(EXPIRY_S + 0.5)


async def _beat(a: Harness, node: str = "n1") -> None:
    assert (await a.client.post(f"/mesh/nodes/{node}/heartbeat", json={})).status_code == 200
    await a.runtime.heartbeats.flush()  # type: ignore[union-attr]


def _healthy(h: Harness, node: str = "n1") -> bool:
    entry = h.table.get(node)
    return entry is not None and h.table.healthy(entry)


async def _routable_while_it_beats(a: Harness, b: Harness, sync: NodeSync) -> None:
    """n1, heartbeating at a, is routable at b while it beats, and only then."""
    await _beat(a)
    await sync.poll()
    assert _healthy(b)  # before: not heard (out of the window, or aged on the wrong clock)
    assert b.settings.heartbeat_expiry_s == EXPIRY_S
    await _quiet(b)  # it stopped beating
    await sync.poll()
    await sync.poll()  # the rows read again (the window's overlap) do not bring it back
    assert not _healthy(b)
    await _beat(a)  # it beats again
    await sync.poll()
    assert _healthy(b)


async def test_a_writer_an_hour_behind_is_heard_while_its_node_beats(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica a's wall clock runs an hour behind: its stamps were an hour old on b's
    clock, outside b's window; b never routed a's node."""
    behind = lambda: datetime.now(timezone.utc) - timedelta(seconds=HOUR)  # noqa: E731
    monkeypatch.setattr(api, "_utcnow", behind)  # a's registration and heartbeats (b's poll
    async with _replicas(tmp_path, store_url) as (a, b):  # reads its own wall clock)
        await a.register("n1")
        sync = _sync(b, time.time)
        await sync.poll()
        assert _healthy(b)  # before: its registration read as an hour old
        await _routable_while_it_beats(a, b, sync)


async def test_a_reader_stepped_forward_an_hour_still_hears_a_node_beating(
    tmp_path: Path, store_url: str | None
) -> None:
    """b's wall clock steps forward an hour: its window (its clock less 5 s) passed every
    row the others stamped; the node it knew expired at b while it beat at a."""
    async with _replicas(tmp_path, store_url) as (a, b):
        await a.register("n1")
        wall = [time.time()]
        sync = _sync(b, lambda: wall[0])
        await sync.poll()
        assert _healthy(b)
        wall[0] += HOUR
        await sync.poll()
        await _routable_while_it_beats(a, b, sync)


async def test_a_reader_put_right_after_running_an_hour_ahead_hears_a_node_at_once(
    tmp_path: Path, store_url: str | None
) -> None:
    """b started with its wall clock an hour ahead, then NTP stepped it back to the right
    time: told as a step back, every row b read for the first time was aged on the clock
    before the step, an hour too old, until b restarted (a node new to b was not routed
    until its second heartbeat there)."""
    async with _replicas(tmp_path, store_url) as (a, b):
        wall, mono = [time.time() + HOUR], [1000.0]
        sync = _sync(b, lambda: wall[0], lambda: mono[0])
        await sync.poll()
        wall[0], mono[0] = time.time(), mono[0] + 1.0  # put right
        await sync.poll()
        await a.register("n1")
        await _beat(a)
        await sync.poll()
        assert _healthy(b)  # before: both rows read as an hour old
        await _routable_while_it_beats(a, b, sync)


async def test_a_reader_stepped_back_in_small_steps_hears_a_node_at_once(
    tmp_path: Path, store_url: str | None
) -> None:
    """b's wall clock steps back 4 s at a time (each below the 5 s a step is told by),
    ten times: 40 s behind, uncounted; a new node's rows, 40 s in b's future, were
    ``UNKNOWN`` at their first read, the node not routed until its next heartbeat."""
    async with _replicas(tmp_path, store_url) as (a, b):
        wall, mono = [time.time()], [1000.0]
        sync = _sync(b, lambda: wall[0], lambda: mono[0])
        for _ in range(10):
            await sync.poll()
            wall[0], mono[0] = wall[0] - 4.0, mono[0] + 0.1
        await a.register("n1")
        await _beat(a)
        await sync.poll()
        assert _healthy(b)  # before: not heard
        await _routable_while_it_beats(a, b, sync)


async def test_a_reader_stepped_back_before_it_started_hears_a_node_at_once(
    tmp_path: Path, store_url: str | None
) -> None:
    """b's wall clock stepped back an hour before b started (no step to tell against its
    monotonic clock): only the store's clock, where it had one apart from this host's
    (PostgreSQL), caught it; on one host (the memory store, SQLite) the rows were
    ``UNKNOWN``, the node routed from its second row."""
    async with _replicas(tmp_path, store_url) as (a, b):
        sync = _sync(b, lambda: time.time() - HOUR)
        await a.register("n1")
        await _beat(a)
        await sync.poll()
        assert _healthy(b)  # before (memory): not heard
        await _routable_while_it_beats(a, b, sync)


class _StoreAhead(MemoryStore):
    """A store whose own clock runs an hour ahead of every replica's (a database server's
    clock set wrong), as its stamps and its ``server_now`` tell it."""

    def __init__(self) -> None:
        super().__init__()
        self.store_clock = lambda: time.time() + HOUR

    async def server_now(self) -> float | None:
        return self.store_clock()


async def test_a_store_clock_ahead_of_every_replica_does_not_age_the_rows(
    tmp_path: Path,
) -> None:
    """The store's clock was trusted where ahead of this replica's: every row first read
    was aged on it, an hour too old; a node new to b was routed from its second row. Now
    the store's clock measures its own stamps' ages only: off by an hour, off alike."""
    async with _replicas(tmp_path, None, shared=_StoreAhead()) as (a, b):
        sync = _sync(b, time.time)
        await sync.poll()
        await a.register("n1")
        await _beat(a)
        await sync.poll()
        assert _healthy(b)  # before: aged on the store's clock, an hour old
        await _routable_while_it_beats(a, b, sync)


async def test_a_replica_started_an_hour_ahead_loads_a_node_heard_a_moment_ago(
    tmp_path: Path,
) -> None:
    """A replica started with its wall clock an hour ahead loaded the stored nodes aged on
    it (``snapshot.load_nodes``): a node heard a moment ago, an hour old, left out of
    routing until its next heartbeat row. Rows are loaded aged on the store's clock."""
    shared = MemoryStore()
    async with running(tmp_path / "a", store=shared) as a:
        await a.register("n1")
        ahead = lambda: time.time() + HOUR  # noqa: E731
        async with running(tmp_path / "b", store=shared, wall_clock=ahead) as b:
            assert _healthy(b)  # before: loaded as heard an hour ago
