"""Settlement on SQLite and PostgreSQL: reserve, answer, void, settle exactly once, recover.

Each test runs the real :class:`Settlement` on a real store (``store`` fixture: a SQLite
file, and a throwaway PostgreSQL database when one is reachable), its background loops
started but slow (the tests drive writes and settling themselves with ``flush``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.ledger_entry import MINT, NETWORK, POOL, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settle_ledger import settle
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import node_account, operator_account

USER = pseudonym("user", "key-1")
OP_A, OP_B = operator_account("alice"), operator_account("bob")
DAY_S = 86_400.0
T0 = 1_796_083_200.0  # 2026-12-01 00:00:00 UTC


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> AsyncEngine:
        return store.engine

    return SqlLedger(engine)


def _settlement(store: SqlStore, **kw: Any) -> Settlement:
    kw.setdefault("fee_bps", 500)
    kw.setdefault("pool_daily_budget", 0)
    kw.setdefault("wall_clock", lambda: T0)
    kw.setdefault("settle_interval_s", 3600.0)
    kw.setdefault("beat_s", 3600.0)
    return Settlement(_ledger(store), **kw)


@pytest.fixture
async def s(store: SqlStore) -> AsyncIterator[Settlement]:
    st = _settlement(store)
    await st.start()
    try:
        yield st
    finally:
        await st.stop()


async def _grant(store: SqlStore, account: str, amount: int) -> None:
    await _ledger(store).append_one(Transfer("grant", MINT, account, amount))


async def _rows(store: SqlStore) -> dict[tuple[str, int], dict[str, Any]]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM settlements"))).mappings().all()
    return {(r["request_id"], int(r["part"])): dict(r) for r in rows}


async def _entries(store: SqlStore) -> list[tuple[str, str, str, int, str | None]]:
    entries, _ = await _ledger(store).entries(-1, 10_000)
    return [(e.kind, e.from_account, e.to_account, e.amount, e.request_id) for e in entries]


def _answer(key: str, *parts: tuple[str, str | None, int, int], estimate: int = 1000) -> Answer:
    return Answer(key, USER, "gemma-3-270m", estimate, tuple(PaidPart(*p) for p in parts))


async def test_reserve_answer_settle_moves_the_exact_cost_once(
    s: Settlement, store: SqlStore
) -> None:
    await _grant(store, USER, 10_000)
    seen = await s.reserve("r1", USER, "gemma-3-270m", 1000)
    assert seen.ok and (seen.balance, seen.reserved, seen.available) == (10_000, 1000, 9000)
    assert (await _rows(store))[("r1", 0)]["state"] == "pending"
    assert await s.balance(USER) == (10_000, 1000)
    assert await s.answer(_answer("r1", ("n1", OP_A, 400, 20))) is True
    row = (await _rows(store))[("r1", 0)]
    assert (row["state"], row["amount"], row["fee"], row["node_id"]) == ("answered", 400, 20, "n1")
    assert await s.balance(USER) == (10_000, 400)  # reserved drops to the exact cost at once
    assert await s.settle_now() == 1
    assert await s.balance(USER) == (9_600, 0)
    assert await s.balance(OP_A) == (380, 0) and await s.balance(NETWORK) == (20, 0)
    assert (await _rows(store))[("r1", 0)]["state"] == "settled"
    assert (await _entries(store))[1:] == [
        ("settle", USER, OP_A, 380, "r1"), ("fee", USER, NETWORK, 20, "r1")
    ]  # fmt: skip
    # settling the same answer again (another process, a retry) pays nothing
    assert await settle(s.ledger, [_answer("r1", ("n1", OP_A, 400, 20))], _now()) == 0
    assert len(await _entries(store)) == 3


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def test_a_reservation_over_the_available_balance_is_refused(
    s: Settlement, store: SqlStore
) -> None:
    await _grant(store, USER, 1500)
    assert (await s.reserve("r1", USER, "m", 1000)).ok
    no = await s.reserve("r2", USER, "m", 501)
    assert not no.ok and (no.balance, no.reserved, no.available) == (1500, 1000, 500)
    assert ("r2", 0) not in await _rows(store)  # nothing written for a refusal
    assert (await s.reserve("r3", USER, "m", 500)).ok  # exactly what is left
    nobody = await s.reserve("r4", pseudonym("user", "broke"), "m", 1)
    assert not nobody.ok and (nobody.balance, nobody.reserved) == (0, 0)


async def test_void_releases_the_estimate_and_costs_nothing(s: Settlement, store: SqlStore) -> None:
    await _grant(store, USER, 1000)
    assert (await s.reserve("r1", USER, "m", 1000)).ok
    s.void("r1", USER)
    s.void("r1", USER)  # twice: once
    await s.flush()
    assert await s.balance(USER) == (1000, 0)
    assert (await _rows(store))[("r1", 0)]["state"] == "void"
    # an answer after the void is not recorded: nothing paid, counted
    assert await s.answer(_answer("r1", ("n1", OP_A, 10, 0))) is False and s.unpaid == 1
    await s.flush()
    assert await s.balance(USER) == (1000, 0) and len(await _entries(store)) == 1


async def test_a_continued_stream_pays_each_node_its_part(s: Settlement, store: SqlStore) -> None:
    await _grant(store, USER, 5000)
    assert (await s.reserve("r1", USER, "m", 3000)).ok
    answer = _answer("r1", ("n1", OP_A, 1000, 50), ("n2", OP_B, 600, 30), estimate=3000)
    assert await s.answer(answer)
    rows = await _rows(store)
    assert rows[("r1", 1)]["state"] == "answered" and rows[("r1", 1)]["estimate"] == 0
    assert await s.balance(USER) == (5000, 1600)
    await s.flush()
    assert await s.balance(USER) == (3400, 0)
    assert await s.balance(OP_A) == (950, 0) and await s.balance(OP_B) == (570, 0)
    assert await s.balance(NETWORK) == (80, 0)
    assert {k: r["state"] for k, r in (await _rows(store)).items()} == {
        ("r1", 0): "settled", ("r1", 1): "settled"
    }  # fmt: skip


async def test_an_unknown_operator_is_looked_up_or_paid_as_the_node(
    s: Settlement, store: SqlStore
) -> None:
    await store.add_operator("carol", "ab" * 32, _now())
    await store.claim_node_key("node-c", "k" * 43, "carol", 1, _now())
    await _grant(store, USER, 5000)
    for key in ("r1", "r2"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    assert await s.answer(_answer("r1", ("node-c", None, 100, 0)))
    assert await s.answer(_answer("r2", ("node-x", None, 100, 0)))
    await s.flush()
    assert await s.balance(operator_account("carol")) == (100, 0)
    assert await s.balance(node_account("node-x")) == (100, 0)
    assert (await _rows(store))[("r1", 0)]["operator"] == operator_account("carol")


async def test_a_crashed_holder_is_recovered_answered_settled_pending_voided(
    store: SqlStore,
) -> None:
    """A gateway dies with one request answered (not yet in the ledger) and one pending:
    the next one settles the first once and voids the second."""
    await _grant(store, USER, 10_000)
    dead = _settlement(store)
    await dead.start()
    assert (await dead.reserve("answered", USER, "m", 1000)).ok
    assert (await dead.reserve("pending", USER, "m", 2000)).ok
    assert await dead.answer(_answer("answered", ("n1", OP_A, 300, 15)))
    await _crash(dead)
    assert await Settlement.balance(dead, USER) == (10_000, 2300)

    alive = _settlement(store, holder_ttl_s=3600.0)
    await alive.start()  # the dead holder beat just now: not recovered yet
    try:
        assert {r["state"] for r in (await _rows(store)).values()} == {"answered", "pending"}
        await _silence(store, dead.holder)
        assert await alive.recover() == (1, 1)
        assert await alive.recover() == (0, 0)  # once
        assert await alive.balance(USER) == (9_700, 0)
        assert await alive.balance(OP_A) == (285, 0)
        states = {k[0]: r["state"] for k, r in (await _rows(store)).items()}
        assert states == {"answered": "settled", "pending": "lapsed"}
        report = await audit(StoreSource(alive.ledger, "x"))
        assert report.ok, report.findings
    finally:
        await alive.stop()


async def test_a_holder_taken_for_dead_still_records_its_answer_once(store: SqlStore) -> None:
    """A live gateway whose heartbeat stalled is taken for dead: another process voids its
    pending row (``lapsed``, the estimate released). When it then answers, the answer is
    recorded after all (the payer still covers it) and paid exactly once."""
    await _grant(store, USER, 10_000)
    slow, other = _settlement(store), _settlement(store)
    await slow.start()
    await other.start()
    try:
        assert (await slow.reserve("r1", USER, "m", 1000)).ok
        await _silence(store, slow.holder)
        assert await other.recover() == (0, 1)
        assert (await _rows(store))[("r1", 0)]["state"] == "lapsed"
        assert await other.balance(USER) == (10_000, 0)  # released
        assert await slow.answer(_answer("r1", ("n1", OP_A, 300, 15), ("n2", OP_B, 100, 5)))
        assert slow.unpaid == 0
        assert await slow.balance(USER) == (10_000, 400)  # reserved again: the exact total
        assert await other.recover() == (0, 0)  # alive again (its beat): not recovered
        await slow.flush()
        assert await slow.answer(_answer("r1", ("n1", OP_A, 300, 15))) is False  # once
        await slow.flush()
        assert await slow.balance(USER) == (9_600, 0)
        assert await slow.balance(OP_A) == (285, 0) and await slow.balance(OP_B) == (95, 0)
        assert [e[4] for e in await _entries(store) if e[0] == "settle"] == ["r1", "r1"]
        assert (await audit(StoreSource(slow.ledger, "x"))).ok
    finally:
        await other.stop()
        await slow.stop()


async def test_a_lapsed_answer_the_payer_cannot_cover_any_more_is_unpaid(
    store: SqlStore,
) -> None:
    await _grant(store, USER, 1000)
    slow, other = _settlement(store), _settlement(store)
    await slow.start()
    await other.start()
    try:
        assert (await slow.reserve("r1", USER, "m", 1000)).ok
        await _silence(store, slow.holder)
        assert await other.recover() == (0, 1)
        assert (await other.reserve("r2", USER, "m", 800)).ok  # the released funds, spent
        assert await slow.answer(_answer("r1", ("n1", OP_A, 300, 15))) is False
        assert slow.unpaid == 1
        assert (await _rows(store))[("r1", 0)]["state"] == "lapsed"
        assert await other.balance(USER) == (1000, 800)  # r2's reservation only
    finally:
        await other.stop()
        await slow.stop()


async def crashed_on_home(store: SqlStore, home: Path) -> Settlement:
    """A settlement on ``home`` that reserved r1 and r2 for USER (1,000 each; r2 answered,
    100 to OP_A) and crashed (:func:`_crash`): its heartbeat fresh, its home lock released;
    and its successor on the same home, not started, that may take that fresh holder's
    rows (``holder_ttl_s`` 3,600 s). Once the successor recovered its predecessor, r1 is
    lapsed, r2 settled and USER's balance (9,900, 0)."""
    await _grant(store, USER, 10_000)
    first = _settlement(store, home=home)
    await first.start()
    assert (await first.reserve("r1", USER, "m", 1000)).ok
    assert (await first.reserve("r2", USER, "m", 1000)).ok
    assert await first.answer(_answer("r2", ("n1", OP_A, 100, 5)))
    await _crash(first)  # its heartbeat is fresh, but its home lock is released
    return _settlement(store, home=home, holder_ttl_s=3600.0)


