"""How a replica reads the heartbeat rows other replicas stamped with their clocks when
its own clock is not theirs (``node_sync.py``, ``core/beat_stamp.py``): stepped back, or
running behind."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pytest

from LLM_Mesh.core.store_heard import HeardRow, HeardRows
from LLM_Mesh.registry import snapshot
from LLM_Mesh.registry.node_sync import NodeSync
from LLM_Mesh.registry.ports import NodeRecord
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import Harness, running
from tests.registry.test_node_sync import store_url
from tests.registry.test_shared_idempotency import two_replicas

__all__ = ["store_url"]  # the fixture


class _Rows:
    """A store whose heartbeat rows each poll the test gives (nothing else changes), and
    whose own clock is ``server`` seconds ahead of the real one (``None``: it has none)."""

    def __init__(self, server: float | None = None) -> None:
        self.beats: list[tuple[str, str, datetime, datetime | None]] = []
        self.server = server
        self.server_reads = 0

    async def nodes_changed_since(self, at: datetime) -> list[Any]:
        return []

    async def heartbeats_since(
        self, at: datetime, *, store_since: datetime | None = None, not_by: str | None = None
    ) -> HeardRows:
        return HeardRows([HeardRow(*b) for b in self.beats], None)  # no store stamps

    async def health_checks_since(self, at: datetime) -> list[Any]:
        return []

    async def server_now(self) -> float | None:
        self.server_reads += 1
        return None if self.server is None else time.time() + self.server


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _healthy(h: Harness, node: str) -> bool:
    return h.table.healthy(h.table.get(node))  # type: ignore[arg-type]


async def test_a_row_never_read_stamped_ahead_of_the_clock_is_not_heard_now(
    tmp_path: Path,
) -> None:
    """Found 2026-12-07 (start40): after this replica's wall clock stepped back, a row never
    read before (a node loaded at start, or first seen after the step) whose stamp was then
    in its future read once as heard now: a node that died was routed for an expiry period.
    Now such a row is aged from the newest stamp read surely (``core/beat_stamp.py``), or,
    with none yet, not taken as heard."""
    async with running(tmp_path) as h:
        await h.app.state.node_sync.stop()
        for node in ("n1", "n2", "n3"):
            await h.register(node)
        expiry = h.settings.heartbeat_expiry_s
        h.clock.advance(expiry + 1)  # none heard since
        rows, wall = _Rows(), time.time()
        sync = NodeSync(
            cast(Any, rows), h.table, h.runtime.routing, wall_clock=lambda: wall,
            monotonic=lambda: 0.0, transport=h.settings.node_transport,
        )  # fmt: skip  # (stepped back before this replica started: no step it can tell)
        ahead = wall + 3600.0  # the writers' clocks: this one stepped back an hour
        rows.beats = [("n2", "online", _at(ahead), None)]
        await sync.poll()  # never read, ahead, nothing to age it by: not heard
        assert not _healthy(h, "n2")
        rows.beats = [
            ("n1", "online", _at(ahead + 2 - expiry - 30), None),  # died before: never read
            ("n3", "online", _at(ahead + 1), None),  # heard a second before n2's beat
            ("n2", "online", _at(ahead + 2), None),  # newer than read: heard since
        ]
        await sync.poll()
        assert _healthy(h, "n2") and _healthy(h, "n3")
        assert not _healthy(h, "n1")  # before: heard now


async def test_a_row_never_read_after_the_wall_clock_stepped_back_is_not_heard_now(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-07 (sync41; start40's row left it open): right after this replica's
    wall clock stepped back an hour, a row never read before stamped within ``SKEW_S``
    ahead of it (written just before the step: an hour old) was read by its age on that
    clock, below zero: heard now. The step is told against the monotonic clock, and a row
    never read is aged on the wall clock as it would read without the step."""
    async with running(tmp_path) as h:
        await h.app.state.node_sync.stop()
        for node in ("n1", "n2", "n3"):
            await h.register(node)
        h.clock.advance(h.settings.heartbeat_expiry_s + 1)  # none heard since
        rows, wall, mono = _Rows(), [time.time()], [1000.0]
        sync = NodeSync(
            cast(Any, rows), h.table, h.runtime.routing, wall_clock=lambda: wall[0],
            monotonic=lambda: mono[0], transport=h.settings.node_transport,
        )  # fmt: skip
        before = wall[0]
        rows.beats = [("n2", "online", _at(before - 1), None)]  # clocks agree: as before
        await sync.poll()
        assert _healthy(h, "n2")
        mono[0] += 2.0
        wall[0] = before + 2.0 - 3600.0  # stepped back an hour
        rows.beats = [
            ("n1", "online", _at(wall[0] + 3), None),  # just before the step: an hour old
            ("n3", "online", _at(before + 1.5), None),  # since the step, by the writers'
        ]
        with caplog.at_level(logging.WARNING, logger="LLM_Mesh.registry.node_sync"):
            await sync.poll()
        assert not _healthy(h, "n1")  # before: heard now
        assert _healthy(h, "n3")
        assert "wall clock stepped back 3600.0 s" in caplog.text


