"""A settlement database away for longer than the last pause of the writes that failed
(``settle_upkeep._AGAIN_S``: about 100 s; a PostgreSQL failover or restart can take that),
then back, while the gateway lives on (SQLite file and PostgreSQL, leases off and on).

Found 2026-12-05: after the last pause a failed void and a failed answer were "left to
recovery", which for a live gateway is its stop: the void's estimate stayed reserved out of
the payer's balance, and the answer's operator unpaid, for as long as the gateway ran (weeks),
and a gateway then killed instead of stopped never paid the answer at all (recovery lapses a
pending row). Now they are written again at the last pause's interval until the database
takes them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry import settle_upkeep
from LLM_Mesh.registry.settle_db import Answer, PaidPart, SqliteSettleDb
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.registry.crash_books import books, crash, journals, ledger_of
from tests.waiting import SOON_S, scaled

USER = pseudonym("user", "key-outage")
OP_A = operator_account("alice")
T0 = 1_796_083_200.0
GRANT = 1_000_000
E = 10_000
PAUSES = (0.02, 0.05, 0.1)  # the last pause: 0.1 s


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle_upkeep, "_AGAIN_S", PAUSES)


class Away:
    """Every hot-path write and every store call of settlement fails while ``away``
    (nothing committed: the database is unreachable)."""

    def __init__(self, s: Settlement, monkeypatch: pytest.MonkeyPatch) -> None:
        self.away = False
        db = s.db
        real_apply, real_engine = db.apply, s._engine

        async def apply(ops: Any, holder: str, now: Any) -> Any:
            if self.away:
                raise ConnectionError("the database is away")
            return await real_apply(ops, holder, now)

        async def engine() -> Any:
            if self.away:
                raise ConnectionError("the database is away")
            return await real_engine()

        monkeypatch.setattr(db, "apply", apply)
        monkeypatch.setattr(s, "_engine", engine)
        if isinstance(db, SqliteSettleDb):
            monkeypatch.setattr(db, "try_inline", lambda ops, holder, now=None: None)


def _logged(caplog: pytest.LogCaptureFixture, words: str) -> Any:
    async def check() -> bool:
        return any(words in m for m in caplog.messages)

    return check


async def _until(check: Any, timeout: float = SOON_S) -> bool:
    deadline = time.monotonic() + scaled(timeout)  # a fixed 5 s before flakes40
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.mark.parametrize("lease", [0, 4], ids=["reserve", "lease"])
async def test_writes_failed_past_the_last_pause_are_written_once_the_database_is_back(
    store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    lease: int,
) -> None:
    await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
    s = Settlement(
        ledger_of(store), fee_bps=500, pool_daily_budget=0, wall_clock=lambda: T0,
        settle_interval_s=3600.0, beat_s=3600.0, lease_estimates=lease, lease_idle_s=3600.0,
    )  # fmt: skip
    await s.start()
    answers = {
        "r1": Answer("r1", USER, "m", E, (PaidPart("n1", OP_A, 4_000, 200),), "aa" * 32),
        "r2": Answer("r2", USER, "m", E, (PaidPart("n1", OP_A, 1_000, 50),), "bb" * 32),
    }
    try:
        for key in answers:
            assert (await s.reserve(key, USER, "m", E)).ok
        db = Away(s, monkeypatch)
        db.away = True
        with pytest.raises(ConnectionError):
            await s.answer(answers["r1"])  # released all the same (the client has it)
        s.void("r2", USER)  # a request that failed: nothing to pay
        # past the last pause, both, still away (a fixed sleep(sum(PAUSES) + 0.5) before
        # flakes40: a loaded box may not have tried them all by then)
        for key in ["r1"] if lease else ["r1", "r2"]:  # a lease's void writes nothing
            past = f"of {key} still not written after {len(PAUSES)} tries"
            assert await _until(_logged(caplog, past)), caplog.messages
        db.away = False  # back

        async def written() -> bool:
            await s.flush()
            states = {k: v for k, v in (await _states(store)).items() if k in answers}
            return states.get("r1") == "settled" and states.get("r2") in (None, "void")

        # before the fix: the answer and the void waited for the gateway's stop
        assert await _until(written), await _states(store)
        reserved = (await s.balance(USER))[1]
        assert reserved == (4 * E if lease else 0)  # only the live lease, nothing else held
    finally:
        await s.stop()
    await books(store, answers, ["r1"], grant=GRANT, payer=USER)


async def _states(store: SqlStore) -> dict[str, str]:
    from sqlalchemy import text

    async with store.engine.connect() as conn:
        rows = await conn.execute(text("SELECT request_id, state FROM settlements WHERE part = 0"))
        return {str(r[0]): str(r[1]) for r in rows}


@pytest.mark.parametrize("lease", [0, 4], ids=["reserve", "lease"])
async def test_an_answer_not_written_when_its_gateway_is_killed_is_paid_by_its_restart(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, lease: int, tmp_path: Path
) -> None:
    """The database away, an answer served (released: the client has it and its receipt)
    whose write failed; the gateway killed before the database came back; restarted on
    the same home: the answer is paid once (found 2026-12-05: its pending row lapsed, or a
    lease's answer had no row at all; the operator was never paid, the receipt never
    matched a ledger entry)."""
    await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
    gw = _settlement(store, lease, home=tmp_path)
    await gw.start()
    answers = {
        "r1": Answer("r1", USER, "m", E, (PaidPart("n1", OP_A, 4_000, 200),), "aa" * 32),
        "r2": Answer("r2", USER, "m", E, (PaidPart("n1", OP_A, 1_000, 50),), "bb" * 32),
    }
    try:
        for key in answers:
            assert (await gw.reserve(key, USER, "m", E)).ok
        Away(gw, monkeypatch).away = True
        with pytest.raises(ConnectionError):
            await gw.answer(answers["r1"])  # released all the same
    finally:
        monkeypatch.undo()
        await crash(gw)  # killed while the database was away; r2 still in flight
    again = _settlement(store, lease, home=tmp_path)
    await again.start()  # its predecessor recovered at start, before it serves
    await again.stop()
    states = await books(store, answers, ["r1"], grant=GRANT, payer=USER)
    assert states.get("r2") in (None, "lapsed")
    assert not journals(tmp_path)  # its journal removed
    third = _settlement(store, lease, home=tmp_path)  # nothing paid again by another start
    await third.start()
    await third.stop()
    await books(store, answers, ["r1"], grant=GRANT, payer=USER)


def _settlement(store: SqlStore, lease: int, **kw: Any) -> Settlement:
    return Settlement(
        ledger_of(store), fee_bps=500, pool_daily_budget=0, wall_clock=lambda: T0,
        settle_interval_s=3600.0, beat_s=3600.0, lease_estimates=lease, lease_idle_s=3600.0,
        holder_ttl_s=3600.0, **kw,
    )  # fmt: skip


async def test_a_clean_stop_drops_its_own_unwritten_answers(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An answer whose write failed, then written (the database back) before a clean stop:
    the stop drops its line, and the next start finds nothing to record (paid once)."""
    await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
    gw = _settlement(store, 0, home=tmp_path)
    await gw.start()
    a = Answer("r1", USER, "m", E, (PaidPart("n1", OP_A, 4_000, 200),), "aa" * 32)
    try:
        assert (await gw.reserve("r1", USER, "m", E)).ok
        db = Away(gw, monkeypatch)
        db.away = True
        with pytest.raises(ConnectionError):
            await gw.answer(a)
        assert (tmp_path / f"settlement.unwritten.{gw.holder}").exists()
        db.away = False
    finally:
        await gw.stop()  # writes it once more, settles it, drops the line
    assert not journals(tmp_path)
    again = _settlement(store, 0, home=tmp_path)
    await again.start()
    await again.stop()
    await books(store, {"r1": a}, ["r1"], grant=GRANT, payer=USER)