async def test_a_restart_on_the_same_home_recovers_its_predecessor_at_start(
    store: SqlStore, tmp_path: Path
) -> None:
    second = await crashed_on_home(store, tmp_path)
    await second.start()
    try:
        states = {k[0]: r["state"] for k, r in (await _rows(store)).items()}
        assert states == {"r1": "lapsed", "r2": "settled"}
        assert await second.balance(USER) == (9_900, 0)
        # a third process on the same home while the second runs does not take its rows
        assert (await second.reserve("r3", USER, "m", 1000)).ok
        third = _settlement(store, home=tmp_path, holder_ttl_s=3600.0)
        await third.start()
        await third.stop()
        assert (await _rows(store))[("r3", 0)]["state"] == "pending"
    finally:
        await second.stop()
    assert (await _rows(store))[("r3", 0)]["state"] == "void"  # a clean stop voids its own


async def test_a_clean_stop_settles_what_was_answered(store: SqlStore) -> None:
    await _grant(store, USER, 10_000)
    st = _settlement(store)
    await st.start()
    assert (await st.reserve("r1", USER, "m", 1000)).ok
    assert await st.answer(_answer("r1", ("n1", OP_A, 100, 5)))
    await st.stop()
    assert (await _rows(store))[("r1", 0)]["state"] == "settled"
    with pytest.raises(RuntimeError, match="not running"):
        await st.reserve("r2", USER, "m", 1)


