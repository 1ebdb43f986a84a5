"""Settlement's writes that fail (``registry/settlement.py``): never raised into a request that
does not wait for them, and never leaving money reserved while the gateway lives.

On a real store (``store`` fixture: a SQLite file, and a throwaway PostgreSQL database). A
write "fails" in two ways here: it raises before anything is committed (SQLite's disk I/O
error, a locked or broken database), or it commits and then raises (PostgreSQL: the
connection dropped after the ``COMMIT``, every retry failed), so its caller cannot tell
which. Either way a void, a reservation's undo and an answer are written again later
(idempotent), and an answer that did commit is settled once, not left until the stop. A
reservation's undo is written at every pause (the reservation may commit after the first),
and an answer written again whose row lapsed meanwhile is revived or counted unpaid.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest
from sqlalchemy import text

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry import settle_upkeep
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import Answer, PaidPart, Reserve, SqliteSettleDb, Void
from LLM_Mesh.registry.settle_lease import Spend
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.waiting import SOON_S, scaled

USER = pseudonym("user", "key-1")
OP_A = operator_account("alice")
T0 = 1_796_083_200.0
E = 1000  # the estimate of every request here


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle_upkeep, "_AGAIN_S", (0.02, 0.05, 0.1))


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> Any:
        return store.engine

    return SqlLedger(engine)


async def _started(store: SqlStore, **kw: Any) -> Settlement:
    kw.setdefault("lease_idle_s", 3600.0)
    s = Settlement(
        _ledger(store), fee_bps=500, pool_daily_budget=0, wall_clock=lambda: T0,
        settle_interval_s=3600.0, beat_s=3600.0, **kw,
    )  # fmt: skip
    await s.start()
    return s


async def _grant(store: SqlStore, amount: int) -> None:
    await _ledger(store).append_one(Transfer("grant", MINT, USER, amount))


def _answer(key: str, amount: int) -> Answer:
    return Answer(key, USER, "m", E, (PaidPart("n1", OP_A, amount, amount // 20),))


def _unpaid_warnings(caplog: pytest.LogCaptureFixture, key: str) -> int:
    """How many WARNINGs said request ``key`` went unpaid."""
    return sum(
        1
        for r in caplog.records
        if r.levelname == "WARNING" and key in r.getMessage() and "unpaid" in r.getMessage()
    )


async def _states(store: SqlStore) -> dict[str, str]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT request_id, state FROM settlements"))).all()
    return {str(r[0]): str(r[1]) for r in rows}


async def _paid(store: SqlStore, key: str) -> list[tuple[str, int]]:
    entries, _ = await _ledger(store).entries(-1, 10_000)
    return [(e.kind, e.amount) for e in entries if e.request_id == key]


async def _until(check: Any, timeout: float = SOON_S) -> None:
    """Wait (the retries run on the loop) until ``await check()`` is true."""
    deadline = time.monotonic() + scaled(timeout)  # a fixed 5 s before flakes40
    while not await check():
        assert time.monotonic() < deadline, "still not written"
        await asyncio.sleep(0.02)


def _through_apply(s: Settlement, monkeypatch: pytest.MonkeyPatch, wrap: Any) -> None:
    """Every hot-path write through ``wrap(real apply)`` (SQLite: not at once on the loop)."""
    monkeypatch.setattr(s.db, "apply", wrap(s.db.apply))
    if isinstance(s.db, SqliteSettleDb):
        monkeypatch.setattr(s.db, "try_inline", lambda ops, holder, now=None: None)


def _commit_then_lose(real: Any) -> Any:
    async def apply(ops: Any, holder: str, now: Any) -> Any:
        await real(ops, holder, now)
        raise ConnectionError("the connection was lost after the commit")

    return apply


def _fail_before_commit(real: Any) -> Any:
    async def apply(ops: Any, holder: str, now: Any) -> Any:
        raise ConnectionError("the connection was lost before the commit")

    return apply


@pytest.mark.parametrize("others", [False, True], ids=["alone", "others_in_flight"])
async def test_a_void_that_cannot_be_written_now_is_not_raised_and_is_written_later(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, others: bool
) -> None:
    """A void is not awaited: it is called from a request's failure handling (the
    request's answer may be out already). A write of it that fails (SQLite at once on the
    loop, alone or in the loop iteration's batch; the writer's batch on PostgreSQL) must
    not raise into that request, nor leave the estimate reserved while the gateway lives."""
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        if others:
            assert (await s.reserve("r0", USER, "m", E)).ok
        assert (await s.reserve("r1", USER, "m", E)).ok
        fails = [1, 1]  # the first two writes of the void fail (then the database is back)
        if isinstance(s.db, SqliteSettleDb):
            real_inline = s.db.try_inline

            def broken(ops: Any, holder: str, now: Any = None) -> Any:
                if fails and any(isinstance(op, Void) for op in ops):
                    fails.pop()
                    raise sqlite3.OperationalError("disk I/O error")
                return real_inline(ops, holder, now)

            monkeypatch.setattr(s.db, "try_inline", broken)
        real_apply = s.db.apply

        async def apply(ops: Any, holder: str, now: Any) -> Any:
            if fails and any(isinstance(op, Void) for op in ops):
                fails.pop()
                raise ConnectionError("the database is away")
            return await real_apply(ops, holder, now)

        monkeypatch.setattr(s.db, "apply", apply)
        s.void("r1", USER)  # must not raise
        await asyncio.sleep(0)  # the iteration's batch (others in flight) is written
        held = E if others else 0

        async def released() -> bool:
            return (await s.balance(USER))[1] == held

        await _until(released)
        assert not fails and (await _states(store))["r1"] == "void"
    finally:
        await s.stop()


async def test_a_void_committed_but_lost_is_written_again_and_released_once(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A void that committed but whose reply was lost reads as failed and is written again
    (``_again``): the retry finds the row void and writes nothing, so the estimate is
    released once, not twice (another request's reservation stays whole). On PostgreSQL
    with the first call still running when the retry comes, the same:
    ``test_settle_db.py::test_a_void_written_again_while_the_first_still_runs_voids_once``."""
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        assert (await s.reserve("r0", USER, "m", E)).ok
        assert (await s.reserve("r1", USER, "m", E)).ok
        calls: list[int] = []

        def once(real: Any) -> Any:
            lost = _commit_then_lose(real)

            async def apply(ops: Any, holder: str, now: Any) -> Any:
                calls.append(len(ops))
                return await (lost if len(calls) == 1 else real)(ops, holder, now)

            return apply

        _through_apply(s, monkeypatch, once)
        s.void("r1", USER)

        async def written_again() -> bool:
            return len(calls) == 2 and not s._tries and not s._ops

        await _until(written_again)
        assert await s.balance(USER) == (100 * E, E)  # r0's estimate only, still reserved
        assert await _states(store) == {"r0": "pending", "r1": "void"}
    finally:
        await s.stop()
    assert await s.balance(USER) == (100 * E, 0)


