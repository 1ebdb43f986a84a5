"""Which quiet nodes a replica forgets at start (``snapshot.load_nodes``'s ``forget_s``),
judged on the store's clock (migration 0033, ``core/store_heard.quiet_s``) where the row
has a valid stamp, the wall clock only for rows without one. Before (found 2026-12-07,
forget42), every row was aged on the starting replica's wall clock: one started with its
clock an hour ahead forgot the nodes quiet an hour less than ``forget_s``, one an hour
behind kept those quiet an hour more. The tests marked so failed before."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.registry import snapshot, tables
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.snapshot import load_nodes
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import running
from tests.registry.test_node_sync import store_url
from tests.registry.test_store import node

__all__ = ["store_url"]  # the fixture

LAB = NodeTransport(allow_plain_http=True)
HOUR = 3600.0
FORGET_S = 2 * HOUR  # over the floor (expiry + 600 s) of these tables
MARGIN_S = 600.0  # each node's quiet this far from FORGET_S, on the store's clock


@asynccontextmanager
async def _store(url: str | None) -> AsyncIterator[Any]:
    if url is None:
        yield MemoryStore()
        return
    store = SqlStore(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


async def _heard(store: Any, node_id: str, quiet_s: float) -> None:
    """``node_id``'s last heartbeat ``quiet_s`` ago, written by a replica whose clock is
    right: its wall stamp and the store's own stamp (0033) agree."""
    rec = node(node_id, registered_at=_ago(quiet_s), last_heartbeat_at=_ago(quiet_s))
    rec.heard_age_s = quiet_s
    assert await store.upsert_node(rec)
    await _changed(store, node_id, _ago(quiet_s))


async def _changed(store: Any, node_id: str, at: datetime) -> None:
    """``node_id``'s row last changed at ``at`` (its registration), not at this write: a
    poll's window (its ``changed_at``) does not read it again."""
    if isinstance(store, MemoryStore):
        store.changed_at[node_id] = at
        return
    n = tables.nodes
    async with store.engine.begin() as conn:
        await conn.execute(
            update(n).where(n.c.node_id == node_id).values(changed_at=at, tls_at=at, keeps_at=at)
        )


async def _two_nodes(store: Any) -> None:
    await _heard(store, "gone", FORGET_S + MARGIN_S)  # quiet past forget_s: forgotten
    await _heard(store, "kept", FORGET_S - MARGIN_S)  # not yet: kept


async def _loaded(store: Any, skew_s: float) -> set[str]:
    """The nodes a replica whose wall clock is ``skew_s`` off loads at start."""
    table = NodeTable(expiry_s=30.0)
    wall = datetime.now(timezone.utc) + timedelta(seconds=skew_s)
    await load_nodes(table, store, transport=LAB, forget_s=FORGET_S, wall_now=wall)
    return {e.node_id for e in table.entries()}


@pytest.mark.parametrize("skew_s", [HOUR, -HOUR, 0.0], ids=["ahead", "behind", "right"])
async def test_a_replica_off_by_an_hour_forgets_exactly_the_nodes_quiet_past_forget_s(
    store_url: str | None, skew_s: float
) -> None:
    """Failed before, ahead (``kept`` forgotten: quiet 1 h 50 min on the store's clock,
    2 h 50 min on this one) and behind (``gone`` kept: 2 h 10 min there, 1 h 10 min here)."""
    async with _store(store_url) as store:
        await _two_nodes(store)
        assert await _loaded(store, skew_s) == {"kept"}


def _wall_off(monkeypatch: pytest.MonkeyPatch, skew_s: float) -> None:
    """This process's wall clock, as ``snapshot.py`` reads it, ``skew_s`` off."""

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + timedelta(seconds=skew_s)

    monkeypatch.setattr(snapshot, "datetime", Skewed)


@pytest.mark.parametrize("skew_s", [HOUR, -HOUR], ids=["ahead", "behind"])
async def test_a_replica_started_an_hour_ahead_or_behind_forgets_by_the_stores_clock(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch, skew_s: float
) -> None:
    """The app's start (``app.py``: ``load_nodes``), its wall clock (the injected
    ``wall_clock``, and ``snapshot.py``'s own reading) an hour ahead keeps ``kept``, an
    hour behind forgets ``gone``; both failed before."""
    async with _store(store_url) as seed:
        await _two_nodes(seed)
        shared = seed if store_url is None else SqlStore(store_url)
        _wall_off(monkeypatch, skew_s)
        async with running(
            tmp_path, store=shared, node_forget_s=FORGET_S,
            wall_clock=lambda: time.time() + skew_s,
        ) as h:  # fmt: skip
            assert {e.node_id for e in h.table.entries()} == {"kept"}


async def test_a_row_without_a_valid_stamp_is_judged_by_the_wall_clock(
    store_url: str | None,
) -> None:
    """The fallback: a row with no store stamp (written before 0033), or whose stamp is of
    an earlier heartbeat (a replica of the older version wrote the last one, and only its
    wall stamp), is aged on this wall clock, as before."""
    async with _store(store_url) as store:
        rec = node("old", registered_at=_ago(FORGET_S - MARGIN_S))
        rec.last_heartbeat_at = _ago(FORGET_S - MARGIN_S)  # no heard_age_s: no stamp
        assert await store.upsert_node(rec)
        await _heard(store, "upgraded", FORGET_S + MARGIN_S)  # stamped, then beat unstamped:
        beat = _ago(60.0)
        if isinstance(store, MemoryStore):
            store.nodes["upgraded"].last_heartbeat_at = beat
        else:
            n = tables.nodes
            async with store.engine.begin() as conn:
                await conn.execute(
                    update(n).where(n.c.node_id == "upgraded").values(last_heartbeat_at=beat)
                )
        # right: both kept (the stale stamp, 2 h 10 min old, not read); an hour ahead, the
        # wall clock forgets "old" (1 h 50 min + 1 h) and still keeps "upgraded" (1 h 1 min)
        assert await _loaded(store, 0.0) == {"old", "upgraded"}
        assert await _loaded(store, HOUR) == {"upgraded"}