async def test_the_pool_is_topped_up_to_its_budget_once_a_day(store: SqlStore) -> None:
    now = [T0 + 3600]
    st = _settlement(store, pool_daily_budget=5000, wall_clock=lambda: now[0])
    await st.start()  # tops up at start
    try:
        assert await st.balance(POOL) == (5000, 0)
        assert await st.top_up_pool() is None  # same day: nothing
        assert (await st.reserve("r1", POOL, "m", 3000)).ok
        assert await st.answer(Answer("r1", POOL, "m", 3000, (PaidPart("n", OP_A, 3000, 0),)))
        await st.flush()
        assert await st.balance(POOL) == (2000, 0)
        other = _settlement(store, pool_daily_budget=5000, wall_clock=lambda: now[0])
        assert await other.top_up_pool() is None  # another process, same day: nothing
        now[0] += DAY_S
        assert await st.top_up_pool() == 3000  # a new day: back to the budget
        assert await other.top_up_pool() is None
        assert await st.balance(POOL) == (5000, 0)
        kinds = [e for e in await _entries(store) if e[2] == POOL]
        assert kinds == [
            ("pool_budget", MINT, POOL, 5000, "pool-budget-2026-12-01"),
            ("pool_budget", MINT, POOL, 3000, "pool-budget-2026-12-02"),
        ]
        now[0] += DAY_S  # a full pool is not topped up, but the day is marked
        await _grant(store, POOL, 1)
        assert await st.top_up_pool() == 0
        assert await st.top_up_pool() is None
    finally:
        await st.stop()


