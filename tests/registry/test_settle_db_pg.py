"""Settlement's PostgreSQL writer (``registry/settle_db_pg.py``, ``PgSettleDb``): a batch sent
again after a lost connection is applied exactly once.

A batch is one autocommit call of ``llm_mesh_settle_batch_once``; when the connection is
lost, ``apply`` reconnects and sends it again with the same batch id. Three ways to lose
it: after the server committed, before the rows reached the client (the repeat must
return the first call's rows and apply nothing); before the commit (the server rolled it
back: the repeat applies it); and while the first call still runs on the server, unaware
its client is gone (the repeat waits for it, then returns its rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry import settle_db_pg
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import (
    Answer,
    PaidPart,
    PgSettleDb,
    Reserve,
    Reserved,
    Void,
    settle_db_for,
)
from LLM_Mesh.registry.settle_holders import forget_batches
from LLM_Mesh.registry.store import SqlStore
from tests.conftest import _admin_connect
from tests.keyed import operator_account
from tests.waiting import SOON_S, scaled

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

USER = pseudonym("user", "key-1")
OP_A = operator_account("alice")
MODEL = "gemma-3-270m"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
async def db(store: SqlStore) -> AsyncIterator[PgSettleDb]:
    async def engine() -> AsyncEngine:
        return store.engine

    await SqlLedger(engine).append_one(Transfer("grant", MINT, USER, 10_000))
    d = settle_db_for(store.engine.url.render_as_string(hide_password=False))
    assert isinstance(d, PgSettleDb)
    await d.open()
    try:
        yield d
    finally:
        await d.close()


async def _state(store: SqlStore) -> tuple[tuple[int, int], dict[tuple[str, int], Any]]:
    """The payer's ``(balance, reserved)`` and every settlement row's (state, amount)."""
    async with store.engine.connect() as conn:
        bal = (
            await conn.execute(
                text("SELECT balance, reserved FROM balances WHERE account = :a"), {"a": USER}
            )
        ).one()
        rows = (await conn.execute(text("SELECT * FROM settlements"))).mappings().all()
    return (int(bal[0]), int(bal[1])), {
        (r["request_id"], int(r["part"])): (r["state"], r["amount"]) for r in rows
    }


def _answer(key: str, *amounts: int) -> Answer:
    parts = tuple(PaidPart(f"n{i}", OP_A, a, a // 20) for i, a in enumerate(amounts))
    return Answer(key, USER, MODEL, 1000, parts)


class _Lost:
    """The dedicated connection, losing the answer to its next ``fetch``: ``after_commit``,
    the call runs to its end on the server (autocommit: committed) and then the connection
    drops before the rows arrive; else it drops before anything is sent."""

    def __init__(self, conn: Any, *, after_commit: bool) -> None:
        self.conn = conn
        self.after_commit = after_commit
        self.calls = 0

    async def fetch(self, *args: Any) -> Any:
        self.calls += 1
        if self.after_commit:
            await self.conn.fetch(*args)  # done and committed on the server
        raise ConnectionResetError("connection reset by peer")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


# (ops set up first, the batch whose answer is lost, what it returns, the state after)
CASES = {
    "answer": (
        [Reserve("k0", USER, MODEL, 1000)],
        [_answer("k0", 400)],
        [True],
        ((10_000, 400), {("k0", 0): ("answered", 400)}),
    ),
    "mixed": (
        [Reserve("k0", USER, MODEL, 1000), Reserve("k1", USER, MODEL, 1000)],
        [_answer("k0", 300, 100), Reserve("k2", USER, MODEL, 1000), Void("k1", USER)],
        [True, Reserved(True, 10_000, 2400), None],
        (
            (10_000, 1400),
            {
                ("k0", 0): ("answered", 300),
                ("k0", 1): ("answered", 100),
                ("k1", 0): ("void", None),
                ("k2", 0): ("pending", None),
            },
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_batch_whose_answer_is_lost_after_the_commit_is_applied_once(
    db: PgSettleDb, store: SqlStore, case: str
) -> None:
    """The connection drops after the server committed, before the client read the rows:
    the batch sent again returns what the first call did, and nothing is applied twice
    (without the batch id: the reservation's row again, a unique violation, the batch
    failed; an answer found already answered, ``False``: counted unpaid)."""
    before, batch, want, state = CASES[case]
    await db.apply(before, "h1", _now())
    lost = _Lost(db._conn, after_commit=True)
    db._conn = lost
    assert await db.apply(batch, "h1", _now()) == want
    assert lost.calls == 1 and db._conn is not lost  # lost, reconnected, sent again
    assert await _state(store) == state


async def test_a_batch_lost_again_on_new_connections_is_still_applied_once(
    db: PgSettleDb, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that keeps dropping connections (a restart): the first connect after the
    loss is refused, the next connection loses its answer after the commit too; the batch
    goes on being sent with its id, after pauses, and is applied once."""
    monkeypatch.setattr(settle_db_pg, "_PG_RECONNECT_S", (0.0, 0.0, 0.0))
    await db.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now())
    real_open, opened = db.open, []

    async def flaky_open() -> None:
        opened.append(1)
        if len(opened) == 1:
            raise ConnectionRefusedError("the server is starting")
        await real_open()
        if len(opened) == 2:
            db._conn = _Lost(db._conn, after_commit=True)

    monkeypatch.setattr(db, "open", flaky_open)
    db._conn = _Lost(db._conn, after_commit=True)
    assert await db.apply([_answer("k0", 400)], "h1", _now()) == [True]
    assert len(opened) == 3
    assert await _state(store) == ((10_000, 400), {("k0", 0): ("answered", 400)})