async def test_a_void_of_a_row_that_does_not_exist_does_nothing(store: SqlStore) -> None:
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        s.void("nobody", USER)
        s.void("nobody", pseudonym("user", "key-2"))
        await s.flush()
        assert await s.balance(USER) == (100 * E, E)
        assert await _states(store) == {"r1": "pending"}
    finally:
        await s.stop()


@pytest.mark.parametrize("lost", [_commit_then_lose, _fail_before_commit], ids=["committed", "not"])
@pytest.mark.parametrize("lease", [0, 4], ids=["plain", "take_alone"])
async def test_a_reservation_whose_outcome_is_unknown_is_voided(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, lost: Any, lease: int
) -> None:
    """A reservation that committed but whose answer was lost reads as failed: the request
    is refused (503), and its pending row must not stay reserving the payer's balance
    until the gateway stops; it is voided (a void of no row does nothing). With leases, a
    take near the end of a balance reserves the request alone: the same."""
    await _grant(store, 2 * E)  # too little for a lease: a take reserves the request alone
    s = await _started(store, lease_estimates=lease)
    try:
        _through_apply(s, monkeypatch, lost)
        with pytest.raises(ConnectionError):
            await s.reserve("r1", USER, "m", E)
        monkeypatch.undo()

        async def released() -> bool:
            return (await s.balance(USER))[1] == 0

        await _until(released)
        assert (await _states(store)).get("r1", "void") == "void"
        assert (await s.reserve("r2", USER, "m", 2 * E)).ok  # all of it available again
    finally:
        await s.stop()


