"""The store's recurring reads over a long history take a key or index range on SQLite,
not every settled row (``settle_scans.py``), and still give the same answers.

Found 2026-12-05: a registry's SQLite store has no planner statistics, and SQLite read
every settled row by ``ix_settlements_state`` for the retention's delete (each hourly
statement, even with nothing due: ``ix_settlements_done`` was never used) and for
``node_totals``; every settled row for ``earnings``; every row a holder ever wrote
(``ix_settlements_holder``) to void its pending ones or find its answered ones (recovery);
the whole ``reward_periods`` table for ``node_totals``, every period of the account for
``earnings``; and every ledger entry of the account for the earnings' balance. Recovery's
index is gone since (migration 0022); its reads are checked with it built again too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.earnings import earnings, node_totals
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.retention import prune_settlements
from LLM_Mesh.registry.settle_ledger import answered_rows, void_pending
from LLM_Mesh.registry.settle_scans import DONE
from LLM_Mesh.registry.store import SqlStore

T = datetime(2026, 12, 5, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def _row(i: int, state: str, at: datetime, holder: str = "h1") -> dict[str, Any]:
    return {
        "request_id": f"c-{i:024x}~r.chat", "part": 0, "payer": "pool", "node_id": f"n{i % 2}",
        "operator": f"operator:{i % 2}", "model": "m", "estimate": 5, "amount": 5, "fee": 1,
        "state": state, "created_at": at, "updated_at": at, "holder": holder,
    }  # fmt: skip


def _period(node: str, day: int) -> dict[str, Any]:
    start = int((T - day * DAY).timestamp())
    return {
        "node_id": node, "period_start": start, "period_s": 3600, "operator": f"operator:{node[1:]}",
        "healthy_ms": 1000, "mark_ms": 0, "performance": 1000, "success": 1000, "amount": 7,
        "created_at": T,
    }  # fmt: skip


async def _fill(engine: AsyncEngine) -> None:
    rows = [_row(i, "settled" if i % 5 else "void", T - (i % 40) * DAY) for i in range(200)]
    rows += [_row(500, "pending", T, "h2"), _row(501, "pending", T, "h1"), _row(502, "answered", T)]
    async with engine.begin() as conn:
        await conn.execute(insert(tables.settlements), rows)
        await conn.execute(insert(tables.reward_periods), [_period("n0", d) for d in range(40)])

    async def _engine() -> AsyncEngine:
        return engine

    await SqlLedger(_engine).append([Transfer("grant", MINT, "operator:0", 42)])


async def test_the_recurring_reads_take_ranges_and_give_the_same_answers(
    database_url: str,
) -> None:
    async with SqlStore(database_url):  # the store's schema, migrated to head
        pass
    engine = create_async_engine(normalize_database_url(database_url))
    sent: dict[str, list[tuple[str, Any]]] = {}
    now = T.timestamp()

    async def run(name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        seen: list[tuple[str, Any]] = []

        def _seen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
            seen.append((sql, params))

        event.listen(engine.sync_engine, "before_cursor_execute", _seen)
        try:
            return await call()
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", _seen)
            sent[name] = [(sql, p) for sql, p in seen if "ledger_secrets" not in sql]

    try:
        await _fill(engine)
        mine = await run(
            "earnings",
            lambda: earnings(engine, operator="o", account="operator:0", nodes=["n0"], now=now),
        )
        # days 0..29 of the even rows (operator:0) that are settled (i % 5 != 0)
        want = sum(1 for i in range(0, 200, 2) if i % 5 and i % 40 < 30)
        assert mine.totals.requests == want and mine.totals.earned == 4 * want
        assert mine.totals.rewards == 7 * 30 and mine.balance == 42
        totals = await run("node_totals", lambda: node_totals(engine, days=30, now=now))
        assert totals["n0"]["requests"] == want and totals["n0"]["rewards"] == 7 * 30
        assert totals["n1"]["requests"] == sum(1 for i in range(1, 200, 2) if i % 5 and i % 40 < 30)
        answered = await run("answered_rows", lambda: answered_rows(engine, ["h1"]))
        assert [a.key for a in answered] == [f"c-{502:024x}~r.chat"]
        assert await answered_rows(engine, [None]) == []
        voided = await run("void_pending", lambda: void_pending(engine, "h2", T))
        assert voided == 1
        cut = T - 35 * DAY  # rows of days 36..39 (settled or void) are due: 4 of each 40
        due = await run("prune", lambda: prune_settlements(engine, cut, 1000))
        assert due == 4 * 5
        async with engine.connect() as conn:
            left = (await conn.execute(select(tables.settlements.c.state))).scalars().all()
        assert len(left) == 203 - 20 and left.count("pending") == 1  # h1's: not h2's
        assert await prune_settlements(engine, cut, 1000) == 0
    finally:
        await engine.dispose()
    # the balance is the account's row, never a sum over its ledger entries
    assert not [sql for sql, _ in sent["earnings"] if "ledger_entries" in sql]
    if not database_url.startswith("sqlite:///"):
        return  # PostgreSQL's planner has statistics
    db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    try:
        index_where = db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_settlements_done'"
        ).fetchone()[0]
        assert index_where.endswith(f"WHERE {DONE}")  # the term the reads carry, word for word
        plans = {
            name: [r[-1] for sql, p in stmts for r in db.execute("EXPLAIN QUERY PLAN " + sql, p)]
            for name, stmts in sent.items()
        }
        db.execute("CREATE INDEX ix_again_holder ON settlements (holder)")  # 0022 undone
        for name in ("void_pending", "answered_rows"):  # still the in-flight rows
            sql, p = sent[name][0]
            again = [r[-1] for r in db.execute("EXPLAIN QUERY PLAN " + sql, p)]
            assert again[0] == "SEARCH settlements USING INDEX ix_settlements_state (state=?)"
    finally:
        db.close()
    for name, plan in plans.items():
        for step in plan:  # no read of every settled row, nor of a holder's whole history
            in_flight = name in ("void_pending", "answered_rows")  # the state index's few
            assert "ix_settlements_state (state=?)" not in step or in_flight, (name, plan)
            assert "ix_settlements_holder" not in step, (name, plan)
            assert not step.startswith("SCAN "), (name, plan)
    assert "SEARCH settlements USING INDEX ix_settlements_done (updated_at>?)" in plans["earnings"]
    assert (
        "SEARCH settlements USING INDEX ix_settlements_done (updated_at>?)" in plans["node_totals"]
    )
    assert (
        "SEARCH reward_periods USING INDEX ix_reward_periods_period_start (period_start>?)"
        in plans["node_totals"]
    )
    assert (
        plans["void_pending"][0] == "SEARCH settlements USING INDEX ix_settlements_state (state=?)"
    )
    assert plans["prune"] == [
        "SEARCH settlements USING INDEX sqlite_autoindex_settlements_1 (request_id=? AND part=?)",
        "LIST SUBQUERY 1",
        "SEARCH settlements USING INDEX ix_settlements_done (updated_at<?)",
    ]


def test_the_done_term_is_the_index_s_where() -> None:
    """:data:`DONE` is ``ix_settlements_done``'s ``WHERE`` in ``tables.py`` (both dialects)."""
    index = next(i for i in tables.settlements.indexes if i.name == "ix_settlements_done")
    for dialect in ("sqlite", "postgresql"):
        where = index.dialect_options[dialect]["where"]
        assert str(where) == str(text(DONE)) == DONE


