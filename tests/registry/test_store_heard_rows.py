"""The store stamps every heartbeat on its own clock and reads it back aged on that clock
in the same statement (migration 0033, ``core/store_heard.py``): the SQL store (SQLite,
PostgreSQL) and the memory store alike."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from LLM_Mesh.registry import tables
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import NodeRecord
from LLM_Mesh.registry.store import SqlStore
from tests.registry.conftest import DIALECTS

HOUR = timedelta(hours=1)


def _node(node_id: str, at: datetime, age: float | None) -> NodeRecord:
    return NodeRecord(
        node_id, f"http://{node_id}.example:8801", None, [{"id": "gemma-3-270m"}], {}, 1, 8,
        "0.1", "online", at, at, heard_age_s=age,
    )  # fmt: skip


@pytest.fixture(params=["memory", *DIALECTS])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None: the memory store; else a database's URL (as ``conftest.database_url``)."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url = request.getfixturevalue("pg_database_url")
    assert isinstance(url, str)
    return url


@pytest.fixture
async def any_store(any_url: str | None) -> AsyncIterator[Any]:
    if any_url is None:
        yield MemoryStore()
        return
    async with SqlStore(any_url) as store:
        yield store


async def test_heartbeats_are_stamped_and_aged_on_the_stores_clock(any_store: Any) -> None:
    """Whatever the writer's wall clock said (an hour behind here), the row's age is the
    store's: a moment; a window on the store's clock finds it, one on the writer's does
    only by its stamp."""
    store = any_store
    behind = datetime.now(timezone.utc) - HOUR
    before = datetime.now(timezone.utc) - timedelta(seconds=5)  # (the SQL server's clock)
    assert await store.upsert_node(_node("n1", behind, 0.0))
    assert await store.upsert_node(_node("n2", behind, None))  # no age told: not stamped
    assert await store.touch_heartbeat("n1", behind, "online")
    await store.touch_heartbeats([("n1", behind + timedelta(seconds=1), "online", 0)], "r1")
    heard = await store.heartbeats_since(datetime.now(timezone.utc), store_since=before)
    assert heard.store_now is not None
    assert [r.node_id for r in heard.rows] == ["n1"]  # n2: by neither window
    row = heard.rows[0]
    assert row.at == behind + timedelta(seconds=1) and row.store_at is not None
    assert row.age_s is not None and 0.0 <= row.age_s < 5.0  # not an hour
    assert (await store.heartbeats_since(behind)).rows  # the writer's window: by its stamp
    by_id = {r.node_id: r for r in await store.list_nodes()}
    assert by_id["n1"].heard_age_s is not None and by_id["n1"].heard_age_s < 5.0
    assert by_id["n2"].heard_age_s is None and by_id["n2"].heard_store_at is None
    changed = await store.nodes_changed_since(before)
    assert {r.node_id: r.heard_age_s is not None for r in changed} == {"n1": True, "n2": False}


async def test_a_registration_tells_how_old_its_heartbeat_is(any_store: Any) -> None:
    """A record written with ``heard_age_s`` is stamped that long before the store's now."""
    assert await any_store.upsert_node(_node("n1", datetime.now(timezone.utc), 30.0))
    (rec,) = await any_store.list_nodes()
    assert rec.heard_age_s is not None and 30.0 <= rec.heard_age_s < 35.0


async def test_a_heartbeat_an_older_replica_wrote_leaves_the_stamp_untold(
    database_url: str,
) -> None:
    """A replica of the previous version (0032) writes ``last_heartbeat_at`` only: the
    stamp left in the row belongs to an older heartbeat, and is not told (the row read by
    its wall-clock stamp, as before 0033)."""
    async with SqlStore(database_url) as store:
        now = datetime.now(timezone.utc)
        assert await store.upsert_node(_node("n1", now, 0.0))
        assert await store.touch_heartbeat("n1", now, "online")
        later = now + timedelta(seconds=10)
        async with store.engine.begin() as conn:  # the older replica's UPDATE
            n = tables.nodes
            await conn.execute(update(n).where(n.c.node_id == "n1").values(last_heartbeat_at=later))
        heard = await store.heartbeats_since(now)
        assert [(r.at, r.store_at, r.age_s) for r in heard.rows] == [(later, None, None)]
        (rec,) = await store.list_nodes()
        assert rec.heard_store_at is None and rec.heard_age_s is None


def test_the_memory_stores_clock_is_this_processs() -> None:
    assert abs(MemoryStore().store_clock() - time.time()) < 1.0


async def test_the_memory_store_leaves_a_stamp_untold_as_sql_does() -> None:
    """A ``last_heartbeat_at`` set without the store's stamp (a test's, as an older
    replica's ``UPDATE`` in SQL) leaves the stamp untold: the row read by its wall clock."""
    store = MemoryStore()
    now = datetime.now(timezone.utc)
    assert await store.upsert_node(_node("n1", now, 0.0))
    store.nodes["n1"].last_heartbeat_at = now - HOUR
    heard = await store.heartbeats_since(now - HOUR)
    assert [(r.store_at, r.age_s) for r in heard.rows] == [(None, None)]
    (rec,) = await store.list_nodes()
    assert rec.heard_store_at is None and rec.heard_age_s is None
