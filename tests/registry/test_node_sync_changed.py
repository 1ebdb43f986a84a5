"""Registrations and state changes polled on the store's own clock (``node_sync.py``,
changed42): the store stamps ``nodes.changed_at`` itself (PostgreSQL's
``statement_timestamp()``; SQLite and the memory store: the process's clock) and each
poll's window on those rows counts back from the store's clock read by the poll before.
Before, every writer stamped ``changed_at`` from its own wall clock and the poll compared
it with this replica's wall clock less 5 s (found 2026-12-07, forget42): each test below
failed so."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.registry import store as sql_store
from LLM_Mesh.registry.node_sync import NodeSync
from tests.registry.helpers import Harness
from tests.registry.test_node_sync import store_url
from tests.registry.test_node_sync_store_clock import _replicas

__all__ = ["store_url"]  # the fixture

HOUR = 3600.0
OVERLAP_S = 1.0  # the polls' overlap: the tests wait past it in real time (the store's)


class _Counted:
    """The store, counting the rows each read of registrations and state changes gives."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.reads: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def nodes_changed_since(self, at: datetime) -> list[Any]:
        rows: list[Any] = await self.store.nodes_changed_since(at)
        self.reads.append([r.node_id for r in rows])
        return rows


def _sync(b: Harness, offset_s: float) -> tuple[NodeSync, _Counted]:
    """b's node sync on a wall clock ``offset_s`` off the real one, as a replica runs it."""
    counted = _Counted(b.store)
    sync = NodeSync(
        counted, b.table, b.runtime.routing, wall_clock=lambda: time.time() + offset_s,
        overlap_s=OVERLAP_S, replica_id=b.app.state.node_sync.replica_id,
        transport=b.settings.node_transport,
    )  # fmt: skip
    return sync, counted


def _online(h: Harness, node: str = "n1") -> bool:
    entry = h.table.get(node)
    return entry is not None and h.table.healthy(entry)


async def test_a_replica_an_hour_ahead_learns_a_node_registered_at_another_at_its_next_poll(
    tmp_path: Path, store_url: str | None
) -> None:
    """Before: b's window (its clock less 5 s) was past every row a stamped; b never
    learnt n1 by its poll."""
    async with _replicas(tmp_path, store_url) as (a, b):
        sync, counted = _sync(b, HOUR)
        await sync.poll()  # b polls before the node registers
        assert b.table.get("n1") is None
        await a.register("n1")
        await sync.poll()
        assert counted.reads[-1] == ["n1"]  # before: []
        assert _online(b)
        # and its goodbye at a: b hears it at its next poll
        assert (await a.client.delete("/mesh/nodes/n1")).status_code == 204
        await sync.poll()
        assert not _online(b)


async def test_a_replica_an_hour_behind_does_not_read_old_changes_at_every_poll(
    tmp_path: Path, store_url: str | None
) -> None:
    """Before: b's window reached an hour back on the others' stamps, so every poll read
    (and applied again) every row changed in the last hour."""
    async with _replicas(tmp_path, store_url) as (a, b):
        await a.register("n1")
        sync, counted = _sync(b, -HOUR)
        await sync.poll()
        assert _online(b)
        await asyncio.sleep(OVERLAP_S + 0.5)  # past the polls' overlap
        await sync.poll()  # the overlap reads it once more
        await sync.poll()
        await sync.poll()
        assert counted.reads[-2:] == [[], []]  # before: [["n1"], ["n1"]]
        await a.register("n2")  # a change now is read
        await sync.poll()
        assert counted.reads[-1] == ["n2"]
        assert _online(b, "n2")


@pytest.mark.postgres
async def test_a_writer_an_hour_ahead_stamps_changes_on_the_stores_clock(
    tmp_path: Path, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replica a's host clock runs an hour ahead: before, its registration's ``changed_at``
    was an hour in the future, read again by b's every poll for an hour; now PostgreSQL
    stamps it (``store_rewards.changed_clock``)."""

    class _Ahead(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + timedelta(seconds=HOUR)

    ahead = lambda: datetime.now(timezone.utc) + timedelta(seconds=HOUR)  # noqa: E731
    async with _replicas(tmp_path, pg_database_url) as (a, b):
        sync, counted = _sync(b, 0.0)
        await sync.poll()
        monkeypatch.setattr(sql_store, "datetime", _Ahead)  # the writing host's clock
        monkeypatch.setattr(sql_store, "host_now", ahead)
        await a.register("n1")
        await sync.poll()
        assert counted.reads[-1] == ["n1"]
        await asyncio.sleep(OVERLAP_S + 0.5)
        await sync.poll()  # the overlap reads it once more
        await sync.poll()
        assert counted.reads[-1] == []  # before: ["n1"]
