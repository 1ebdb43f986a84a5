"""Settlement's writes and the event loop's iterations: SQLite writes on the loop (waiting in
their thread when locked), a request alone written at once, concurrent ones in one
transaction in order, a failed batch, and the last iteration's writes before a stop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.registry.settlement_fixtures import (
    OP_A,
    USER,
    answer_of,
    grant,
    make_settlement,
    s,
    settlement_rows,
    sqlite_only,
    utc_now,
)

__all__ = ["s"]  # the fixture


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
        (seen,) = await db.apply([Reserve("r1", USER, "m", 1)], "h", utc_now())
        assert seen is not None and not seen.ok  # type: ignore[union-attr]
        assert (db.inline_batches, db.thread_batches) == (1, 0)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(db.apply([Reserve("r2", USER, "m", 1)], "h", utc_now()))
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


async def test_a_request_alone_writes_at_once_not_at_the_end_of_the_iteration(
    s: Settlement, store: SqlStore
) -> None:
    sqlite_only(s)
    await grant(store, USER, 10_000)
    for key in ("r1", "r2"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
        assert s.in_flight == {key}
        assert await s.answer(answer_of(key, ("n1", OP_A, 400, 20))) is True
        assert s.in_flight == set()
    assert (s.tick_batches, s.tick_ops) == (0, 0)
    assert await s.balance(USER) == (10_000, 800)


async def test_writes_of_concurrent_requests_in_one_iteration_are_one_transaction(
    s: Settlement, store: SqlStore
) -> None:
    sqlite_only(s)
    await grant(store, USER, 100_000)
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
        *(s.answer(answer_of(f"r{i}", ("n1", OP_A, 100, 5))) for i in range(11))
    )
    assert all(done) and transactions == 2 and (s.tick_batches, s.tick_ops) == (2, 21)
    assert s.in_flight == set()
    rows = await settlement_rows(store)
    assert {rows[(f"r{i}", 0)]["state"] for i in range(11)} == {"answered"}
    assert await s.balance(USER) == (100_000, 1100)
    assert await s.settle_now() == 11
    assert await s.balance(USER) == (100_000 - 1100, 0)


async def test_the_iterations_batch_keeps_the_order_the_writes_were_made_in(
    s: Settlement, store: SqlStore
) -> None:
    """A reservation and the void of the same request in one iteration: written in that
    order (the void finds the row pending and releases it); nothing overtakes the batch."""
    sqlite_only(s)
    await grant(store, USER, 10_000)
    assert (await s.reserve("r0", USER, "m", 1000)).ok
    task = asyncio.create_task(s.reserve("r1", USER, "m", 1000))
    await asyncio.sleep(0)  # the reservation waits for the iteration's batch
    s.void("r1", USER)  # in the same iteration: joins the batch after it
    assert (await task).ok
    assert (s.tick_batches, s.tick_ops) == (1, 2)
    assert (await settlement_rows(store))[("r1", 0)]["state"] == "void"
    assert await s.balance(USER) == (10_000, 1000)  # r0's estimate only


async def test_a_failed_batch_fails_each_of_its_writes(s: Settlement, store: SqlStore) -> None:
    sqlite_only(s)
    await grant(store, USER, 10_000)
    assert (await s.reserve("r0", USER, "m", 1000)).ok

    def broken(*_a: Any, **_kw: Any) -> Any:
        raise RuntimeError("disk on fire")

    s.db.try_inline = broken  # type: ignore[attr-defined]
    got = await asyncio.gather(
        *(s.reserve(f"r{i}", USER, "m", 10) for i in (1, 2)), return_exceptions=True
    )
    assert [str(g) for g in got] == ["disk on fire", "disk on fire"]
    assert s.in_flight == {"r0"} and s.tick_batches == 0
    assert set(await settlement_rows(store)) == {("r0", 0)}


async def test_writes_of_the_last_iteration_before_a_stop_are_written(store: SqlStore) -> None:
    st = make_settlement(store)
    await st.start()
    sqlite_only(st)
    await grant(store, USER, 10_000)
    assert (await st.reserve("r0", USER, "m", 1000)).ok
    assert (await st.reserve("r1", USER, "m", 1000)).ok
    task = asyncio.create_task(st.answer(answer_of("r1", ("n1", OP_A, 400, 20))))
    await asyncio.sleep(0)  # the answer waits for the iteration's batch ...
    await st.stop()  # ... and the stop begins before that batch is written
    assert await task is True
    rows = await settlement_rows(store)
    assert rows[("r1", 0)]["state"] == "settled"
    assert rows[("r0", 0)]["state"] == "void"  # a stop voids its own pending rows
    assert await st.balance(USER) == (9_600, 0)