async def test_a_batch_gives_up_after_the_last_pause(
    db: PgSettleDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settle_db_pg, "_PG_RECONNECT_S", (0.0, 0.0))
    tries = []

    async def refused() -> None:
        tries.append(1)
        raise ConnectionRefusedError("the server is down")

    monkeypatch.setattr(db, "open", refused)
    db._conn = _Lost(db._conn, after_commit=False)
    with pytest.raises(ConnectionRefusedError):
        await db.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now())
    assert len(tries) == 2  # one connect after each pause, then the error


async def test_a_batch_lost_before_it_was_sent_is_sent_again(
    db: PgSettleDb, store: SqlStore
) -> None:
    lost = _Lost(db._conn, after_commit=False)
    db._conn = lost
    assert await db.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now()) == [
        Reserved(True, 10_000, 1000)
    ]
    assert lost.calls == 1 and db._conn is not lost
    assert await _state(store) == ((10_000, 1000), {("k0", 0): ("pending", None)})


async def _waiting_on_a_lock(pid: int) -> None:
    admin = await _admin_connect()
    try:
        end = time.monotonic() + scaled(SOON_S)  # 500 looks 10 ms apart before flakes40
        while time.monotonic() < end:
            kind = await admin.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
            )
            if kind == "Lock":
                return
            await asyncio.sleep(0.01)
    finally:
        await admin.close()
    raise AssertionError(f"backend {pid} never waited on a lock")


@contextlib.asynccontextmanager
async def _payer_locked(store: SqlStore) -> AsyncIterator[None]:
    """The payer's ``balances`` row locked by another transaction until the block ends."""
    async with store.engine.connect() as conn:
        await conn.execute(
            text("SELECT 1 FROM balances WHERE account = :a FOR UPDATE"), {"a": USER}
        )
        yield
        await conn.commit()


async def test_a_batch_rolled_back_by_a_killed_backend_is_applied_once(
    db: PgSettleDb, store: SqlStore
) -> None:
    """Lost before the commit: the call waits on the payer's row when its backend is
    terminated (the server rolls it back); the batch sent again is applied."""
    pid = db._conn.get_server_pid()
    async with _payer_locked(store):
        task = asyncio.create_task(db.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now()))
        await _waiting_on_a_lock(pid)
        admin = await _admin_connect()
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
    assert await task == [Reserved(True, 10_000, 1000)]
    assert db._conn.get_server_pid() != pid
    assert await _state(store) == ((10_000, 1000), {("k0", 0): ("pending", None)})


