"""The settler's SQLite append (``registry/settle_sqlite.py``) writes what ``SqlLedger`` would.

Two SQLite stores get the same reservations and answers; one is settled by
``settle_ledger.settle`` (SQLAlchemy, ``SqlLedger.append`` with its guard), the other by
``append_settled`` on settlement's own ``sqlite3`` connection, at the same time. Every
ledger table, the balances and the settlement rows must come out byte for byte the same,
and ``ledger verify``'s audit must pass on the result.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import Answer, PaidPart, Reserve, SqliteSettleDb, sqlite_time
from LLM_Mesh.registry.settle_ledger import settle
from LLM_Mesh.registry.settle_sqlite import Refused, append_settled
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account

T = 1_796_083_200.5  # the wall clock both appends see
NOW = datetime.fromtimestamp(T, timezone.utc)
USERS = [pseudonym("user", f"k{i}") for i in range(3)]
OPS = [operator_account(n) for n in ("alice", "bob")]
TABLES = ("ledger_entries", "ledger_nodes", "ledger_head", "balances", "settlements")


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> AsyncEngine:
        return store.engine

    return SqlLedger(engine, wall_clock=lambda: T)


def _answers() -> list[Answer]:
    out = []
    for i in range(7):  # 7 requests, 10 parts, 20 entries: several Merkle levels
        parts = [PaidPart("n-a", OPS[0], 100 + i, 5)]
        if i % 3 == 0:  # a continued stream: a second node's part
            parts.append(PaidPart("n-b", OPS[1], 40, 2))
        out.append(Answer(f"r{i}", USERS[i % 3], "m", 1000, tuple(parts), f"{i:064x}"))
    return out


async def _prepared(path: Path) -> tuple[SqlStore, SqliteSettleDb, list[Answer]]:
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    await _ledger(store).append([Transfer("grant", MINT, u, 100_000) for u in USERS])
    db = SqliteSettleDb(str(path))
    await db.open()
    answers = _answers()
    ops = [Reserve(a.key, a.payer, a.model, a.estimate) for a in answers]
    assert all(r.ok for r in await db.apply(ops, "h1", NOW))  # type: ignore[union-attr]
    assert all(await db.apply(answers, "h1", NOW))
    return store, db, answers


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
    finally:
        conn.close()


async def test_append_settled_writes_exactly_what_the_sqlalchemy_ledger_writes(
    tmp_path: Path,
) -> None:
    ref_store, ref_db, answers = await _prepared(tmp_path / "ref.db")
    new_store, new_db, _ = await _prepared(tmp_path / "new.db")
    try:
        assert await settle(_ledger(ref_store), answers, NOW) == len(answers)
        size = await new_db.transact(
            partial(append_settled, answers=answers, now=sqlite_time(NOW), now_us=int(T * 1e6))
        )
        assert size == 3 + 2 * 10  # 3 grants; each of 10 parts: settle + fee
        ref, new = _dump(tmp_path / "ref.db"), _dump(tmp_path / "new.db")
        for table in TABLES:
            assert new[table] == ref[table], table
        assert {r[9] for r in new["settlements"]} == {"settled"}
        report = await audit(StoreSource(_ledger(new_store), "test.local/ledger"))
        assert report.ok, report
    finally:
        for db in (ref_db, new_db):
            await db.close()
        for store in (ref_store, new_store):
            await store.close()


async def test_a_batch_with_a_row_not_answered_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    store, db, answers = await _prepared(tmp_path / "x.db")
    try:
        write = partial(append_settled, now=sqlite_time(NOW), now_us=int(T * 1e6))
        await db.transact(partial(write, answers=answers[:1]))
        before = _dump(tmp_path / "x.db")
        with pytest.raises(Refused):  # r0 is settled already: the batch is refused whole
            await db.transact(partial(write, answers=answers[:3]))
        assert _dump(tmp_path / "x.db") == before
        await db.transact(partial(write, answers=answers[1:3]))  # the rest, once
        with pytest.raises(Refused):
            await db.transact(partial(write, answers=answers[2:3]))
        assert (await audit(StoreSource(_ledger(store), "test.local/ledger"))).ok
    finally:
        await db.close()
        await store.close()
