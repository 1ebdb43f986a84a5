"""The quiet ``nodes`` rows' cutoff (``node_retention.NodeRowPruner``, the app's
``node_row_pruner``) on the store's clock (PostgreSQL's; the memory store's own), not this
replica's wall clock (found 2026-12-07, forget42): one an hour ahead deleted the rows quiet
an hour less than ``node_keep_days``, one an hour behind kept those quiet an hour more.
Both failed before."""

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

__all__ = ["store_url"]  # the fixture

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