async def test_a_live_gateway_drops_the_lines_of_answers_written_since(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found 2026-12-05: an answer's line in ``settlement.unwritten`` stayed after the
    database took it, until the gateway's stop: every answer of every outage piled up there
    for as long as the gateway ran (weeks; 1,000 a second for a 10 min outage: 600,000
    lines), and a crash's successor read the whole file into memory and wrote each again.
    Now the upkeep round drops them once none of this holder's answers waits to be written."""
    await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
    gw = _settlement(store, 0, home=tmp_path)
    await gw.start()
    a = Answer("r1", USER, "m", E, (PaidPart("n1", OP_A, 4_000, 200),), "aa" * 32)
    journal = tmp_path / f"settlement.unwritten.{gw.holder}"  # its own (durable28)
    due: list[Any] = []
    monkeypatch.setattr(gw, "_write_again", due.append)  # the pause's write, held back
    try:
        assert (await gw.reserve("r1", USER, "m", E)).ok
        db = Away(gw, monkeypatch)
        db.away = True
        with pytest.raises(ConnectionError):
            await gw.answer(a)
        assert journal.exists()
        db.away = False
        await asyncio.sleep(PAUSES[0] + 0.1)
        assert due  # its write again is due, held back here
        await gw.upkeep()  # it waits to be written: the line stays (a crash must pay it)
        assert journal.exists()
        type(gw)._write_again(gw, due.pop())

        async def settled() -> bool:
            await gw.flush()
            return (await _states(store)).get("r1") == "settled"

        assert await _until(settled)
        await gw.upkeep()
        assert not journal.exists()  # before the fix: kept until the stop
    finally:
        monkeypatch.undo()
        await gw.stop()
    await books(store, {"r1": a}, ["r1"], grant=GRANT, payer=USER)


async def test_a_failed_batchs_answers_are_journalled_with_one_sync(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found 2026-12-05: each answer of a failed batch was appended and ``fsync``-ed on its
    own, on the event loop: with leases the gateway serves through an outage at its full
    rate, and every batch of N answers stalled the loop N syncs (1 to 10 ms each on a disk)
    exactly while it had to keep serving. One write and one sync a batch now."""
    import os

    await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
    gw = _settlement(store, 0, home=tmp_path)
    await gw.start()
    answers = [
        Answer(f"r{i}", USER, "m", E, (PaidPart("n1", OP_A, 1_000, 50),), f"{i:064x}")
        for i in range(20)
    ]
    syncs: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        syncs.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    try:
        for a in answers:
            assert (await gw.reserve(a.key, USER, "m", E)).ok
        db = Away(gw, monkeypatch)
        db.away = True
        monkeypatch.setattr(os, "fsync", fsync)
        results = await asyncio.gather(*(gw.answer(a) for a in answers), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results), results
        monkeypatch.setattr(os, "fsync", real_fsync)
        journal = tmp_path / f"settlement.unwritten.{gw.holder}"  # its own (durable28)
        assert len(journal.read_text().splitlines()) == len(answers)  # each kept
        assert syncs.count(str(journal)) <= 2, syncs  # before: 20
        db.away = False
    finally:
        monkeypatch.undo()
        await gw.stop()
    await books(store, {a.key: a for a in answers}, [a.key for a in answers], grant=GRANT,
                payer=USER)  # fmt: skip