async def test_group_commit_puts_concurrent_writes_in_few_transactions(
    s: Settlement, store: SqlStore
) -> None:
    await _grant(store, USER, 1_000_000)
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


async def _crash(st: Settlement) -> None:
    """Stop ``st`` as a killed process would: no flush, no voids, its connection gone."""
    st._started = False
    for task in [*st._tasks, st._writer]:
        if task is not None:
            task.cancel()
    await st.db.close()
    if st._worker is not None:
        await st._worker.stop()
    if st._home_lock is not None:
        st._home_lock.release()


async def _silence(store: SqlStore, holder: str) -> None:
    """Make ``holder``'s last heartbeat two hours old."""
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE settle_holders SET beat_ms = beat_ms - 7200000 WHERE holder = :h"),
            {"h": holder},
        )


async def test_sqlite_writes_on_the_loop_and_wait_in_their_thread_when_locked(
    tmp_path: Path,
) -> None:
    """On a WAL database a batch runs on the event loop unless another connection holds
    the write lock; then it waits for it in the connection's thread (never on the loop)."""
    import sqlite3

    from LLM_Mesh.registry.settle_db import Reserve, SqliteSettleDb

    path = tmp_path / "registry.db"
    async with SqlStore(f"sqlite:///{path}"):  # migrated, WAL
        pass
    db = SqliteSettleDb(str(path))
    await db.open()
    try:
        assert db.inline
        (seen,) = await db.apply([Reserve("r1", USER, "m", 1)], "h", _now())
        assert seen is not None and not seen.ok  # type: ignore[union-attr]
        assert (db.inline_batches, db.thread_batches) == (1, 0)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(db.apply([Reserve("r2", USER, "m", 1)], "h", _now()))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # the loop runs on while the batch waits in its thread
        other.execute("COMMIT")
        other.close()
        await waiting
        assert (db.inline_batches, db.thread_batches) == (1, 1)
    finally:
        await db.close()
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).close()  # a rollback journal: commits fsync, so never inline
    db = SqliteSettleDb(str(plain))
    await db.open()
    try:
        assert not db.inline
    finally:
        await db.close()


