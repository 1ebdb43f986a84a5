"""An operator's uptime is capped, not paid per node id (SQLite and PostgreSQL).

Found 2026-12-05: each node id earned the full uptime rate, and an operator holds the keys
of every node it registers (one process signing for each, or many tiny real nodes), so
uptime rewarded the number of ids, not capacity. ``Settings.reward_uptime_nodes`` (default
4) bounds an operator's credited healthy time per period, split over its nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.rewards import UPTIME_NODES
from LLM_Mesh.registry import rewards as rewards_module
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.rewards import RewardTask, _Cap
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.registry.test_rewards import (
    ORIGIN,
    PERIOD_S,
    RATE,
    Clock,
    S,
    _at,
    _beat,
    _ledger,
    _node,
    _operator,
    _rewards,
    _rows,
)

P_MS = PERIOD_S * 1000
DUE = S + PERIOD_S + 20  # when period S is due


@pytest.fixture
async def two(database_url: str) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    """Two registries' stores on one database."""
    a, b = SqlStore(database_url), SqlStore(database_url)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def _task(store: SqlStore, clock: Clock, uptime_nodes: int = UPTIME_NODES) -> RewardTask:
    return RewardTask(store, _ledger(store), rate=RATE, period_s=PERIOD_S, grace_s=10,
                      wall_clock=clock, uptime_nodes=uptime_nodes)  # fmt: skip


async def _paid(task: RewardTask) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, to, amount, _ in await _rewards(task.ledger):
        out[to] = out.get(to, 0) + amount
    return out


async def test_an_operator_with_20_node_ids_earns_no_more_uptime_than_the_cap(
    store: SqlStore,
) -> None:
    """20 node ids of one operator, each up the whole period: 4 nodes' worth (the default),
    split evenly, not 20; the single-node operator beside it is paid in full, as before;
    every row's amount is still the formula of its (credited) healthy time; the ledger
    verifies. (Before: 20 × the rate.)"""
    await _operator(store, "many")
    await _operator(store, "solo")
    for i in range(20):
        await _node(store, f"m{i:02d}", "many")
    await _node(store, "single", "solo")
    task = _task(store, Clock(DUE))
    report = await task.close_due()
    assert report is not None and (report.closed, report.paid) == (21, 21)
    paid = await _paid(task)
    assert paid[operator_account("solo")] == RATE  # one node: as before
    assert paid[operator_account("many")] == UPTIME_NODES * RATE  # before: 20 * RATE
    rows = await _rows(store.engine)
    assert rows[("single", S)]["healthy_ms"] == P_MS
    for i in range(20):
        row = rows[(f"m{i:02d}", S)]
        assert row["healthy_ms"] == UPTIME_NODES * P_MS // 20  # credited: its share
        assert row["mark_ms"] == P_MS  # its whole counter consumed, nothing carried
        assert row["amount"] == RATE * UPTIME_NODES // 20
    audited = await audit(StoreSource(task.ledger, ORIGIN))
    assert audited.ok, audited.findings


async def test_the_cap_is_the_admins_setting_and_0_turns_it_off(store: SqlStore) -> None:
    await _operator(store, "op")
    for i in range(3):
        await _node(store, f"n{i}", "op")
    one = _task(store, Clock(DUE), uptime_nodes=1)
    await one.close_due()
    third = RATE // 3  # 1 node's worth over 3 ids, each rounded down
    assert await _paid(one) == {operator_account("op"): 3 * third}
    # the next period with no cap: each id in full (the old rule)
    for i in range(3):
        await _beat(store, f"n{i}", PERIOD_S, 2 * PERIOD_S)
    off = _task(store, Clock(DUE + PERIOD_S), uptime_nodes=0)
    await off.close_due()
    assert await _paid(off) == {operator_account("op"): 3 * third + 3 * RATE}


