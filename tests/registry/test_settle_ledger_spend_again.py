"""``settle_ledger.spend_again`` on PostgreSQL while the lease's first write (its ``Spend``,
one call of migration 0015's batch function) still runs on the server: its connection was
lost, so the client counted it failed and wrote the answer again; the server had not
given up on it. The rows' key (request, part) must let exactly one of the two insert, and
the payer's ``reserved`` stay its pending estimates + answered totals + leases, whichever
commits and in whichever order: one payment, never two, and nothing left reserved.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import text

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import Answer, PaidPart, PgSettleDb
from LLM_Mesh.registry.settle_db_pg import _PG_BATCH, _pg_rows
from LLM_Mesh.registry.settle_lease import Spend
from LLM_Mesh.registry.settle_ledger import settle, spend_again
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account

pytestmark = pytest.mark.postgres

USER = pseudonym("user", "key-1")
OP_A = operator_account("alice")
E = 1000
LEASE = 4 * E
NOW = datetime(2026, 12, 3, 6, 0, tzinfo=timezone.utc)
ANSWER = Answer("r1", USER, "m", E, (PaidPart("n1", OP_A, 400, 20),))


@pytest.fixture
async def pg(pg_database_url: str) -> AsyncIterator[tuple[SqlStore, str]]:
    """A migrated store; ``USER`` granted 100 E, holding a lease of 4 E (``L1``, holder h1)."""
    store = SqlStore(pg_database_url)
    await store.open()
    try:
        await _ledger(store).append_one(Transfer("grant", MINT, USER, 100 * E))
        async with store.engine.begin() as conn:
            await conn.execute(
                text("UPDATE balances SET reserved = reserved + :n WHERE account = :p"),
                {"n": LEASE, "p": USER},
            )
            await conn.execute(
                text("INSERT INTO settle_leases (lease_id, holder, payer, amount) "
                     "VALUES ('L1', 'h1', :p, :n)"),
                {"p": USER, "n": LEASE},
            )  # fmt: skip
        yield store, pg_database_url
    finally:
        await store.close()


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> Any:
        return store.engine

    return SqlLedger(engine)


async def _book(store: SqlStore) -> dict[str, int]:
    """The payer's row, what its reservations are made of, and r1's rows (one snapshot)."""
    sql = (
        "SELECT (SELECT balance FROM balances WHERE account = :p),"
        " (SELECT reserved FROM balances WHERE account = :p),"
        " (SELECT COALESCE(SUM(amount), 0) FROM settlements"
        "  WHERE payer = :p AND state = 'answered'),"
        " (SELECT COALESCE(SUM(amount), 0) FROM settle_leases WHERE payer = :p),"
        " (SELECT COUNT(*) FROM settlements WHERE request_id = 'r1')"
    )
    async with store.engine.connect() as conn:
        row = (await conn.execute(text(sql), {"p": USER})).one()
    b = dict(zip(("balance", "reserved", "answered", "leases", "rows"), map(int, row),
                 strict=True))  # fmt: skip
    assert b["reserved"] == b["answered"] + b["leases"], b  # nothing pending here
    return b


async def _paid_once(store: SqlStore) -> None:
    """The settler pays r1 once, however often it is handed the answer."""
    assert await settle(_ledger(store), [ANSWER], NOW) == 1
    assert await settle(_ledger(store), [ANSWER], NOW) == 0
    entries, _ = await _ledger(store).entries(-1, 10_000)
    assert [(e.kind, e.amount) for e in entries if e.request_id == "r1"] == [
        ("settle", 380), ("fee", 20)
    ]  # fmt: skip
    b = await _book(store)
    assert (b["balance"], b["answered"]) == (100 * E - 400, 0)


async def _blocked(task: asyncio.Task[Any]) -> None:
    """``task`` is waiting on the server (a row lock), not done."""
    await asyncio.sleep(0.5)
    assert not task.done(), task


@pytest.mark.parametrize("first", ["commits", "rolls_back"])
async def test_a_spend_still_open_on_the_server_and_its_retry_pay_once(
    pg: tuple[SqlStore, str], first: str
) -> None:
    """The first write has inserted r1's row and drawn the lease, not committed (held
    open here as a call whose connection was lost still runs); the retry reserves from
    the balance and inserts r1's row: it waits on the row's key. The first commits: the
    retry's insert fails, it rolls back (its reservation too) and says ``answered``. The
    first rolls back: the retry's rows stand, reserved from the balance."""
    import asyncpg

    store, url = pg
    conn = await asyncpg.connect(url)
    try:
        tx = conn.transaction()
        await tx.start()
        cols, _ = _pg_rows([Spend(ANSWER, "L1")])
        [row] = await conn.fetch(_PG_BATCH, uuid.uuid4(), *cols, "h1", NOW)
        assert row["ok"] and row["lease"] == 1  # drawn from the lease, not committed
        retry = asyncio.create_task(spend_again(store.engine, ANSWER, "h1", NOW))
        await _blocked(retry)  # on r1's key: the two cannot both insert
        await (tx.commit() if first == "commits" else tx.rollback())
        assert await asyncio.wait_for(retry, 10) == "answered"
    finally:
        await conn.close()
    b = await _book(store)
    assert (b["rows"], b["answered"]) == (1, 400), b
    if first == "commits":  # the first's: moved from the lease; the retry reserved nothing
        assert (b["leases"], b["reserved"]) == (LEASE - 400, LEASE), b
    else:  # the retry's: reserved from the balance; the lease kept its amount
        assert (b["leases"], b["reserved"]) == (LEASE, LEASE + 400), b
    await _paid_once(store)


async def test_a_retry_that_commits_first_makes_the_late_first_write_fail_whole(
    pg: tuple[SqlStore, str],
) -> None:
    """The other order: the first write is held before its insert (here by the lease row's
    lock), the retry inserts and commits, then the first goes on: its insert meets the
    retry's row and the whole batch rolls back (its draw from the lease too). One row."""
    import asyncpg

    store, url = pg
    holder = await asyncpg.connect(url)
    db = PgSettleDb(url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM settle_leases WHERE lease_id = 'L1' FOR UPDATE")
        writing = asyncio.create_task(db.apply([Spend(ANSWER, "L1")], "h1", NOW))
        await _blocked(writing)  # on the lease row
        assert await asyncio.wait_for(spend_again(store.engine, ANSWER, "h1", NOW), 10) == (
            "answered"
        )
        await tx.commit()
        with pytest.raises(asyncpg.UniqueViolationError):
            await asyncio.wait_for(writing, 10)
    finally:
        await db.close()
        await holder.close()
    b = await _book(store)
    assert (b["rows"], b["answered"], b["leases"], b["reserved"]) == (1, 400, LEASE, LEASE + 400)
    await _paid_once(store)