class _Abandoned:
    """The connection dropped by the client while its call still runs on the server (it
    waits on a lock there, and its backend does not notice the client is gone)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.sent: asyncio.Task[Any] | None = None

    async def fetch(self, *args: Any) -> Any:
        self.sent = asyncio.create_task(self.conn.fetch(*args))
        await _waiting_on_a_lock(self.conn.get_server_pid())
        raise ConnectionResetError("connection reset by peer")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


async def test_a_batch_sent_again_while_the_first_call_still_runs_is_applied_once(
    db: PgSettleDb, store: SqlStore
) -> None:
    """The repeat reaches the server while the first call, on its abandoned backend, is
    still waiting for the payer's row: the repeat waits for it and returns its rows."""
    abandoned = _Abandoned(db._conn)
    db._conn = abandoned
    try:
        async with _payer_locked(store):
            task = asyncio.create_task(db.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now()))
            for _ in range(500):  # the repeat is on the new connection
                if db._conn not in (None, abandoned):
                    break
                await asyncio.sleep(0.01)
            await _waiting_on_a_lock(db._conn.get_server_pid())  # sent: waits for the first
        assert await task == [Reserved(True, 10_000, 1000)]
    finally:
        if abandoned.sent is not None:
            with contextlib.suppress(Exception):
                await abandoned.sent  # its connection was closed under it
    assert await _state(store) == ((10_000, 1000), {("k0", 0): ("pending", None)})


@pytest.mark.parametrize("first", ["commits", "killed"])
async def test_a_void_written_again_while_the_first_still_runs_voids_once(
    db: PgSettleDb, store: SqlStore, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """A void whose connection dropped while its call still runs on the server (waiting for
    the payer's row, its backend unaware the client is gone), every reconnect failed: the
    error goes to ``Settlement``, which writes the void again (``_again``: a new batch, a
    new id) while the first call still runs. The retry waits for the request's row, which
    the first call holds (it voided the row, then waits for the payer's): when the first
    commits, the retry finds the row void and writes nothing; when it is rolled back (its
    backend terminated), the retry voids the row itself. Either way the row is void and
    the estimate released exactly once, as soon as the first call ends: nothing stays
    pending, nothing is released twice."""
    await db.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now())
    monkeypatch.setattr(settle_db_pg, "_PG_RECONNECT_S", ())  # no reconnect: the error at once
    gone = settle_db_for(store.engine.url.render_as_string(hide_password=False))
    assert isinstance(gone, PgSettleDb)
    await gone.open()
    abandoned = _Abandoned(gone._conn)
    pid = gone._conn.get_server_pid()
    gone._conn = abandoned
    try:
        async with _payer_locked(store):
            with pytest.raises(ConnectionResetError):
                await gone.apply([Void("k0", USER)], "h1", _now())  # still runs on the server
            again = asyncio.create_task(db.apply([Void("k0", USER)], "h1", _now()))
            await _waiting_on_a_lock(db._conn.get_server_pid())  # the row: the first's
            if first == "killed":
                admin = await _admin_connect()
                try:
                    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
                finally:
                    await admin.close()
        assert await again == [None]
    finally:
        if abandoned.sent is not None:
            with contextlib.suppress(Exception):
                await abandoned.sent  # its connection was closed under it
        await gone.close()
    assert await _state(store) == ((10_000, 0), {("k0", 0): ("void", None)})
    async with store.engine.connect() as conn:  # the reservation's, the retry's, the first's
        ids = (await conn.execute(text("SELECT count(*) FROM settle_batches"))).scalar()
    assert ids == (3 if first == "commits" else 2)


async def test_batch_ids_are_forgotten_after_the_time_kept(db: PgSettleDb, store: SqlStore) -> None:
    await db.apply([Reserve("k0", USER, MODEL, 1000)], "h1", _now())
    await db.apply([Reserve("k1", USER, MODEL, 1000)], "h1", _now())
    async with store.engine.begin() as conn:  # the first was an hour and a half ago
        await conn.execute(
            text(
                "UPDATE settle_batches SET created_at = :t WHERE created_at = "
                "(SELECT min(created_at) FROM settle_batches)"
            ),
            {"t": _now() - timedelta(minutes=90)},
        )
    assert await forget_batches(store.engine, 3600.0) == 1
    assert await forget_batches(store.engine, 3600.0) == 0
    async with store.engine.connect() as conn:
        left = (await conn.execute(text("SELECT count(*) FROM settle_batches"))).scalar()
    assert left == 1
