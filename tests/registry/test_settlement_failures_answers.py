"""Settlement when an answer's or a spend's write fails: an unknown outcome paid or settled once,
a spend finally not written counted unpaid, an answer written again that finds its row lapsed,
and answers not written yet at stop (written then, or counted unpaid, or the database hangs)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import text

from LLM_Mesh.registry import settle_upkeep
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settle_lease import Spend
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.registry.settlement_failure_fixtures import (
    USER,
    E,
    commit_then_lose,
    fail_before_commit,
    grant,
    ledger_of,
    quick_retries,  # noqa: F401 (autouse)
    started,
    states_of,
    through_apply,
    until,
)

OP_A = operator_account("alice")


def answer_of(key: str, amount: int) -> Answer:
    return Answer(key, USER, "m", E, (PaidPart("n1", OP_A, amount, amount // 20),))


def _unpaid_warnings(caplog: pytest.LogCaptureFixture, key: str) -> int:
    """How many WARNINGs said request ``key`` went unpaid."""
    return sum(
        1
        for r in caplog.records
        if r.levelname == "WARNING" and key in r.getMessage() and "unpaid" in r.getMessage()
    )


async def paid_to(store: SqlStore, key: str) -> list[tuple[str, int]]:
    entries, _ = await ledger_of(store).entries(-1, 10_000)
    return [(e.kind, e.amount) for e in entries if e.request_id == key]


@pytest.mark.parametrize("lost", [commit_then_lose, fail_before_commit], ids=["committed", "not"])
async def test_an_answer_whose_outcome_is_unknown_is_paid_once_now(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, lost: Any
) -> None:
    """An answer whose write failed (the answer is released anyway): if it committed, its
    row is answered but the settler did not know; if not, its row is still pending. Either
    way it is written again (an answer of a row no longer pending writes nothing) and
    settled exactly once while the gateway runs: nothing held, nothing paid twice."""
    await grant(store, 100 * E)
    s = await started(store)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        through_apply(s, monkeypatch, lost)
        with pytest.raises(ConnectionError):
            await s.answer(answer_of("r1", 400))
        monkeypatch.undo()

        async def settled() -> bool:
            await s.settle_now()
            return (await states_of(store))["r1"] == "settled"

        await until(settled)
        assert await s.balance(USER) == (100 * E - 400, 0)
        assert await paid_to(store, "r1") == [("settle", 380), ("fee", 20)]
        assert s.unpaid == 0
    finally:
        await s.stop()
    assert await paid_to(store, "r1") == [("settle", 380), ("fee", 20)]  # once


@pytest.mark.parametrize("lost", [commit_then_lose, fail_before_commit], ids=["committed", "not"])
async def test_a_spend_whose_outcome_is_unknown_is_written_again_and_settled_once(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, lost: Any
) -> None:
    """An answer from a lease (one write: its rows and the total out of the lease) whose
    write failed: written again after a pause, once (``settle_ledger.spend_again``: not if
    the failed write committed its rows), and settled exactly once either way (found
    2026-12-03: one not committed was released unpaid, neither counted nor logged: the
    operator lost the pay for compute it served). The lease goes back; nothing is held."""
    await grant(store, 100 * E)
    s = await started(store, lease_estimates=4)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        assert (await s.reserve("r2", USER, "m", E)).ok  # from the lease, in memory
        through_apply(s, monkeypatch, lost)
        with pytest.raises(ConnectionError):
            await s.answer(answer_of("r1", 400))
        monkeypatch.undo()
        assert await s.answer(answer_of("r2", 300))  # its lease still pays the one admitted

        async def settled() -> bool:
            await s.settle_now()
            states = await states_of(store)
            return states.get("r1") == "settled" and states.get("r2") == "settled"

        await until(settled)
        s.give_back(time.monotonic() + 7200.0)
        await s.flush()
        assert await s.balance(USER) == (100 * E - 700, 0)
        assert await paid_to(store, "r1") == [("settle", 380), ("fee", 20)]
        assert s.unpaid == 0
    finally:
        await s.stop()
    assert await s.balance(USER) == (100 * E - 700, 0)
    assert await paid_to(store, "r1") == [("settle", 380), ("fee", 20)]  # once


def _spends_away(mode: list[str]) -> Any:
    """Every batch with a lease's answer fails before its commit (the database away for
    it), and so does every write of it again while ``mode[0]`` is ``raise``."""

    def wrap(real: Any) -> Any:
        async def apply(ops: Any, holder: str, now: Any) -> Any:
            if any(isinstance(op, Spend) for op in ops):
                raise ConnectionError("the database is away")
            return await real(ops, holder, now)

        return apply

    return wrap


@pytest.mark.parametrize("why", ["never_written", "not_covered"])
async def test_a_spend_finally_not_written_is_counted_unpaid_and_logged(
    store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    why: str,
) -> None:
    """A lease's answer whose write failed and whose writes again all fail too (through the
    stop's last try), or find the payer unable to cover it any more: released unpaid, so
    counted in ``unpaid`` and logged at WARNING with its key (found 2026-12-03: neither),
    and nothing of it paid or held."""
    await grant(store, 6 * E)
    s = await started(store, lease_estimates=1)
    other = await started(store)
    real_spend_again = settle_upkeep.spend_again
    away = [why == "never_written"]

    async def spend_again(*args: Any) -> Any:
        if away[0]:
            raise ConnectionError("the database is away")
        return await real_spend_again(*args)

    monkeypatch.setattr(settle_upkeep, "spend_again", spend_again)
    caplog.set_level("WARNING", logger="LLM_Mesh.registry.settlement")
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        assert "r1" in s.leases.admitted  # type: ignore[union-attr]
        if why == "not_covered":  # the rest of the balance reserved elsewhere first
            left = 6 * E - (await s.balance(USER))[1]
            assert (await other.reserve("r2", USER, "m", left)).ok
        through_apply(s, monkeypatch, _spends_away(["raise"]))
        with pytest.raises(ConnectionError):
            await s.answer(answer_of("r1", 400))

        async def done() -> bool:  # not covered: unpaid; away: past the last pause
            past = any(t > len(settle_upkeep._AGAIN_S) for t in s._tries.values())
            return s.unpaid > 0 or past

        await until(done)
    finally:
        await s.stop()
        await other.stop()
    assert s.unpaid == 1
    assert _unpaid_warnings(caplog, "r1") == 1
    assert "r1" not in await states_of(store)
    assert await paid_to(store, "r1") == []
    assert await s.balance(USER) == (6 * E, 0)


async def _silence(store: SqlStore, holder: str) -> None:
    """Make ``holder``'s last heartbeat two hours old (so another's recovery takes it)."""
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE settle_holders SET beat_ms = beat_ms - 7200000 WHERE holder = :h"),
            {"h": holder},
        )


def _lapse_then(lost: Any, other: Settlement, store: SqlStore, holder: str) -> Any:
    """The answer's first write fails (``lost``: committed or not), and meanwhile its holder
    is taken for dead (the database away stalls its heartbeat too): ``other``'s recovery
    lapses its pending row, or settles the row the failed write answered."""

    def wrap(real: Any) -> Any:
        fail = lost(real)

        async def apply(ops: Any, holder_: str, now: Any) -> Any:
            if not any(isinstance(op, Answer) for op in ops):
                return await real(ops, holder_, now)
            try:
                return await fail(ops, holder_, now)
            finally:
                await _silence(store, holder)
                await other.recover()

        return apply

    return wrap


@pytest.mark.parametrize(
    ("lost", "covered"),
    [(fail_before_commit, True), (fail_before_commit, False), (commit_then_lose, True)],
    ids=["lapsed_revived", "lapsed_unpaid", "committed_settled"],
)
async def test_an_answer_written_again_that_finds_its_row_lapsed_is_revived_or_unpaid(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, lost: Any, covered: bool
) -> None:
    """An answer whose write failed is written again; meanwhile its holder was taken for dead
    and its pending row lapsed (estimate released). The retry must take a first answer's
    path: recorded after all when the payer still covers it (paid once), else counted
    unpaid and logged, never silently dropped (found 2026-12-03: it went to the settler,
    which refused the lapsed row: unpaid, uncounted). An answer the failed write did commit
    is settled by that recovery, and its retry neither revives nor counts it."""
    await grant(store, 2 * E)
    s = await started(store)
    other = await started(store)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        through_apply(s, monkeypatch, _lapse_then(lost, other, store, s.holder))
        with pytest.raises(ConnectionError):
            await s.answer(answer_of("r1", 400))
        monkeypatch.undo()
        if not covered:  # the released estimate spent elsewhere before the retry
            assert (await other.reserve("r2", USER, "m", 2 * E - 300)).ok

        async def done() -> bool:
            await s.settle_now()
            return s.unpaid > 0 or (await states_of(store))["r1"] == "settled"

        await until(done)
        if covered:
            assert s.unpaid == 0 and (await states_of(store))["r1"] == "settled"
            assert await s.balance(USER) == (2 * E - 400, 0)
            assert await paid_to(store, "r1") == [("settle", 380), ("fee", 20)]
        else:
            assert s.unpaid == 1 and (await states_of(store))["r1"] == "lapsed"
            assert await s.balance(USER) == (2 * E, 2 * E - 300)  # r2's reservation only
            assert await paid_to(store, "r1") == []
    finally:
        await other.stop()
        await s.stop()
    assert await paid_to(store, "r1") == ([("settle", 380), ("fee", 20)] if covered else [])


def _answers_away(mode: list[str]) -> Any:
    """Every write with an answer fails before its commit while ``mode[0]`` is ``raise``
    (the database away), or never returns while it is ``hang`` (a database that stopped
    answering); ``ok``: written. Other writes go through."""

    def wrap(real: Any) -> Any:
        async def apply(ops: Any, holder: str, now: Any) -> Any:
            if any(isinstance(op, Answer) for op in ops) and mode[0] != "ok":
                if mode[0] == "hang":
                    await asyncio.Event().wait()
                raise ConnectionError("the database is away")
            return await real(ops, holder, now)

        return apply

    return wrap


async def _answer_not_written(
    store: SqlStore, s: Settlement, monkeypatch: pytest.MonkeyPatch, when: str, mode: list[str]
) -> None:
    """r1 reserved, then its answer's first write fails: ``waiting`` for its next pause (an
    hour off), or ``given_up`` (every pause passed, each write failed: written again at the
    last pause's interval since 2026-12-05, before that given up until the stop)."""
    if when == "waiting":
        monkeypatch.setattr(settle_upkeep, "_AGAIN_S", (3600.0,))
    assert (await s.reserve("r1", USER, "m", E)).ok
    through_apply(s, monkeypatch, _answers_away(mode))
    with pytest.raises(ConnectionError):
        await s.answer(answer_of("r1", 400))
    if when == "waiting":
        assert s._again_at  # due again in an hour
        return

    async def given_up() -> bool:
        return s._tries.get(answer_of("r1", 400), 0) > len(settle_upkeep._AGAIN_S)

    await until(given_up)
    await s.settle_now()  # the settler finds its row pending: nothing paid
    assert (await states_of(store))["r1"] == "pending"


@pytest.mark.parametrize("when", ["given_up", "waiting"])
async def test_an_answer_not_written_yet_is_written_at_stop_and_paid(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A served request whose answer's writes all failed (given up after the last pause),
    or that waits for its next pause when the gateway stops, while its row is still
    pending: the stop writes it once more before its recovery voids its pending rows, so
    the operator is paid (found 2026-12-03: a given-up answer was voided at stop, the
    compute served for nothing and counted nowhere)."""
    await grant(store, 100 * E)
    s = await started(store)
    mode = ["raise"]
    await _answer_not_written(store, s, monkeypatch, when, mode)
    mode[0] = "ok"  # the database is back for the stop
    await s.stop()
    assert (await states_of(store))["r1"] == "settled"
    assert await paid_to(store, "r1") == [("settle", 380), ("fee", 20)]
    assert await s.balance(USER) == (100 * E - 400, 0)
    assert s.unpaid == 0


@pytest.mark.parametrize("how", ["raise", "hang"])
@pytest.mark.parametrize("when", ["given_up", "waiting"])
async def test_an_answer_still_not_written_at_stop_is_counted_unpaid_and_logged(
    store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    when: str,
    how: str,
) -> None:
    """The same answer, and its write at stop fails too (the database still away), or never
    returns: the stop ends all the same (its wait is bounded: ``stop_wait_s``), and the
    answer is counted in ``unpaid`` and logged at WARNING with its key, not voided
    silently (found 2026-12-03: voided, uncounted; a write that hung held the stop)."""
    await grant(store, 100 * E)
    s = await started(store)
    s.stop_wait_s = 2.0  # each stop step: the hung write waits this long; recovery needs less
    mode = ["raise"]
    await _answer_not_written(store, s, monkeypatch, when, mode)
    mode[0] = how
    caplog.set_level("WARNING", logger="LLM_Mesh.registry.settlement")
    await asyncio.wait_for(s.stop(), 20.0)  # not held by the write that hangs
    assert s.unpaid == 1
    assert _unpaid_warnings(caplog, "r1") == 1
    assert (await states_of(store))["r1"] == "void"  # the stop's recovery: nothing reserved
    assert await s.balance(USER) == (100 * E, 0)
    assert await paid_to(store, "r1") == []


async def test_a_stop_on_a_database_that_hangs_returns_and_counts_the_answer_unpaid(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database stops answering (every call hangs) while an answer's write is in the
    writer: the stop must still return (each of its steps bounded by ``stop_wait_s``, all
    by ``stop_limit_s``: the writer's batch, the drain, the answers' last write, settling
    and recovery, the rows' read, the connection's close), leave what it could not write
    to recovery, and count the served answer unpaid, logged with its key (found
    2026-12-03: the drain, settling, recovery and the close were not bounded, and a hung
    database held the gateway's shutdown for ever)."""
    await grant(store, 100 * E)
    s = await started(store)
    s.stop_wait_s, s.stop_limit_s = 0.2, 1.0
    real_close = s.db.close
    hang = asyncio.Event()  # never set

    async def hung(*_: Any, **__: Any) -> Any:
        await hang.wait()

    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        through_apply(s, monkeypatch, lambda real: hung)
        answering = asyncio.create_task(s.answer(answer_of("r1", 400)))
        await until(lambda: _true(s._writing))  # the writer waits for the database
        monkeypatch.setattr(s, "_engine", hung)  # settling, recovery, row reads
        monkeypatch.setattr(s.db, "close", hung)
        caplog.set_level("WARNING", logger="LLM_Mesh.registry.settlement")
        stopping = asyncio.create_task(s.stop())
        await asyncio.wait({stopping}, timeout=20.0)
        assert stopping.done(), "the stop is held by the database"  # returned
        stopping.result()
        with pytest.raises(RuntimeError):
            await answering  # the answer is released (unpaid), not held either
        assert s.unpaid == 1
        assert _unpaid_warnings(caplog, "r1") == 1
    finally:
        hang.set()  # (a stop still held, before the fix, is let go)
        monkeypatch.undo()
        await real_close()
    assert (await states_of(store))["r1"] == "pending"  # left to recovery (the successor's)


async def _true(value: bool) -> bool:
    return value
