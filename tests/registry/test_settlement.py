"""Settlement on SQLite and PostgreSQL: reserve, answer, void, settle exactly once, recover.

Each test runs the real :class:`Settlement` on a real store (``store`` fixture: a SQLite
file, and a throwaway PostgreSQL database when one is reachable), its background loops
started but slow (the tests drive writes and settling themselves with ``flush``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.ledger_entry import MINT, NETWORK, POOL, pseudonym
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settle_ledger import settle
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import node_account, operator_account
from tests.registry.settlement_fixtures import (
    OP_A,
    OP_B,
    T0,
    USER,
    answer_of,
    grant,
    ledger_entries,
    ledger_of,
    make_settlement,
    s,
    settlement_rows,
    utc_now,
)

__all__ = ["s"]  # the fixture

DAY_S = 86_400.0


async def test_reserve_answer_settle_moves_the_exact_cost_once(
    s: Settlement, store: SqlStore
) -> None:
    await grant(store, USER, 10_000)
    seen = await s.reserve("r1", USER, "gemma-3-270m", 1000)
    assert seen.ok and (seen.balance, seen.reserved, seen.available) == (10_000, 1000, 9000)
    assert (await settlement_rows(store))[("r1", 0)]["state"] == "pending"
    assert await s.balance(USER) == (10_000, 1000)
    assert await s.answer(answer_of("r1", ("n1", OP_A, 400, 20))) is True
    row = (await settlement_rows(store))[("r1", 0)]
    assert (row["state"], row["amount"], row["fee"], row["node_id"]) == ("answered", 400, 20, "n1")
    assert await s.balance(USER) == (10_000, 400)  # reserved drops to the exact cost at once
    assert await s.settle_now() == 1
    assert await s.balance(USER) == (9_600, 0)
    assert await s.balance(OP_A) == (380, 0) and await s.balance(NETWORK) == (20, 0)
    assert (await settlement_rows(store))[("r1", 0)]["state"] == "settled"
    assert (await ledger_entries(store))[1:] == [
        ("settle", USER, OP_A, 380, "r1"), ("fee", USER, NETWORK, 20, "r1")
    ]  # fmt: skip
    # settling the same answer again (another process, a retry) pays nothing
    assert await settle(s.ledger, [answer_of("r1", ("n1", OP_A, 400, 20))], utc_now()) == 0
    assert len(await ledger_entries(store)) == 3


async def test_a_reservation_over_the_available_balance_is_refused(
    s: Settlement, store: SqlStore
) -> None:
    await grant(store, USER, 1500)
    assert (await s.reserve("r1", USER, "m", 1000)).ok
    no = await s.reserve("r2", USER, "m", 501)
    assert not no.ok and (no.balance, no.reserved, no.available) == (1500, 1000, 500)
    assert ("r2", 0) not in await settlement_rows(store)  # nothing written for a refusal
    assert (await s.reserve("r3", USER, "m", 500)).ok  # exactly what is left
    nobody = await s.reserve("r4", pseudonym("user", "broke"), "m", 1)
    assert not nobody.ok and (nobody.balance, nobody.reserved) == (0, 0)


async def test_void_releases_the_estimate_and_costs_nothing(s: Settlement, store: SqlStore) -> None:
    await grant(store, USER, 1000)
    assert (await s.reserve("r1", USER, "m", 1000)).ok
    s.void("r1", USER)
    s.void("r1", USER)  # twice: once
    await s.flush()
    assert await s.balance(USER) == (1000, 0)
    assert (await settlement_rows(store))[("r1", 0)]["state"] == "void"
    # an answer after the void is not recorded: nothing paid, counted
    assert await s.answer(answer_of("r1", ("n1", OP_A, 10, 0))) is False and s.unpaid == 1
    await s.flush()
    assert await s.balance(USER) == (1000, 0) and len(await ledger_entries(store)) == 1


async def test_a_continued_stream_pays_each_node_its_part(s: Settlement, store: SqlStore) -> None:
    await grant(store, USER, 5000)
    assert (await s.reserve("r1", USER, "m", 3000)).ok
    answer = answer_of("r1", ("n1", OP_A, 1000, 50), ("n2", OP_B, 600, 30), estimate=3000)
    assert await s.answer(answer)
    rows = await settlement_rows(store)
    assert rows[("r1", 1)]["state"] == "answered" and rows[("r1", 1)]["estimate"] == 0
    assert await s.balance(USER) == (5000, 1600)
    await s.flush()
    assert await s.balance(USER) == (3400, 0)
    assert await s.balance(OP_A) == (950, 0) and await s.balance(OP_B) == (570, 0)
    assert await s.balance(NETWORK) == (80, 0)
    assert {k: r["state"] for k, r in (await settlement_rows(store)).items()} == {
        ("r1", 0): "settled", ("r1", 1): "settled"
    }  # fmt: skip


async def test_an_unknown_operator_is_looked_up_or_paid_as_the_node(
    s: Settlement, store: SqlStore
) -> None:
    await store.add_operator("carol", "ab" * 32, utc_now())
    await store.claim_node_key("node-c", "k" * 43, "carol", 1, utc_now())
    await grant(store, USER, 5000)
    for key in ("r1", "r2"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    assert await s.answer(answer_of("r1", ("node-c", None, 100, 0)))
    assert await s.answer(answer_of("r2", ("node-x", None, 100, 0)))
    await s.flush()
    assert await s.balance(operator_account("carol")) == (100, 0)
    assert await s.balance(node_account("node-x")) == (100, 0)
    assert (await settlement_rows(store))[("r1", 0)]["operator"] == operator_account("carol")


async def test_the_pool_is_topped_up_to_its_budget_once_a_day(store: SqlStore) -> None:
    now = [T0 + 3600]
    st = make_settlement(store, pool_daily_budget=5000, wall_clock=lambda: now[0])
    await st.start()  # tops up at start
    try:
        assert await st.balance(POOL) == (5000, 0)
        assert await st.top_up_pool() is None  # same day: nothing
        assert (await st.reserve("r1", POOL, "m", 3000)).ok
        assert await st.answer(Answer("r1", POOL, "m", 3000, (PaidPart("n", OP_A, 3000, 0),)))
        await st.flush()
        assert await st.balance(POOL) == (2000, 0)
        other = make_settlement(store, pool_daily_budget=5000, wall_clock=lambda: now[0])
        assert await other.top_up_pool() is None  # another process, same day: nothing
        now[0] += DAY_S
        assert await st.top_up_pool() == 3000  # a new day: back to the budget
        assert await other.top_up_pool() is None
        assert await st.balance(POOL) == (5000, 0)
        kinds = [e for e in await ledger_entries(store) if e[2] == POOL]
        assert kinds == [
            ("pool_budget", MINT, POOL, 5000, "pool-budget-2026-12-01"),
            ("pool_budget", MINT, POOL, 3000, "pool-budget-2026-12-02"),
        ]
        now[0] += DAY_S  # a full pool is not topped up, but the day is marked
        await grant(store, POOL, 1)
        assert await st.top_up_pool() == 0
        assert await st.top_up_pool() is None
    finally:
        await st.stop()


async def test_group_commit_puts_concurrent_writes_in_few_transactions(
    s: Settlement, store: SqlStore
) -> None:
    await grant(store, USER, 1_000_000)
    calls = 0
    apply = s.db.apply

    async def counting(*a: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return await apply(*a, **kw)

    s.db.apply = counting  # type: ignore[method-assign]
    got = await asyncio.gather(*(s.reserve(f"r{i}", USER, "m", 10) for i in range(100)))
    assert all(r.ok for r in got)
    assert calls < 20, calls
    assert await s.balance(USER) == (1_000_000, 1000)


async def test_a_batch_with_one_request_settled_elsewhere_settles_the_rest_once(
    s: Settlement, store: SqlStore
) -> None:
    await grant(store, USER, 10_000)
    for key in ("r1", "r2"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    a1, a2 = answer_of("r1", ("n1", OP_A, 100, 5)), answer_of("r2", ("n1", OP_A, 200, 10))
    assert await s.answer(a1) and await s.answer(a2)
    s._answered.clear()  # settled by hand here, as another process would
    assert await settle(s.ledger, [a1], utc_now()) == 1
    assert await settle(s.ledger, [a1, a2], utc_now()) == 1  # refused as a batch, then one by one
    assert await s._settle([a1, a2]) == 0  # the settler's own path (SQLite: settle_sqlite)
    assert await s.balance(USER) == (9_700, 0)
    assert [e[4] for e in await ledger_entries(store) if e[0] == "settle"] == ["r1", "r2"]


async def test_the_settlers_batch_refused_in_part_settles_the_rest_once(
    s: Settlement, store: SqlStore
) -> None:
    """As above, through the settler's own append (on SQLite: ``settle_sqlite``)."""
    await grant(store, USER, 10_000)
    for key in ("r1", "r2", "r3"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    answers = [
        answer_of(k, ("n1", OP_A, 100 * (i + 1), 5)) for i, k in enumerate(("r1", "r2", "r3"))
    ]
    for a in answers:
        assert await s.answer(a)
    s._answered.clear()
    assert await s._settle([answers[1]]) == 1
    assert await s._settle(answers) == 2  # r2 refused the batch; r1 and r3 one at a time
    assert await s._settle(answers) == 0  # nothing twice
    assert await s.balance(USER) == (9_400, 0)
    assert sorted(e[4] for e in await ledger_entries(store) if e[0] == "settle") == [
        "r1",
        "r2",
        "r3",
    ]
    report = await audit(StoreSource(ledger_of(store), "test.local/ledger"))
    assert report.ok, report


async def test_a_failed_settling_round_keeps_its_requests_for_the_next(
    s: Settlement, store: SqlStore
) -> None:
    await grant(store, USER, 10_000)
    assert (await s.reserve("r1", USER, "m", 1000)).ok
    assert await s.answer(answer_of("r1", ("n1", OP_A, 100, 5)))

    async def down(*_a: Any, **_kw: Any) -> Any:
        raise RuntimeError("database gone")

    # the settler appends on SQLite on the hot path's connection (settle_sqlite.py), else
    # on its own thread's ledger
    if s._worker is None:
        target: Any = s.db
        name = "transact"
    else:
        target, name = s._worker.ledger, "append"
    real = getattr(target, name)
    setattr(target, name, down)
    with pytest.raises(RuntimeError):
        await s.settle_now()
    setattr(target, name, real)
    assert await s.settle_now() == 1
    assert await s.balance(USER) == (9_900, 0)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_writes_go_on_when_the_settlement_connection_is_killed(
    s: Settlement, store: SqlStore
) -> None:
    """``pg_terminate_backend`` on the dedicated connection (as the replicas' e2e test
    does): the next batch reconnects and is written, nothing is lost (issue 11)."""
    from tests.conftest import _admin_connect

    await grant(store, USER, 10_000)
    assert (await s.reserve("k1", USER, "gemma-3-270m", 1000)).ok
    for key in ("k2", "k3", "k4"):
        pid = s.db._conn.get_server_pid()  # type: ignore[attr-defined]
        admin = await _admin_connect()
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        # no wait: asyncpg has not seen the connection close when the next batch comes
        assert (await s.reserve(key, USER, "gemma-3-270m", 1000)).ok
        assert s.db._conn.get_server_pid() != pid  # type: ignore[attr-defined]
    s.void("k1", USER)
    assert await s.answer(answer_of("k2", ("n1", OP_A, 400, 20))) is True
    await s.flush()
    states = {k: r["state"] for (k, _), r in (await settlement_rows(store)).items()}
    assert states == {"k1": "void", "k2": "settled", "k3": "pending", "k4": "pending"}
    assert await s.balance(USER) == (9_600, 2000)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_upkeep_forgets_batch_ids_older_than_the_time_kept(
    s: Settlement, store: SqlStore
) -> None:
    """PostgreSQL records each hot-path batch's id (``settle_batches``, so a batch sent
    again after a lost connection is applied once); upkeep deletes those past
    ``batch_keep_s``."""
    await grant(store, USER, 10_000)
    for key in ("k1", "k2"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    async with store.engine.begin() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM settle_batches"))).scalar() == 2
        await conn.execute(
            text(
                "UPDATE settle_batches SET created_at = created_at - interval '2 hours' "
                "WHERE created_at = (SELECT min(created_at) FROM settle_batches)"
            )
        )
    await s.upkeep()
    async with store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM settle_batches"))).scalar() == 1
