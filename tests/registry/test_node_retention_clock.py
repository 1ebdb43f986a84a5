"""The quiet ``nodes`` rows' cutoff (``node_retention.NodeRowPruner``, the app's
``node_row_pruner``) on the store's clock (PostgreSQL's; the memory store's own), not this
replica's wall clock (found 2026-12-07, forget42): one an hour ahead deleted the rows quiet
an hour less than ``node_keep_days``, one an hour behind kept those quiet an hour more.
Both failed before. The rows are judged by their stamps on the same clock where they have
one (found 2026-12-07, clock43: a writer a day behind had its live node pruned)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from LLM_Mesh.registry import tables
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_retention import node_row_pruner
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import make_settings
from tests.registry.test_node_sync import store_url
from tests.registry.test_store import node
from tests.registry.test_store_heard_rows import any_url

__all__ = ["any_url", "store_url"]  # the fixtures

HOUR = 3600.0
KEEP = timedelta(days=30)


async def _quiet_since(store: Any, node_id: str, at: datetime) -> None:
    """``node_id``'s row registered, heard and changed at ``at`` (writers' clocks right)."""
    assert await store.upsert_node(node(node_id))
    if isinstance(store, MemoryStore):
        rec = store.nodes[node_id]
        rec.registered_at = rec.last_heartbeat_at = at
        store.changed_at[node_id] = at
        return
    n = tables.nodes
    async with store.engine.begin() as conn:
        await conn.execute(
            update(n)
            .where(n.c.node_id == node_id)
            .values(registered_at=at, last_heartbeat_at=at, changed_at=at)
        )


@pytest.mark.parametrize("skew_s", [HOUR, -HOUR], ids=["ahead", "behind"])
async def test_a_replica_off_by_an_hour_prunes_the_rows_quiet_past_the_keep_on_the_stores_clock(
    tmp_path: Path, store_url: str | None, skew_s: float
) -> None:
    store: Any = MemoryStore() if store_url is None else SqlStore(store_url)
    await store.open()
    try:
        now = datetime.now(timezone.utc)
        await _quiet_since(store, "kept", now - KEEP + timedelta(minutes=30))
        await _quiet_since(store, "gone", now - KEEP - timedelta(minutes=30))

        async def engine() -> Any:
            return store.engine

        pruner = node_row_pruner(make_settings(tmp_path, node_keep_days=30), store, engine)
        assert pruner is not None
        pruner._wall = lambda: time.time() + skew_s  # this replica's wall clock
        await pruner.poll()
        # before: ahead, both gone (an hour early); behind, both kept (an hour late)
        assert await store.get_node("kept") is not None
        assert await store.get_node("gone") is None
    finally:
        await store.close()


DAY = timedelta(days=1)
BEHIND = timedelta(hours=26)  # the writing replica's wall clock: a day and two hours behind


async def _set(store: Any, node_id: str, **values: Any) -> None:
    """``node_id``'s row's columns set as given, in either store."""
    if not isinstance(store, MemoryStore):
        n = tables.nodes
        async with store.engine.begin() as conn:
            await conn.execute(update(n).where(n.c.node_id == node_id).values(**values))
        return
    rec = store.nodes[node_id]
    for name, value in values.items():
        if name in ("changed_at", "heard_store_of"):
            getattr(store, name)[node_id] = value
        else:
            setattr(rec, name, value)


async def _prune(tmp_path: Path, store: Any) -> None:
    """The app's pruner, once: the shortest keep (a day past the forget bound, ~24 h 10 min)."""

    async def engine() -> Any:
        return store.engine

    settings = make_settings(tmp_path, node_keep_days=1, node_forget_s=600.0)
    pruner = node_row_pruner(settings, store, engine)
    assert pruner is not None
    await pruner.poll()


async def test_attack_a_writer_a_day_behind_does_not_get_its_live_node_pruned(
    tmp_path: Path, any_url: str | None
) -> None:
    # found 2026-12-07 (clock43): the cutoff was on the store's clock, the rows' stamps the
    # writing replica's wall clock: a replica a day behind (its nodes' clocks with it: their
    # signatures are checked against it) stamped its live nodes' heartbeats a day old, and the
    # pruner deleted their rows (their next heartbeats 404 until they registered again)
    store: Any = MemoryStore() if any_url is None else SqlStore(any_url)
    await store.open()
    try:
        now = datetime.now(timezone.utc)
        wall = now - BEHIND  # the writer's clock
        # registered three days ago, through the writer a day behind, heartbeating since
        assert await store.upsert_node(node("live"))
        await _set(store, "live", registered_at=wall - 3 * DAY, changed_at=now - 3 * DAY)
        await store.touch_heartbeats([("live", wall, "online", 0)], "r1")
        # quiet three days by the store's stamp (the same writer): it goes
        assert await store.upsert_node(node("quiet"))
        await store.touch_heartbeats([("quiet", wall - 3 * DAY, "online", 0)], "r1")
        await _set(store, "quiet", registered_at=wall - 4 * DAY, changed_at=now - 4 * DAY,
                   heard_store_at=now - 3 * DAY)  # fmt: skip
        # rows without a valid stamp (before 0033; a heartbeat by a replica of the older
        # version since its stamp): judged by their wall stamps, as before
        for node_id, heard in (("old", now - 3 * DAY), ("older_version", now)):
            assert await store.upsert_node(node(node_id))
            await store.touch_heartbeats([(node_id, now - 3 * DAY, "online", 0)], "r1")
            await _set(store, node_id, registered_at=now - 4 * DAY, changed_at=now - 4 * DAY,
                       heard_store_at=now - 3 * DAY, last_heartbeat_at=heard)  # fmt: skip
        await _set(store, "old", heard_store_at=None, heard_store_of=None)
        await _prune(tmp_path, store)
        assert await store.get_node("live") is not None  # before: deleted
        assert await store.get_node("quiet") is None
        assert await store.get_node("old") is None
        assert await store.get_node("older_version") is not None
    finally:
        await store.close()
