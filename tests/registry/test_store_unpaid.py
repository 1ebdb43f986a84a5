"""The store's counts of requests served unpaid (``registry/store_unpaid.py``, migration
0035), on SQLite and PostgreSQL, and in memory: each value adds one to its node's row of
its day, model and reason (batches and replicas add up); a read answers the nodes asked
for, from a day on, summed over days."""

from __future__ import annotations

from datetime import date

import pytest

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_unpaid import Unpaid, UnpaidCount

WHY = "its payer's account kind 'held' is not one a receipt can name"


def u(request_id: str, node: str = "a1", day: str = "2026-12-07", model: str = "m") -> Unpaid:
    return Unpaid(request_id, node, model, WHY, day)


async def _counts_add_up(store: SqlStore | MemoryStore) -> None:
    await store.record_unpaid([u("r1"), u("r2"), u("r3", node="b1")])
    await store.record_unpaid([u("r4"), u("r5", day="2026-12-06"), u("r6", model="m2")])
    await store.record_unpaid([u("r7", day="2026-11-01"), u("r8", node="c1")])
    await store.record_unpaid([])
    got = await store.unpaid_served(["a1", "b1"], date(2026, 12, 6))
    assert got == [
        UnpaidCount("a1", "m", WHY, 4),  # 3 on the 7th, 1 on the 6th; not the 1st of November
        UnpaidCount("a1", "m2", WHY, 1),
        UnpaidCount("b1", "m", WHY, 1),
    ]
    assert await store.unpaid_served(["a1"], date(2026, 11, 1)) == [
        UnpaidCount("a1", "m", WHY, 5), UnpaidCount("a1", "m2", WHY, 1)
    ]  # fmt: skip
    assert await store.unpaid_served([], date(2026, 1, 1)) == []
    assert await store.unpaid_served(["zz"], date(2026, 1, 1)) == []


async def test_counts_add_up_per_node_day_model_and_reason(store: SqlStore) -> None:
    await _counts_add_up(store)


async def test_the_memory_store_counts_the_same() -> None:
    await _counts_add_up(MemoryStore())


async def test_a_long_reason_is_kept_to_the_column(store: SqlStore) -> None:
    long = Unpaid("r1", "a1", "m", "x" * 500, "2026-12-07")
    await store.record_unpaid([long, long])
    (got,) = await store.unpaid_served(["a1"], date(2026, 12, 7))
    assert (got.reason, got.requests) == ("x" * 200, 2)


@pytest.mark.parametrize("n", [1, 3])
async def test_two_writers_add_to_one_row(store: SqlStore, n: int) -> None:
    """Two replicas' batches of the same node, day, model and reason: one row, summed."""
    for i in range(n):
        await store.record_unpaid([u(f"r{i}")])
        await store.record_unpaid([u(f"s{i}")])
    (got,) = await store.unpaid_served(["a1"], date(2026, 12, 7))
    assert got.requests == 2 * n