async def test_a_batch_with_one_request_settled_elsewhere_settles_the_rest_once(
    s: Settlement, store: SqlStore
) -> None:
    await _grant(store, USER, 10_000)
    for key in ("r1", "r2"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    a1, a2 = _answer("r1", ("n1", OP_A, 100, 5)), _answer("r2", ("n1", OP_A, 200, 10))
    assert await s.answer(a1) and await s.answer(a2)
    s._answered.clear()  # settled by hand here, as another process would
    assert await settle(s.ledger, [a1], _now()) == 1
    assert await settle(s.ledger, [a1, a2], _now()) == 1  # refused as a batch, then one by one
    assert await s._settle([a1, a2]) == 0  # the settler's own path (SQLite: settle_sqlite)
    assert await s.balance(USER) == (9_700, 0)
    assert [e[4] for e in await _entries(store) if e[0] == "settle"] == ["r1", "r2"]


async def test_the_settlers_batch_refused_in_part_settles_the_rest_once(
    s: Settlement, store: SqlStore
) -> None:
    """As above, through the settler's own append (on SQLite: ``settle_sqlite``)."""
    await _grant(store, USER, 10_000)
    for key in ("r1", "r2", "r3"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    answers = [_answer(k, ("n1", OP_A, 100 * (i + 1), 5)) for i, k in enumerate(("r1", "r2", "r3"))]
    for a in answers:
        assert await s.answer(a)
    s._answered.clear()
    assert await s._settle([answers[1]]) == 1
    assert await s._settle(answers) == 2  # r2 refused the batch; r1 and r3 one at a time
    assert await s._settle(answers) == 0  # nothing twice
    assert await s.balance(USER) == (9_400, 0)
    assert sorted(e[4] for e in await _entries(store) if e[0] == "settle") == ["r1", "r2", "r3"]
    report = await audit(StoreSource(_ledger(store), "test.local/ledger"))
    assert report.ok, report


async def test_a_failed_settling_round_keeps_its_requests_for_the_next(
    s: Settlement, store: SqlStore
) -> None:
    await _grant(store, USER, 10_000)
    assert (await s.reserve("r1", USER, "m", 1000)).ok
    assert await s.answer(_answer("r1", ("n1", OP_A, 100, 5)))

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

    await _grant(store, USER, 10_000)
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
    assert await s.answer(_answer("k2", ("n1", OP_A, 400, 20))) is True
    await s.flush()
    states = {k: r["state"] for (k, _), r in (await _rows(store)).items()}
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
    await _grant(store, USER, 10_000)
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


def _sqlite_only(s: Settlement) -> None:
    if not hasattr(s.db, "try_inline"):
        pytest.skip("the loop iteration's batch is SQLite's (PostgreSQL group-commits)")


async def test_a_request_alone_writes_at_once_not_at_the_end_of_the_iteration(
    s: Settlement, store: SqlStore
) -> None:
    _sqlite_only(s)
    await _grant(store, USER, 10_000)
    for key in ("r1", "r2"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
        assert s.in_flight == {key}
        assert await s.answer(_answer(key, ("n1", OP_A, 400, 20))) is True
        assert s.in_flight == set()
    assert (s.tick_batches, s.tick_ops) == (0, 0)
    assert await s.balance(USER) == (10_000, 800)


async def test_writes_of_concurrent_requests_in_one_iteration_are_one_transaction(
    s: Settlement, store: SqlStore
) -> None:
    _sqlite_only(s)
    await _grant(store, USER, 100_000)
    assert (await s.reserve("r0", USER, "m", 1000)).ok  # alone: at once; now in flight
    transactions = 0
    transact = s.db._transact  # type: ignore[attr-defined]

    def counting(fn: Any) -> Any:
        nonlocal transactions
        transactions += 1
        return transact(fn)

    s.db._transact = counting  # type: ignore[attr-defined]
    got = await asyncio.gather(*(s.reserve(f"r{i}", USER, "m", 1000) for i in range(1, 11)))
    assert all(r.ok for r in got) and transactions == 1
    assert (s.tick_batches, s.tick_ops) == (1, 10)
    assert sorted(r.reserved for r in got) == [2000 + 1000 * i for i in range(10)]
    assert len(s.in_flight) == 11
    done = await asyncio.gather(
        *(s.answer(_answer(f"r{i}", ("n1", OP_A, 100, 5))) for i in range(11))
    )
    assert all(done) and transactions == 2 and (s.tick_batches, s.tick_ops) == (2, 21)
    assert s.in_flight == set()
    rows = await _rows(store)
    assert {rows[(f"r{i}", 0)]["state"] for i in range(11)} == {"answered"}
    assert await s.balance(USER) == (100_000, 1100)
    assert await s.settle_now() == 11
    assert await s.balance(USER) == (100_000 - 1100, 0)


async def test_the_iterations_batch_keeps_the_order_the_writes_were_made_in(
    s: Settlement, store: SqlStore
) -> None:
    """A reservation and the void of the same request in one iteration: written in that
    order (the void finds the row pending and releases it); nothing overtakes the batch."""
    _sqlite_only(s)
    await _grant(store, USER, 10_000)
    assert (await s.reserve("r0", USER, "m", 1000)).ok
    task = asyncio.create_task(s.reserve("r1", USER, "m", 1000))
    await asyncio.sleep(0)  # the reservation waits for the iteration's batch
    s.void("r1", USER)  # in the same iteration: joins the batch after it
    assert (await task).ok
    assert (s.tick_batches, s.tick_ops) == (1, 2)
    assert (await _rows(store))[("r1", 0)]["state"] == "void"
    assert await s.balance(USER) == (10_000, 1000)  # r0's estimate only


async def test_a_failed_batch_fails_each_of_its_writes(s: Settlement, store: SqlStore) -> None:
    _sqlite_only(s)
    await _grant(store, USER, 10_000)
    assert (await s.reserve("r0", USER, "m", 1000)).ok

    def broken(*_a: Any, **_kw: Any) -> Any:
        raise RuntimeError("disk on fire")

    s.db.try_inline = broken  # type: ignore[attr-defined]
    got = await asyncio.gather(
        *(s.reserve(f"r{i}", USER, "m", 10) for i in (1, 2)), return_exceptions=True
    )
    assert [str(g) for g in got] == ["disk on fire", "disk on fire"]
    assert s.in_flight == {"r0"} and s.tick_batches == 0
    assert set(await _rows(store)) == {("r0", 0)}


async def test_writes_of_the_last_iteration_before_a_stop_are_written(store: SqlStore) -> None:
    st = _settlement(store)
    await st.start()
    _sqlite_only(st)
    await _grant(store, USER, 10_000)
    assert (await st.reserve("r0", USER, "m", 1000)).ok
    assert (await st.reserve("r1", USER, "m", 1000)).ok
    task = asyncio.create_task(st.answer(_answer("r1", ("n1", OP_A, 400, 20))))
    await asyncio.sleep(0)  # the answer waits for the iteration's batch ...
    await st.stop()  # ... and the stop begins before that batch is written
    assert await task is True
    rows = await _rows(store)
    assert rows[("r1", 0)]["state"] == "settled"
    assert rows[("r0", 0)]["state"] == "void"  # a stop voids its own pending rows
    assert await st.balance(USER) == (9_600, 0)
