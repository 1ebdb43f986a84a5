"""Settlement's reservation leases (``registry/settle_lease.py``, ``core/lease_book.py``) on
a real store (``store`` fixture: a SQLite file, and a throwaway PostgreSQL database): one
write a request in the common case, and the money never wrong.

The invariant checked throughout: a payer's ``reserved`` is its pending estimates + its
answered (unsettled) totals + its leases, and never more than its balance.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from typing import Any

import pytest
from sqlalchemy import text

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import Answer, PaidPart, SqliteSettleDb
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.waiting import SOON_S, scaled

USER = pseudonym("user", "key-1")
OP_A = operator_account("alice")
T0 = 1_796_083_200.0
E = 1000  # the estimate of every request here


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> Any:
        return store.engine

    return SqlLedger(engine)


def _settlement(store: SqlStore, **kw: Any) -> Settlement:
    kw.setdefault("lease_estimates", 4)
    kw.setdefault("lease_idle_s", 3600.0)
    return Settlement(
        _ledger(store), fee_bps=500, pool_daily_budget=0, wall_clock=lambda: T0,
        settle_interval_s=3600.0, beat_s=3600.0, **kw,
    )  # fmt: skip


async def _started(store: SqlStore, **kw: Any) -> Settlement:
    s = _settlement(store, **kw)
    await s.start()
    return s


async def _grant(store: SqlStore, amount: int, account: str = USER) -> None:
    await _ledger(store).append_one(Transfer("grant", MINT, account, amount))


def _answer(key: str, amount: int, payer: str = USER) -> Answer:
    return Answer(key, payer, "m", E, (PaidPart("n1", OP_A, amount, amount // 20),))


async def _book(store: SqlStore, payer: str = USER) -> dict[str, int]:
    """The payer's balances row and what its reservations are made of, in the database (one
    statement: one snapshot)."""
    sql = (
        "SELECT (SELECT balance FROM balances WHERE account = :p),"
        " (SELECT reserved FROM balances WHERE account = :p),"
        " (SELECT COALESCE(SUM(estimate), 0) FROM settlements"
        "  WHERE payer = :p AND state = 'pending'),"
        " (SELECT COALESCE(SUM(amount), 0) FROM settlements"
        "  WHERE payer = :p AND state = 'answered'),"
        " (SELECT COALESCE(SUM(amount), 0) FROM settle_leases WHERE payer = :p),"
        " (SELECT COUNT(*) FROM settle_leases WHERE payer = :p),"
        " (SELECT COALESCE(MIN(amount), 0) FROM settle_leases WHERE payer = :p)"
    )
    async with store.engine.connect() as conn:
        row = (await conn.execute(text(sql), {"p": payer})).one()
    names = ("balance", "reserved", "pending", "answered", "leases", "lease_rows", "least")
    return {n: int(v or 0) for n, v in zip(names, row, strict=True)}


async def _invariant(store: SqlStore, payer: str = USER) -> dict[str, int]:
    b = await _book(store, payer)
    assert b["reserved"] == b["pending"] + b["answered"] + b["leases"], b
    assert 0 <= b["reserved"] <= b["balance"] and b["least"] >= 0, b
    return b


async def _until_given_back(store: SqlStore, payer: str = USER, timeout_s: float = SOON_S) -> None:
    """Until the payer's leases are back in the database: the lease loop hands them back in
    its own time, and on PostgreSQL writes them in the background (a fixed sleep was too
    short for that on a loaded box); a lease never handed back still fails here, after
    ``timeout_s`` (:func:`tests.waiting.scaled`; 10 s unscaled until flakes39)."""
    deadline = time.monotonic() + scaled(timeout_s)
    while (await _book(store, payer))["lease_rows"]:
        assert time.monotonic() < deadline, f"the idle lease of {payer} was not handed back"
        await asyncio.sleep(0.02)


def _writes(s: Settlement) -> int | None:
    """The hot path's transactions so far (SQLite's counters; ``None`` on PostgreSQL)."""
    db = s.db
    return db.inline_batches + db.thread_batches if isinstance(db, SqliteSettleDb) else None


async def test_a_lease_admits_in_memory_and_an_answer_is_one_write(store: SqlStore) -> None:
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        assert (
            await s.reserve("r1", USER, "m", E)
        ).ok  # the lease is taken: 3 estimates free after it
        b = await _invariant(store)
        assert (b["leases"], b["lease_rows"], b["pending"]) == (4 * E, 1, 0)
        before = _writes(s)
        for n in range(2, 5):  # three more from the lease: no write
            assert (await s.reserve(f"r{n}", USER, "m", E)).ok
        assert _writes(s) == before and await _book(store) == b
        assert await s.answer(_answer("r1", 300))  # one write: row + lease -= 300
        assert before is None or _writes(s) == before + 1
        b = await _invariant(store)
        assert (b["answered"], b["leases"], b["reserved"]) == (300, 4 * E - 300, 4 * E)
        rows = await _rows(store)
        assert rows["r1"] == ("answered", 300, E) and "r2" not in rows
        await s.flush()  # the settler pays 300 and releases it
        b = await _invariant(store)
        assert (b["balance"], b["reserved"], b["leases"]) == (
            100 * E - 300,
            4 * E - 300,
            4 * E - 300,
        )
    finally:
        await s.stop()
    b = await _invariant(store)
    assert (b["reserved"], b["lease_rows"]) == (0, 0)  # stop() gave the lease back


async def test_a_void_gives_the_estimate_back_to_the_lease(store: SqlStore) -> None:
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        for n in range(4):  # the lease's four estimates, all held
            assert (await s.reserve(f"r{n}", USER, "m", E)).ok
        assert s.leases is not None and s.leases.taken == 1
        s.void("r0", USER)
        before = _writes(s)
        assert (await s.reserve("r4", USER, "m", E)).ok  # r0's estimate, from memory
        assert _writes(s) == before and s.leases.taken == 1
        assert (await s.reserve("r5", USER, "m", E)).ok  # none free: the lease grows
        assert s.leases.taken == 2
        b = await _invariant(store)
        assert (b["leases"], b["lease_rows"]) == (8 * E, 1)
        assert "r0" not in await _rows(store)  # a void of a leased request writes nothing
    finally:
        await s.stop()


async def test_an_idle_lease_goes_back(store: SqlStore) -> None:
    await _grant(store, 100 * E)
    s = await _started(store, lease_idle_s=0.1)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        assert await s.answer(_answer("r1", 250))
        assert (await _invariant(store))["leases"] == 4 * E - 250
        await _until_given_back(store)  # the lease loop runs every 0.05 s
        b = await _invariant(store)
        assert (b["leases"], b["lease_rows"], b["reserved"]) == (0, 0, 250)
        assert s.leases is not None and s.leases.given == 1 and not s.leases.leases
        assert (await s.reserve("r2", USER, "m", E)).ok  # a new lease
        assert (await _invariant(store))["lease_rows"] == 1
    finally:
        await s.stop()


async def test_a_take_whose_outcome_is_unknown_still_goes_back(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A take whose transaction committed but whose answer was lost (PostgreSQL: the
    connection dropped after the commit, every retry failed) reads as failed; its lease
    row exists all the same, and is handed back with the idle leases, not left reserving
    the payer's balance for as long as the process lives."""
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        real = s.db.apply

        async def commit_then_lose(ops: Any, holder: str, now: Any) -> Any:
            await real(ops, holder, now)
            raise ConnectionError("the connection was lost after the commit")

        monkeypatch.setattr(s.db, "apply", commit_then_lose)
        if isinstance(s.db, SqliteSettleDb):  # through the writer (apply), not inline
            monkeypatch.setattr(s.db, "try_inline", lambda ops, holder: None)
        with pytest.raises(ConnectionError):
            await s.reserve("r1", USER, "m", E)
        assert (await _invariant(store))["lease_rows"] == 1  # committed all the same
        monkeypatch.undo()
        s.give_back(time.monotonic() + 7200.0)
        await s.flush()
        b = await _invariant(store)
        assert (b["lease_rows"], b["reserved"]) == (0, 0)
    finally:
        await s.stop()