async def test_an_operator_within_the_cap_is_paid_as_before(store: SqlStore) -> None:
    """Up to the cap's number of nodes, partly up, with a failing one: every amount is the
    uncapped formula's (a node's time in a period is at most the period)."""
    await _operator(store, "op")
    await _node(store, "full", "op")
    await _node(store, "half", "op", up_from=PERIOD_S / 2)
    capped = _task(store, Clock(DUE), uptime_nodes=2)
    await capped.close_due()
    assert await _paid(capped) == {operator_account("op"): RATE + RATE // 2}


async def test_a_later_close_of_the_period_counts_what_the_operator_was_paid_in_it(
    store: SqlStore,
) -> None:
    """The operator's nodes closed in the period by an earlier close (or another replica)
    count against its cap: a node id closed later in that period gets what is left, here
    nothing. (Without the paid rows read: one more node's worth.)"""
    await _operator(store, "op")
    for i in range(3):
        await _node(store, f"n{i}", "op")
    task = _task(store, Clock(DUE), uptime_nodes=2)
    await task.close(S)
    await _node(store, "late", "op", up_from=PERIOD_S / 2)  # counted in S, closed after
    report = await task.close(S)
    assert (report.closed, report.paid, report.closed_elsewhere) == (1, 0, 3)
    rows = await _rows(store.engine)
    assert rows[("late", S)]["healthy_ms"] == 0 and rows[("late", S)]["amount"] == 0
    assert rows[("late", S)]["mark_ms"] == P_MS // 2  # its counter consumed all the same
    assert await _paid(task) == {operator_account("op"): 3 * (2 * RATE // 3)}  # rounded down


async def test_a_row_paid_by_another_writer_after_the_read_makes_the_close_compute_again(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the close's read of the operator's paid time and its write, another writer
    pays a node of that operator in the period: the guard sees the change under the
    ledger's lock, refuses the batch, and the close computes again from the new rows, so
    the operator is not paid past its cap."""
    await _operator(store, "op")
    for i in range(3):
        await _node(store, f"n{i}", "op")
    await store.claim_node_key("other", "key-other", "op", 1, _at(0))  # closed elsewhere
    task = _task(store, Clock(DUE), uptime_nodes=2)
    capped = task._capped
    calls: list[int] = []

    async def racing(*args: Any) -> tuple[_Cap, dict[str, int]]:
        got = await capped(*args)
        if not calls:  # another replica pays "other" a full period meanwhile
            async with store.engine.begin() as conn:
                await conn.execute(tables.reward_periods.insert().values(
                    node_id="other", period_start=S, period_s=PERIOD_S, operator="x",
                    healthy_ms=P_MS, mark_ms=P_MS, performance=1000, success=1000,
                    amount=RATE, entry_seq=None, created_at=_at(PERIOD_S + 15),
                ))  # fmt: skip
        calls.append(1)
        return got

    monkeypatch.setattr(task, "_capped", racing)
    report = await task.close(S)
    assert len(calls) == 2  # computed again once
    assert (report.closed, report.paid) == (3, 3)
    # 2 nodes' worth less the 1 paid meanwhile, over 3 ids (each rounded down); before: 2 * RATE
    assert await _paid(task) == {operator_account("op"): 3 * (RATE // 3)}


async def test_two_replicas_closing_at_once_never_pay_an_operator_past_its_cap(
    two: tuple[SqlStore, SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two registries close the same period at the same moment, in overlapping batches:
    each node has one row and at most one entry, and the operator's 30 ids are paid 4
    nodes' worth at most (rounding down only)."""
    monkeypatch.setattr(rewards_module, "CHUNK", 7)
    a, b = two
    await _operator(a, "alice")
    for i in range(30):
        await _node(a, f"n{i:02d}", "alice", up_from=0 if i % 3 else 1800)
    clock = Clock(DUE)
    ta, tb = _task(a, clock), _task(b, clock)
    closes: list[Callable[[], Awaitable[object]]] = [
        ta.close_due, tb.close_due, lambda: ta.close(S), lambda: tb.close(S)
    ]  # fmt: skip
    await asyncio.gather(*(c() for c in closes))
    rows = await _rows(a.engine)
    assert sorted(rows) == [(f"n{i:02d}", S) for i in range(30)]
    got = await _rewards(ta.ledger)
    assert len({rid for *_, rid in got}) == len(got) == 30
    total = sum(amount for *_, amount, _ in got)
    assert UPTIME_NODES * RATE - 30 <= total <= UPTIME_NODES * RATE  # before: 25 * RATE
    assert sum(int(str(r["healthy_ms"])) for r in rows.values()) <= UPTIME_NODES * P_MS
    audited = await audit(StoreSource(ta.ledger, ORIGIN))
    assert audited.ok, audited.findings


async def test_the_admin_sets_an_operators_own_cap(store: SqlStore) -> None:
    """``registry operators set NAME --uptime-nodes N`` (``operators.uptime_nodes``,
    migration 0024): an operator running 6 real machines is paid for 6 while the default
    (2 here) caps the others; 0 lifts the cap for one operator; ``None`` is the default."""
    for name in ("big", "plain", "free"):
        await _operator(store, name)
        for i in range(6):
            await _node(store, f"{name}{i}", name)
    assert await store.set_operator_uptime_nodes("big", 6)
    assert await store.set_operator_uptime_nodes("free", 0)
    assert not await store.set_operator_uptime_nodes("ghost", 6)
    with pytest.raises(ValueError):
        await store.set_operator_uptime_nodes("big", -1)
    caps = {op.name: op.uptime_nodes for op in await store.list_operators()}
    assert caps == {"big": 6, "plain": None, "free": 0}
    task = _task(store, Clock(DUE), uptime_nodes=2)
    await task.close_due()
    paid = await _paid(task)
    assert paid[operator_account("big")] == 6 * RATE
    assert paid[operator_account("plain")] == 6 * (2 * RATE // 6)  # the registry's 2
    assert paid[operator_account("free")] == 6 * RATE
    assert await store.set_operator_uptime_nodes("big", None)  # back to the default
    assert {op.name: op.uptime_nodes for op in await store.list_operators()}["big"] is None


async def test_the_memory_store_keeps_an_operators_cap() -> None:
    mem = MemoryStore()
    await mem.add_operator("op", "hash", _at(0))
    assert await mem.set_operator_uptime_nodes("op", 3)
    assert [op.uptime_nodes for op in await mem.list_operators()] == [3]
    assert not await mem.set_operator_uptime_nodes("ghost", 3)
    with pytest.raises(ValueError):
        await mem.set_operator_uptime_nodes("op", -2)


def test_the_cap_is_not_negative() -> None:
    engine_store = SqlStore("sqlite://")
    with pytest.raises(ValueError):
        RewardTask(engine_store, _ledger(engine_store), rate=1, period_s=1, grace_s=0,
                   uptime_nodes=-1)  # fmt: skip