async def test_a_reservation_that_commits_after_its_void_is_voided_again(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a reservation's connection dropped while the call still ran on the
    server (waiting for the payer's row), every reconnect failed; the request is refused and
    its reservation voided, but that void comes before the call inserted the row (it finds
    none, writes nothing), and then the call commits. The void is written again at each
    later pause (a void of a void row writes nothing), so the late row is voided too, not
    left reserving the payer's money until the gateway stops (found 2026-12-03: it was).
    Simulated on both databases: the reservation is applied after the first void."""
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        voids: list[int] = []
        late: list[asyncio.Task[None]] = []

        def still_running(real: Any) -> Any:
            async def apply(ops: Any, holder: str, now: Any) -> Any:
                if any(isinstance(op, Reserve) for op in ops) and not late:

                    async def commits_late() -> None:  # once the first void was written
                        await _until(lambda: asyncio.sleep(0, bool(voids)))
                        s._ops.extend((op, None) for op in ops)  # through the writer
                        s._wake.set()

                    late.append(asyncio.create_task(commits_late()))
                    raise ConnectionError("lost; the call still runs on the server")
                done = await real(ops, holder, now)
                voids.extend(1 for op in ops if isinstance(op, Void))
                return done

            return apply

        _through_apply(s, monkeypatch, still_running)
        with pytest.raises(ConnectionError):
            await s.reserve("r1", USER, "m", E)
        await late[0]

        async def voided() -> bool:
            states = await _states(store)
            return states.get("r1") == "void" and (await s.balance(USER))[1] == 0

        await _until(voided)
        assert (await s.reserve("r2", USER, "m", 100 * E)).ok  # all of it available again
    finally:
        await s.stop()


@pytest.mark.parametrize("lost", [_commit_then_lose, _fail_before_commit], ids=["committed", "not"])
async def test_an_answer_whose_outcome_is_unknown_is_paid_once_now(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, lost: Any
) -> None:
    """An answer whose write failed (the answer is released anyway): if it committed, its
    row is answered but the settler did not know; if not, its row is still pending. Either
    way it is written again (an answer of a row no longer pending writes nothing) and
    settled exactly once while the gateway runs: nothing held, nothing paid twice."""
    await _grant(store, 100 * E)
    s = await _started(store)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        _through_apply(s, monkeypatch, lost)
        with pytest.raises(ConnectionError):
            await s.answer(_answer("r1", 400))
        monkeypatch.undo()

        async def settled() -> bool:
            await s.settle_now()
            return (await _states(store))["r1"] == "settled"

        await _until(settled)
        assert await s.balance(USER) == (100 * E - 400, 0)
        assert await _paid(store, "r1") == [("settle", 380), ("fee", 20)]
        assert s.unpaid == 0
    finally:
        await s.stop()
    assert await _paid(store, "r1") == [("settle", 380), ("fee", 20)]  # once


@pytest.mark.parametrize("lost", [_commit_then_lose, _fail_before_commit], ids=["committed", "not"])
async def test_a_spend_whose_outcome_is_unknown_is_written_again_and_settled_once(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, lost: Any
) -> None:
    """An answer from a lease (one write: its rows and the total out of the lease) whose
    write failed: written again after a pause, once (``settle_ledger.spend_again``: not if
    the failed write committed its rows), and settled exactly once either way (found
    2026-12-03: one not committed was released unpaid, neither counted nor logged: the
    operator lost the pay for compute it served). The lease goes back; nothing is held."""
    await _grant(store, 100 * E)
    s = await _started(store, lease_estimates=4)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        assert (await s.reserve("r2", USER, "m", E)).ok  # from the lease, in memory
        _through_apply(s, monkeypatch, lost)
        with pytest.raises(ConnectionError):
            await s.answer(_answer("r1", 400))
        monkeypatch.undo()
        assert await s.answer(_answer("r2", 300))  # its lease still pays the one admitted

        async def settled() -> bool:
            await s.settle_now()
            states = await _states(store)
            return states.get("r1") == "settled" and states.get("r2") == "settled"

        await _until(settled)
        s.give_back(time.monotonic() + 7200.0)
        await s.flush()
        assert await s.balance(USER) == (100 * E - 700, 0)
        assert await _paid(store, "r1") == [("settle", 380), ("fee", 20)]
        assert s.unpaid == 0
    finally:
        await s.stop()
    assert await s.balance(USER) == (100 * E - 700, 0)
    assert await _paid(store, "r1") == [("settle", 380), ("fee", 20)]  # once


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
    await _grant(store, 6 * E)
    s = await _started(store, lease_estimates=1)
    other = await _started(store)
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
        _through_apply(s, monkeypatch, _spends_away(["raise"]))
        with pytest.raises(ConnectionError):
            await s.answer(_answer("r1", 400))

        async def done() -> bool:  # not covered: unpaid; away: past the last pause
            past = any(t > len(settle_upkeep._AGAIN_S) for t in s._tries.values())
            return s.unpaid > 0 or past

        await _until(done)
    finally:
        await s.stop()
        await other.stop()
    assert s.unpaid == 1
    assert _unpaid_warnings(caplog, "r1") == 1
    assert "r1" not in await _states(store)
    assert await _paid(store, "r1") == []
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
    [(_fail_before_commit, True), (_fail_before_commit, False), (_commit_then_lose, True)],
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
    await _grant(store, 2 * E)
    s = await _started(store)
    other = await _started(store)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        _through_apply(s, monkeypatch, _lapse_then(lost, other, store, s.holder))
        with pytest.raises(ConnectionError):
            await s.answer(_answer("r1", 400))
        monkeypatch.undo()
        if not covered:  # the released estimate spent elsewhere before the retry
            assert (await other.reserve("r2", USER, "m", 2 * E - 300)).ok

        async def done() -> bool:
            await s.settle_now()
            return s.unpaid > 0 or (await _states(store))["r1"] == "settled"

        await _until(done)
        if covered:
            assert s.unpaid == 0 and (await _states(store))["r1"] == "settled"
            assert await s.balance(USER) == (2 * E - 400, 0)
            assert await _paid(store, "r1") == [("settle", 380), ("fee", 20)]
        else:
            assert s.unpaid == 1 and (await _states(store))["r1"] == "lapsed"
            assert await s.balance(USER) == (2 * E, 2 * E - 300)  # r2's reservation only
            assert await _paid(store, "r1") == []
    finally:
        await other.stop()
        await s.stop()
    assert await _paid(store, "r1") == ([("settle", 380), ("fee", 20)] if covered else [])


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
    _through_apply(s, monkeypatch, _answers_away(mode))
    with pytest.raises(ConnectionError):
        await s.answer(_answer("r1", 400))
    if when == "waiting":
        assert s._again_at  # due again in an hour
        return

    async def given_up() -> bool:
        return s._tries.get(_answer("r1", 400), 0) > len(settle_upkeep._AGAIN_S)

    await _until(given_up)
    await s.settle_now()  # the settler finds its row pending: nothing paid
    assert (await _states(store))["r1"] == "pending"


@pytest.mark.parametrize("when", ["given_up", "waiting"])
async def test_an_answer_not_written_yet_is_written_at_stop_and_paid(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A served request whose answer's writes all failed (given up after the last pause),
    or that waits for its next pause when the gateway stops, while its row is still
    pending: the stop writes it once more before its recovery voids its pending rows, so
    the operator is paid (found 2026-12-03: a given-up answer was voided at stop, the
    compute served for nothing and counted nowhere)."""
    await _grant(store, 100 * E)
    s = await _started(store)
    mode = ["raise"]
    await _answer_not_written(store, s, monkeypatch, when, mode)
    mode[0] = "ok"  # the database is back for the stop
    await s.stop()
    assert (await _states(store))["r1"] == "settled"
    assert await _paid(store, "r1") == [("settle", 380), ("fee", 20)]
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
    await _grant(store, 100 * E)
    s = await _started(store)
    s.stop_wait_s = 2.0  # each stop step: the hung write waits this long; recovery needs less
    mode = ["raise"]
    await _answer_not_written(store, s, monkeypatch, when, mode)
    mode[0] = how
    caplog.set_level("WARNING", logger="LLM_Mesh.registry.settlement")
    await asyncio.wait_for(s.stop(), 20.0)  # not held by the write that hangs
    assert s.unpaid == 1
    assert _unpaid_warnings(caplog, "r1") == 1
    assert (await _states(store))["r1"] == "void"  # the stop's recovery: nothing reserved
    assert await s.balance(USER) == (100 * E, 0)
    assert await _paid(store, "r1") == []


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
    await _grant(store, 100 * E)
    s = await _started(store)
    s.stop_wait_s, s.stop_limit_s = 0.2, 1.0
    real_close = s.db.close
    hang = asyncio.Event()  # never set

    async def hung(*_: Any, **__: Any) -> Any:
        await hang.wait()

    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        _through_apply(s, monkeypatch, lambda real: hung)
        answering = asyncio.create_task(s.answer(_answer("r1", 400)))
        await _until(lambda: _true(s._writing))  # the writer waits for the database
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
    assert (await _states(store))["r1"] == "pending"  # left to recovery (the successor's)


async def _true(value: bool) -> bool:
    return value
