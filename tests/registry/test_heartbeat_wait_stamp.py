"""A heartbeat that waited in the replica's batch queue is stamped by the store as old as
it is: the store's clock at the write less the wait (``heartbeat_writes.HeartbeatWriter``,
``touch_heartbeats(waited=)``). The store stamped its clock at the write alone: while a
batch was slow (a lock on ``nodes`` rows, a database stalling) the heartbeats queued behind
it, and once written every other replica read them as heard at the write, a node that died
in the stall routed at every replica but the one it beat at for as long as the stall (found
2026-12-07, review42b); before migration 0033 the writer's receipt stamp aged it right.
The wait counts from the heartbeat's arrival, its sequence number's batch too (found
2026-12-07, clock43: only the writer's queue was counted)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from LLM_Mesh.registry.heartbeat_writes import HeartbeatWriter
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Wall, beat, make_node, mesh, operator, register
from tests.registry.test_store_heard_rows import _node, any_store, any_url

__all__ = ["any_store", "any_url"]  # the fixtures


async def test_the_wait_a_heartbeat_tells_is_taken_off_the_stores_stamp(any_store: Any) -> None:
    store = any_store
    now = datetime.now(timezone.utc)
    assert await store.upsert_node(_node("n1", now, 0.0))
    assert await store.upsert_node(_node("n2", now, 0.0))
    items = [("n1", now, "online", 0), ("n2", now, "online", 0)]
    await store.touch_heartbeats(items, "r1", waited={"n1": 30.0})
    heard = await store.heartbeats_since(now - timedelta(seconds=5), store_since=None)
    ages = {r.node_id: r.age_s for r in heard.rows}
    assert ages["n1"] is not None and 29.0 <= ages["n1"] <= 40.0
    assert ages["n2"] is not None and ages["n2"] < 10.0  # none told: the write's own


class _Stalled(MemoryStore):
    """A store whose first heartbeat batch waits for ``go``: the batch in the database
    while the next gathers behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()
        self.batches = 0

    async def touch_heartbeats(
        self,
        items: Sequence[tuple[str, datetime, str, int]],
        heard_by: str | None = None,
        **kw: Any,
    ) -> None:
        self.batches += 1
        if self.batches == 1:
            await self.go.wait()
        await super().touch_heartbeats(items, heard_by, **kw)


async def test_a_heartbeat_queued_behind_a_stalled_batch_is_written_as_old_as_it_is() -> None:
    store = _Stalled()
    now = datetime.now(timezone.utc)
    assert await store.upsert_node(_node("n1", now, 0.0))
    assert await store.upsert_node(_node("n2", now, 0.0))
    writer = HeartbeatWriter(store, heard_by="r1")
    writer.touch("n1", now, "online")
    await asyncio.sleep(0)  # n1's batch is in the store, stalled
    writer.touch("n2", datetime.now(timezone.utc), "online")  # queued behind it
    await asyncio.sleep(1.5)  # the stall; then n2 died
    store.go.set()
    await writer.flush()
    heard = await store.heartbeats_since(now - timedelta(seconds=5), store_since=None)
    age: Mapping[str, float | None] = {r.node_id: r.age_s for r in heard.rows}
    n2 = age["n2"]
    assert n2 is not None and n2 >= 1.4  # before: about 0, heard at the write


class _Clock:
    """A fake monotonic clock (the heartbeat writer's)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class _SlowSeqs(MemoryStore):
    """A store whose batch of heartbeat sequence numbers (``SeqBatcher``) takes ``wait_s``
    on ``clock``: the heartbeat held before the writer queues it."""

    def __init__(self, clock: _Clock, wait_s: float) -> None:
        super().__init__()
        self.clock, self.wait_s = clock, wait_s

    async def advance_node_seqs(self, items: Sequence[tuple[str, int]]) -> dict[str, str]:
        self.clock.t += self.wait_s
        return await super().advance_node_seqs(items)


async def test_the_wait_for_a_heartbeats_sequence_number_is_taken_off_the_stores_stamp(
    tmp_path: Path,
) -> None:
    # found 2026-12-07 (clock43): the wait was counted from the writer's queue only, so a
    # heartbeat held 600 s before it (its sequence number's batch stalled) was stamped as
    # heard at the write: a node that died meanwhile read 600 s younger than it was
    clock = _Clock()
    store, wall = _SlowSeqs(clock, 0.0), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        writer = h.runtime.heartbeats
        assert writer is not None
        writer.clock = clock
        assert (await register(h, node)).status_code == 200
        store.wait_s = 600.0
        assert (await beat(h, node)).status_code == 200
        await writer.flush()
        rec = await store.get_node(node.node_id)
        assert rec is not None and rec.heard_age_s is not None
        assert 599.0 <= rec.heard_age_s <= 660.0  # before: about 0


async def test_a_heartbeat_tells_the_wait_from_its_arrival() -> None:
    clock, told = _Clock(), {}

    class _Told(MemoryStore):
        async def touch_heartbeats(self, items: Any, heard_by: Any = None, **kw: Any) -> None:
            told.update(kw.get("waited") or {})

    writer = HeartbeatWriter(_Told(), heard_by="r1")
    writer.clock = clock
    now = datetime.now(timezone.utc)
    writer.touch("n1", now, "online", arrived=clock() - 42.0)  # received 42 s ago
    writer.touch("n2", now, "online")  # received now
    clock.t += 3.0  # then 3 s in the queue
    await writer.flush()
    assert told == {"n1": 45.0, "n2": 3.0}