async def test_a_write_that_raises_at_once_leaves_its_lease_free_to_go_back(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request alone writes at once on the loop (SQLite's ``try_inline``); when that
    write raises (disk I/O, disk full) its lease must not stay marked busy, or it never
    goes back and keeps its amount reserved for as long as the process lives."""
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        if not isinstance(s.db, SqliteSettleDb):
            pytest.skip("PostgreSQL writes nothing at once on the loop")
        assert (await s.reserve("r1", USER, "m", E)).ok
        assert (await _invariant(store))["leases"] == 4 * E

        def broken(ops: Any, holder: str, now: Any = None) -> Any:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(s.db, "try_inline", broken)
        with pytest.raises(sqlite3.OperationalError):
            await s.answer(_answer("r1", 250))
        monkeypatch.undo()
        s.give_back(time.monotonic() + 7200.0)
        await s.flush()
        b = await _invariant(store)
        assert (b["lease_rows"], b["reserved"]) == (0, 0)
    finally:
        await s.stop()


async def test_the_lease_loop_outlives_a_give_that_raises(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A give written at once that raises (disk I/O) must neither end the task that hands
    idle leases back nor drop the other leases of its round: each would stay reserved
    while the process lives."""
    other = pseudonym("user", "key-2")
    for payer in (USER, other):
        await _grant(store, 100 * E, payer)
    s = await _started(store, lease_idle_s=0.05)
    try:
        if not isinstance(s.db, SqliteSettleDb):
            pytest.skip("PostgreSQL writes nothing at once on the loop")
        real = s.db.try_inline
        calls: list[int] = []

        def once_broken(ops: Any, holder: str, now: Any = None) -> Any:
            if any(type(op).__name__ == "Give" for op in ops) and not calls:
                calls.append(1)
                raise sqlite3.OperationalError("disk I/O error")
            return real(ops, holder, now)

        monkeypatch.setattr(s.db, "try_inline", once_broken)
        for n, payer in enumerate((USER, other)):
            assert (await s.reserve(f"r{n}", payer, "m", E)).ok
            assert await s.answer(_answer(f"r{n}", 250, payer))
        for payer in (USER, other):  # one give failed; the loop goes on, and gives back all
            await _until_given_back(store, payer)  # (a fixed 0.5 s: short on a loaded box)
        assert calls == [1]
        for payer in (USER, other):
            b = await _invariant(store, payer)
            assert (b["lease_rows"], b["reserved"]) == (0, 250), payer
    finally:
        await s.stop()


async def test_an_answer_its_lease_cannot_cover_is_reserved_from_the_balance(
    store: SqlStore,
) -> None:
    """A total over what the lease holds (more than the estimate) is never drawn from the
    lease (which would go below zero): it is reserved from the available balance, and the
    lease is no longer used (it goes back once idle)."""
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        assert await s.answer(_answer("r1", 5 * E))
        b = await _invariant(store)
        assert (b["answered"], b["leases"], b["reserved"]) == (5 * E, 4 * E, 9 * E)
        assert s.leases is not None and not s.leases.current  # lost: a new one next
        assert s.give_back(0.0) == 1  # lost and idle: handed back at once
        await s.flush()
        assert (await _invariant(store))["lease_rows"] == 0
    finally:
        await s.stop()


async def test_a_request_in_flight_keeps_its_lease(store: SqlStore) -> None:
    await _grant(store, 100 * E)
    s = await _started(store, lease_idle_s=0.05)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        await asyncio.sleep(0.2)
        assert s.give_back(1e12) == 0  # held by r1: not handed back, however old
        assert await s.answer(_answer("r1", 100))
        s.give_back(1e12)  # (or the lease loop did)
        assert s.leases is not None and s.leases.given == 1
        await s.flush()
        b = await _invariant(store)
        assert (b["reserved"], b["lease_rows"], b["balance"]) == (0, 0, 100 * E - 100)
    finally:
        await s.stop()


async def test_near_the_end_of_a_balance_requests_are_reserved_alone(store: SqlStore) -> None:
    """A lease is refused when the payer could not keep ``lease_estimates`` estimates for
    the others: the request gets its own pending row, as without leases."""
    await _grant(store, 7 * E)  # a lease needs 4 + 4 estimates available
    s = await _started(store)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        b = await _invariant(store)
        assert (b["lease_rows"], b["pending"]) == (0, E)
        for n in range(2, 8):
            assert (await s.reserve(f"r{n}", USER, "m", E)).ok
        no = await s.reserve("r8", USER, "m", E)  # the 8th: nothing left, 402
        assert not no.ok and (no.balance, no.reserved) == (7 * E, 7 * E)
        await _invariant(store)
    finally:
        await s.stop()


async def test_an_idle_lease_of_another_holder_refuses_only_until_it_goes_back(
    store: SqlStore,
) -> None:
    """Holder A's idle lease holds part of the balance: B's request that needs it is
    refused (402) while A's lease is young, and admitted once A gave it back (idle)."""
    await _grant(store, 9 * E)
    a = await _started(store, lease_idle_s=0.2)
    b = await _started(store, lease_idle_s=0.2)
    try:
        assert (await a.reserve("a1", USER, "m", E)).ok  # A's lease: 4 of the 9
        a.void("a1", USER)  # A is idle now
        no = await b.reserve("b1", USER, "m", 6 * E)
        assert not no.ok and no.available == 5 * E
        await _until_given_back(store)  # past A's idle time: A's lease is back
        assert (await _invariant(store))["lease_rows"] == 0
        assert (await b.reserve("b1", USER, "m", 6 * E)).ok  # reserved alone (too big to lease)
        await _invariant(store)
    finally:
        await a.stop()
        await b.stop()


async def test_a_dead_holders_lease_is_released_by_recovery(store: SqlStore) -> None:
    await _grant(store, 100 * E)
    dead = await _started(store)
    alive = await _started(store, holder_ttl_s=3600.0)
    try:
        assert (await dead.reserve("d1", USER, "m", E)).ok
        assert (await dead.reserve("d2", USER, "m", E)).ok
        assert await dead.answer(_answer("d1", 400))
        await _crash(dead)
        b = await _invariant(store)
        assert (b["leases"], b["answered"]) == (4 * E - 400, 400)
        assert await alive.recover() == (0, 0)  # it beat just now
        await _silence(store, dead.holder)
        assert await alive.dead_holders() == [dead.holder]
        assert await alive.recover() == (1, 0)  # d1 settled; the lease released
        b = await _invariant(store)
        assert (b["reserved"], b["lease_rows"], b["balance"]) == (0, 0, 100 * E - 400)
        assert await alive.recover() == (0, 0)
        assert (await audit(StoreSource(alive.ledger, "x"))).ok
    finally:
        await alive.stop()


async def test_a_holder_taken_for_dead_answers_from_the_balance_or_unpaid(
    store: SqlStore,
) -> None:
    """Recovery released a live holder's lease: its answers are then reserved from the
    payer's available balance (as a lapsed row is revived), or unpaid when it cannot."""
    await _grant(store, 9 * E)
    slow = await _started(store)
    other = await _started(store, lease_estimates=0)
    try:
        assert (await slow.reserve("s1", USER, "m", E)).ok
        assert (await slow.reserve("s2", USER, "m", E)).ok
        await _silence(store, slow.holder)
        await other.recover()
        assert (await _invariant(store))["reserved"] == 0
        assert await slow.answer(_answer("s1", 500))  # from the balance: recorded
        b = await _invariant(store)
        assert (b["answered"], b["reserved"], b["lease_rows"]) == (500, 500, 0)
        assert (await other.reserve("o1", USER, "m", 8 * E + 500)).ok  # the rest, spent
        assert await slow.answer(_answer("s2", 500)) is False and slow.unpaid == 1
        b = await _invariant(store)
        assert b["reserved"] == b["balance"] == 9 * E
        assert (await slow.reserve("s3", USER, "m", E)).ok is False  # the lost lease unused
    finally:
        await other.stop()
        await slow.stop()


async def test_a_lease_whose_answer_went_unpaid_admits_nothing_more(store: SqlStore) -> None:
    """Recovery released a live holder's lease and the payer's balance went elsewhere: the
    first answer is unpaid, and the lease (still "free" in the book) must admit no more
    requests, each of which would be answered unpaid too (free inference for as long as
    the payer keeps the lease busy)."""
    await _grant(store, 9 * E)
    slow = await _started(store)
    other = await _started(store, lease_estimates=0)
    try:
        assert (await slow.reserve("s1", USER, "m", E)).ok
        await _silence(store, slow.holder)
        await other.recover()
        assert (await other.reserve("o1", USER, "m", 9 * E)).ok  # the whole balance
        assert await slow.answer(_answer("s1", 500)) is False and slow.unpaid == 1
        assert (await slow.reserve("s2", USER, "m", E)).ok is False  # 402, not served free
        assert (await _invariant(store))["reserved"] == 9 * E
    finally:
        await other.stop()
        await slow.stop()


async def test_recovery_releases_the_lease_of_a_holder_gone(store: SqlStore) -> None:
    await _grant(store, 100 * E)
    s = await _started(store, lease_estimates=0)  # one reservation a request
    try:
        assert s.leases is None
        assert (await s.reserve("r1", USER, "m", E)).ok
        assert (await _book(store))["pending"] == E
        async with store.engine.begin() as conn:  # a lease of a holder gone
            await conn.execute(
                text("INSERT INTO settle_leases VALUES ('l1', 'gone', :p, 3000)"), {"p": USER}
            )
            await conn.execute(
                text("UPDATE balances SET reserved = reserved + 3000 WHERE account = :p"),
                {"p": USER},
            )
        assert await s.dead_holders() == ["gone"]
        await s.recover()
        b = await _invariant(store)
        assert (b["reserved"], b["lease_rows"]) == (E, 0)
    finally:
        await s.stop()


async def test_a_burst_is_admitted_up_to_the_balance_not_to_the_takes(store: SqlStore) -> None:
    """30 requests at once on a balance for 20: each take of the burst admits one request
    and leaves 3 estimates free; a request refused meanwhile waits for the takes in flight
    and is admitted from what they grew, so exactly 20 are admitted (not one a take)."""
    await _grant(store, 20 * E)
    s = await _started(store)
    try:
        got = await asyncio.gather(*(s.reserve(f"r{n}", USER, "m", E) for n in range(30)))
        assert sum(r.ok for r in got) == 20
        b = await _invariant(store)
        assert b["reserved"] == b["balance"] == 20 * E
    finally:
        await s.stop()


async def test_two_holders_at_the_edge_of_a_balance_never_overspend(store: SqlStore) -> None:
    """Two settlements on one database file (two holders), each with many requests in
    flight on one payer whose balance runs out: every admitted request's answer is
    recorded (none unpaid), the payer's reserved never exceeds its balance, the ledger
    pays exactly the recorded answers and the balance ends at zero or above."""
    rng = random.Random(7)
    grant = 200 * E
    await _grant(store, grant)
    holders = [await _started(store, lease_idle_s=0.02) for _ in range(2)]
    paid: list[int] = []
    refused = 0

    async def one(s: Settlement, key: str) -> bool:
        nonlocal refused
        estimate = rng.choice((E // 2, E, 2 * E))
        if not (await s.reserve(key, USER, "m", estimate)).ok:
            refused += 1
            return False
        await asyncio.sleep(rng.random() * 0.003)
        if rng.random() < 0.2:
            s.void(key, USER)
            return True
        total = rng.randint(1, estimate)
        answer = Answer(key, USER, "m", estimate, (PaidPart("n1", OP_A, total, 0),))
        assert await s.answer(answer)
        paid.append(total)
        return True

    async def worker(s: Settlement, name: str) -> None:
        """Requests one after the other until 20 in a row were refused (over 0.1 s: past
        every idle lease's return)."""
        n = misses = 0
        while misses < 20 and n < 200:
            n += 1
            if await one(s, f"{name}-{n}"):
                misses = 0
            else:
                misses += 1
                await asyncio.sleep(0.005)

    async def checker() -> None:
        while not done.is_set():
            await _invariant(store)
            await asyncio.sleep(0.01)

    async def settler(s: Settlement) -> None:
        while not done.is_set():
            await asyncio.sleep(0.01)
            await s.settle_now()

    done = asyncio.Event()
    workers = [worker(h, f"h{i}w{w}") for i, h in enumerate(holders) for w in range(8)]
    side = [asyncio.ensure_future(c) for c in (checker(), *(settler(h) for h in holders))]
    try:
        await asyncio.gather(*workers)
        done.set()
        await asyncio.gather(*side)
        for h in holders:
            await h.flush()
        await _invariant(store)
    finally:
        done.set()
        for h in holders:
            await h.stop()
    b = await _invariant(store)
    assert refused > 0 and all(h.unpaid == 0 for h in holders)
    assert (b["reserved"], b["lease_rows"], b["balance"]) == (0, 0, grant - sum(paid))
    assert 0 <= b["balance"] < 2 * E  # the balance did run out, and never below zero
    assert all(h.leases is not None and h.leases.from_memory > 0 for h in holders)
    assert (await audit(StoreSource(_ledger(store), "x"))).ok


async def _rows(store: SqlStore) -> dict[str, tuple[str, int, int]]:
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT request_id, state, amount, estimate FROM settlements"))
        ).all()
    return {r[0]: (r[1], int(r[2] or 0), int(r[3])) for r in rows}


async def _crash(st: Settlement) -> None:
    """Stop ``st`` as a killed process would: no flush, no voids, no leases given back."""
    st._started = False
    for task in [*st._tasks, st._writer]:
        if task is not None:
            task.cancel()
    await st.db.close()
    if st._worker is not None:
        await st._worker.stop()


async def _silence(store: SqlStore, holder: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE settle_holders SET beat_ms = beat_ms - 7200000 WHERE holder = :h"),
            {"h": holder},
        )


async def test_a_clean_stop_gives_its_lease_back_without_a_warning(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Found 2026-12-03: every clean stop of a registry that had served anonymous requests
    (`make demo` included) logged ``WARNING ... recovered 1 holder(s): 0 answered request(s)
    settled, 0 pending voided, 352 µNT of leases released``: its own lease, given back as
    it should be, read as a crash's recovery."""
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        assert await s.answer(_answer("r1", 300))
        await s.flush()
    finally:
        with caplog.at_level("INFO", logger="LLM_Mesh.registry.settlement"):
            await s.stop()
    assert (await _invariant(store))["lease_rows"] == 0
    said = [r for r in caplog.records if r.name == "LLM_Mesh.registry.settlement"]
    assert [r.levelname for r in said if "leases released" in r.getMessage()] == ["INFO"]