async def test_a_replica_behind_reads_a_nodes_first_row_by_the_stores_clock(
    tmp_path: Path,
) -> None:
    """Found 2026-12-07 (sync41): a replica whose clock runs more than ``SKEW_S`` behind
    the others' read every node's first row as ``UNKNOWN`` (no anchor yet) and counted the
    node only from its second row. Its first poll now ages such rows on the store's own
    clock (PostgreSQL's), where that clock is ahead of this one; a node dead long since
    still reads as dead."""
    async with running(tmp_path) as h:
        await h.app.state.node_sync.stop()
        for node in ("n1", "n2"):
            await h.register(node)
        expiry = h.settings.heartbeat_expiry_s
        h.clock.advance(expiry + 1)  # none heard since
        rows = _Rows(server=0.0)  # the store's clock, as the writers': an hour ahead of b's
        sync = NodeSync(
            cast(Any, rows), h.table, h.runtime.routing, wall_clock=lambda: time.time() - 3600,
            transport=h.settings.node_transport,
        )  # fmt: skip
        ahead = time.time()
        rows.beats = [
            ("n1", "online", _at(ahead - expiry - 30), None),  # died before: never read
            ("n2", "online", _at(ahead - 1), None),  # heard a second ago
        ]
        await sync.poll()
        assert _healthy(h, "n2")  # before: UNKNOWN, heard only from its next row
        assert not _healthy(h, "n1")
        assert rows.server_reads == 1
        await sync.poll()  # every row read before: the store's clock is not asked again
        assert rows.server_reads == 1


async def test_a_replica_behind_hears_a_node_beating_elsewhere_from_its_first_row(
    tmp_path: Path, store_url: str | None
) -> None:
    """The same through two replicas: b's clock an hour behind a's and the store's; a's
    heartbeat row is heard at b's first read of it. On the memory store (no clock apart
    from this process's) the row stayed unread until 0033; now the store stamps it on its
    own clock and b ages it there (``test_node_sync_store_clock.py``)."""
    async with two_replicas(tmp_path, store_url) as (a, b):
        await b.app.state.node_sync.stop()
        await a.register("n1")
        await b.app.state.node_sync.poll()  # b learns n1
        b.clock.advance(b.settings.heartbeat_expiry_s + 1)  # b heard nothing since
        assert not _healthy(b, "n1")
        sync = NodeSync(
            b.store, b.table, b.runtime.routing, wall_clock=lambda: time.time() - 3600,
            replica_id=b.app.state.node_sync.replica_id, transport=b.settings.node_transport,
        )  # fmt: skip
        assert (await a.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200
        await a.runtime.heartbeats.flush()  # type: ignore[union-attr]
        await sync.poll()
        assert _healthy(b, "n1")  # before sync41 (PostgreSQL), before 0033 (memory): UNKNOWN


class _HostBehind(datetime):
    """``datetime`` whose ``now`` is this host's clock an hour behind the real one."""

    @classmethod
    def now(cls, tz: Any = None) -> _HostBehind:
        return cls.fromtimestamp(time.time() - 3600.0, tz)


@pytest.mark.postgres
async def test_a_replica_behind_does_not_load_a_node_dead_an_hour_as_heard(
    tmp_path: Path, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-07 (sync41): a replica started with its clock an hour behind the
    others' and the database server's aged the stored heartbeats on it: a node dead an
    hour, its last heartbeat 10 s behind this clock, was loaded as heard 10 s ago and
    routed for the rest of an expiry period (no poll reads that row again). The rows
    loaded are aged on the clock rows first read are (here the server's)."""
    dead = datetime.fromtimestamp(time.time() - 3600.0 - 10, timezone.utc)
    async with SqlStore(pg_database_url) as store:
        await store.upsert_node(
            NodeRecord("n1", "http://n1:8801", None, [{"id": "gemma-3-270m"}], {}, 1, 8,
                       "0.1", "online", dead, dead)
        )  # fmt: skip
    monkeypatch.setattr(snapshot, "datetime", _HostBehind)  # this host's clock as read there
    wall = lambda: time.time() - 3600.0  # noqa: E731  # ... and as the app reads it
    async with running(tmp_path, store=cast(Any, SqlStore(pg_database_url)), wall_clock=wall) as h:
        entry = h.table.get("n1")
        assert entry is not None
        assert not h.table.healthy(entry)  # before: heard 10 s ago


@pytest.mark.skipif(not hasattr(time, "CLOCK_BOOTTIME"), reason="Linux's boot-time clock")
def test_steps_are_told_against_the_clock_that_counts_a_suspended_machines_sleep() -> None:
    """``time.monotonic`` stops while a machine (a VM) is suspended and the wall clock goes
    on, so a resume read as the wall clock stepping forward, taking back a step back told
    before (review41b); on Linux node sync tells steps against ``CLOCK_BOOTTIME``."""
    import inspect

    from LLM_Mesh.registry.node_sync import STEADY

    default = inspect.signature(NodeSync).parameters["monotonic"].default
    assert default is STEADY and STEADY is not time.monotonic
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert before <= STEADY() <= time.clock_gettime(time.CLOCK_BOOTTIME)
