"""Settlement's SQLite writer (``registry/settle_db_sqlite.py``, ``SqliteSettleDb``) keeps the
store's write-ahead log bounded.

It writes most of the database's transactions (two a request) and runs no checkpoint after
its commits (``wal_autocheckpoint=0``: never on the event loop); with only the other
connections' automatic checkpoints, a steady stream of its commits never let SQLite start
the log over and ``registry.db-wal`` grew without end under load (2.6 GB in 90 s,
docs/benchmarks.md). It now checkpoints in its own thread every ``checkpoint_every``
commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import (
    JOURNAL_SIZE_LIMIT,
    Reserve,
    SqliteSettleDb,
    Void,
    sqlite_now,
    sqlite_time,
)
from LLM_Mesh.registry.store import SqlStore

USER = pseudonym("user", "k")


async def _store(path: Path) -> SqlStore:
    store = SqlStore(f"sqlite:///{path}")
    await store.open()

    async def engine() -> AsyncEngine:
        return store.engine

    await SqlLedger(engine).append_one(Transfer("grant", MINT, USER, 10**12))
    return store


async def _requests(db: SqliteSettleDb, n: int, *, inline: bool) -> None:
    """``n`` requests' reserve and void, one op a batch (a request alone): two commits each;
    the loop turns between requests, as a server's does."""
    now = datetime.now(timezone.utc)
    for i in range(n):
        for op in (Reserve(f"r{i}", USER, "m", 5), Void(f"r{i}", USER)):
            if not inline or db.try_inline([op], "h", now) is None:
                await db.apply([op], "h", now)
        await asyncio.sleep(0)
    for _ in range(100):  # the last checkpoint, if one is running
        if db._checkpoint is None:
            break
        await asyncio.sleep(0.01)


def _wal(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


@pytest.mark.parametrize("inline", [True, False])
async def test_the_log_stays_bounded_while_requests_flow(tmp_path: Path, inline: bool) -> None:
    """600 requests, two commits each, on the event loop or in the connection's thread:
    with a checkpoint every 100 commits the log stays small; without (``checkpoint_every``
    beyond the run: as before) it holds every commit."""
    sizes = {}
    for every in (100, 10**9):
        path = tmp_path / f"every-{every}.db"
        store = await _store(path)
        db = SqliteSettleDb(str(path), checkpoint_every=every)
        await db.open()
        try:
            await _requests(db, 600, inline=inline)
            sizes[every] = _wal(path)
            assert db.checkpoints == (12 if every == 100 else 0)
        finally:
            await db.close()
            await store.close()
    # ~1,200 commits of several 4 KiB pages each, against ~100 commits' worth at most
    assert sizes[10**9] > 5 * sizes[100], sizes
    assert sizes[100] < 4_000_000, sizes


async def test_a_checkpoint_reports_the_log_fully_copied(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = await _store(path)
    db = SqliteSettleDb(str(path), checkpoint_every=10)
    await db.open()
    try:
        await _requests(db, 5, inline=True)
        assert db.checkpoints == 1
        assert db.last_checkpoint is not None
        busy, frames, copied = db.last_checkpoint
        assert busy == 0 and frames == copied > 0
    finally:
        await db.close()
        await store.close()


async def test_every_connection_cuts_a_grown_log_back(tmp_path: Path) -> None:
    """``journal_size_limit`` on the settlement's connection and on the store's: a log that
    grew in a burst is cut back to it when SQLite starts it over."""
    path = tmp_path / "l.db"
    store = await _store(path)
    db = SqliteSettleDb(str(path))
    await db.open()
    try:
        assert db._conn is not None
        got = db._conn.execute("PRAGMA journal_size_limit").fetchone()[0]
        assert got == JOURNAL_SIZE_LIMIT
        async with store.engine.connect() as conn:
            limit = (await conn.execute(text("PRAGMA journal_size_limit"))).scalar()
        assert limit == JOURNAL_SIZE_LIMIT
    finally:
        await db.close()
        await store.close()


async def test_no_checkpoint_on_a_database_that_is_not_wal(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    sqlite3.connect(path).close()
    store = await _store(path)  # the store sets WAL on its file; undo it for this test
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    db = SqliteSettleDb(str(path), checkpoint_every=1)
    await db.open()
    try:
        await _requests(db, 3, inline=False)
        assert db.checkpoints == 0
    finally:
        await db.close()


def test_checkpoint_every_is_at_least_one() -> None:
    with pytest.raises(ValueError):
        SqliteSettleDb("x.db", checkpoint_every=0)


def test_sqlite_now_is_sqlite_time_of_the_same_instant() -> None:
    """The hot path's timestamp (formatted once a second, the microseconds added) is the
    text ``sqlite_time`` makes of the same instant, across seconds, days and years."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    for ns in (
        1_796_083_200_000_000_000,  # a whole second
        1_796_083_200_000_999_999,  # under a microsecond past it
        1_796_083_200_123_456_789,
        1_796_083_259_999_999_999,  # the second's last microsecond
        1_796_083_260_000_001_000,  # the next minute
        1_798_761_599_999_999_000,  # a year's last microsecond
        1_798_761_600_000_000_000,  # the next year
        1_796_083_200_654_321_000,  # back to a second seen before
    ):
        want = sqlite_time(epoch + timedelta(microseconds=ns // 1000))
        assert sqlite_now(lambda ns=ns: ns) == want, ns