async def test_the_cut_receipts_prune_takes_the_created_at_range(store: SqlStore) -> None:
    """The hourly ``prune_cut_receipts`` (``retention.CutReceiptPruner``) finds its rows by
    ``ix_cut_receipts_created_at`` (0032), not by reading every receipt: before that index
    each statement scanned the table, with nothing due too. PostgreSQL's planner has
    statistics and prefers a scan on a small table: its plan is asked with scans priced out,
    which no plan takes when no index serves the range."""
    from tests.registry.test_store_cut_receipts import made

    await store.record_cut_receipts([made(f"req-{i}") for i in range(5)])
    sent: list[tuple[str, Any]] = []

    def _seen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        sent.append((sql, params))

    engine = store.engine
    event.listen(engine.sync_engine, "before_cursor_execute", _seen)
    try:
        assert await store.prune_cut_receipts(T, 1000) == 5  # made in 2023: all due
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", _seen)
    [(sql, params)] = [(s, p) for s, p in sent if s.lstrip().upper().startswith("DELETE")]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            raw = await conn.get_raw_connection()
            rows = await raw.driver_connection.fetch("EXPLAIN " + sql, *params)  # type: ignore[union-attr]
            plan = [str(r[0]) for r in rows]
            assert any("ix_cut_receipts_created_at" in step for step in plan), plan
            assert not any("Seq Scan on cut_receipts" in step for step in plan), plan
            return
        plan = [
            str(r[-1])
            for r in (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, tuple(params)))
        ]
    assert plan == [
        "SEARCH cut_receipts USING INDEX sqlite_autoindex_cut_receipts_1 (receipt_hash=?)",
        "LIST SUBQUERY 1",
        "SEARCH cut_receipts USING INDEX ix_cut_receipts_created_at (created_at<?)",
    ], plan
