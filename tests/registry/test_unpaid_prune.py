"""The counts of requests served unpaid (``unpaid_served``, migration 0035) pruned as the
other logs are (found 2026-12-07, hygiene44: never pruned, a row per node, day, model and
reason for ever): ``prune_unpaid`` on SQLite, PostgreSQL and the memory store deletes the
rows of UTC days wholly before the cutoff, a bounded batch a call; ``UnpaidPruner`` runs it
hourly from ``unpaid_cutoff`` (never within the earnings window)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from LLM_Mesh.core.retention import DAY_S, EARNINGS_MAX_DAYS
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.retention import UnpaidPruner
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_unpaid import Unpaid, UnpaidCount
from LLM_Mesh.registry.unpaid import UnpaidStore

WHY = "a charge of node x had no payable part of the receipt"
EVER = date(2000, 1, 1)
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def _rows(days: list[str]) -> list[Unpaid]:
    """Two rows a day (two models), so a batch's limit cuts inside a day's rows."""
    return [Unpaid(f"r{i}{m}", "a", m, WHY, d) for i, d in enumerate(days) for m in ("m1", "m2")]


async def _kept_days(store: UnpaidStore) -> list[str]:
    """The days of the rows left (sorted, one a day)."""
    if isinstance(store, SqlStore):
        async with store.engine.connect() as conn:
            found = await conn.execute(text("SELECT DISTINCT day FROM unpaid_served"))
            return sorted(str(r[0]) for r in found)
    assert isinstance(store, MemoryStore)
    return sorted({day for _, day, _, _ in store.unpaid})


async def _pruned_a_bounded_batch_a_call(store: UnpaidStore) -> None:
    await store.record_unpaid(
        _rows(["2026-03-01", "2026-03-08", "2026-03-09", "2026-03-10", "2026-03-11"])
    )
    before = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)  # 03-10 not over: kept
    assert await store.prune_unpaid(before, 4) == 4  # a bounded batch (two days' rows)
    assert await store.prune_unpaid(before, 4) == 2
    assert await store.prune_unpaid(before, 4) == 0
    assert await _kept_days(store) == ["2026-03-10", "2026-03-11"]
    assert await store.unpaid_served(["a"], EVER) == [
        UnpaidCount("a", "m1", WHY, 2),
        UnpaidCount("a", "m2", WHY, 2),
    ]
    # a cutoff given in another zone is its UTC day's: 2026-03-11T02:00+05:00 is 03-10 21:00
    east = datetime(2026, 3, 11, 2, 0, tzinfo=timezone(timedelta(hours=5)))
    assert await store.prune_unpaid(east, 10) == 0  # 03-10 is not over in UTC
    assert await store.prune_unpaid(east + timedelta(hours=3), 10) == 2  # it is now
    assert await _kept_days(store) == ["2026-03-11"]
    with pytest.raises(ValueError):
        await store.prune_unpaid(before.replace(tzinfo=None), 4)
    with pytest.raises(ValueError):
        await store.prune_unpaid(before, 0)


async def test_the_sql_store_prunes_the_days_before_the_cutoff_bounded(store: SqlStore) -> None:
    """Before: no ``prune_unpaid`` (an ``AttributeError``), the rows kept for ever."""
    await _pruned_a_bounded_batch_a_call(store)


async def test_the_memory_store_prunes_as_the_sql_store() -> None:
    await _pruned_a_bounded_batch_a_call(MemoryStore())


async def _no_sleep(_s: float) -> None:
    return None


def _day(days_ago: int) -> str:
    return datetime.fromtimestamp(NOW - days_ago * DAY_S, timezone.utc).date().isoformat()


async def test_the_pruner_keeps_keep_days_and_never_the_earnings_window() -> None:
    """``keep_days`` days back, but never fewer than the longest earnings window + 1 (an
    operator's ``GET /v1/earnings?days=366`` still finds every day it asks for)."""
    store = MemoryStore()
    window = EARNINGS_MAX_DAYS
    await store.record_unpaid(_rows([_day(0), _day(window - 1), _day(window + 2), _day(500)]))
    p = UnpaidPruner(store, keep_days=7, batch=1, wall_clock=lambda: NOW, sleep=_no_sleep)
    assert await p.poll() == 4  # 500 and 368 days ago: gone, one row a statement
    assert sorted({k[1] for k in store.unpaid}) == [_day(window - 1), _day(0)]
    late = UnpaidPruner(store, keep_days=400, wall_clock=lambda: NOW + 400 * DAY_S)
    assert await late.poll() == 2  # 400 days on: the day then 765 days back
    assert await UnpaidPruner(store, keep_days=1, wall_clock=lambda: NOW).poll() == 0
    assert len(store.unpaid) == 2
