"""Settlement's writes that fail (``registry/settlement.py``): never raised into a request that
does not wait for them, and never leaving money reserved while the gateway lives.

On a real store (``store`` fixture: a SQLite file, and a throwaway PostgreSQL database). A
write "fails" in two ways here: it raises before anything is committed (SQLite's disk I/O
error, a locked or broken database), or it commits and then raises (PostgreSQL: the
connection dropped after the ``COMMIT``, every retry failed), so its caller cannot tell
which. Either way a void, a reservation's undo and an answer are written again later
(idempotent), and an answer that did commit is settled once, not left until the stop. A
reservation's undo is written at every pause (the reservation may commit after the first),
and an answer written again whose row lapsed meanwhile is revived or counted unpaid."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from LLM_Mesh.core.ledger_entry import pseudonym
from LLM_Mesh.registry.settle_db import Reserve, SqliteSettleDb, Void
from LLM_Mesh.registry.store import SqlStore
from tests.registry.settlement_failure_fixtures import (
    USER,
    E,
    commit_then_lose,
    fail_before_commit,
    grant,
    quick_retries,  # noqa: F401 (autouse)
    started,
    states_of,
    through_apply,
    until,
)


@pytest.mark.parametrize("others", [False, True], ids=["alone", "others_in_flight"])
async def test_a_void_that_cannot_be_written_now_is_not_raised_and_is_written_later(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, others: bool
) -> None:
    """A void is not awaited: it is called from a request's failure handling (the
    request's answer may be out already). A write of it that fails (SQLite at once on the
    loop, alone or in the loop iteration's batch; the writer's batch on PostgreSQL) must
    not raise into that request, nor leave the estimate reserved while the gateway lives."""
    await grant(store, 100 * E)
    s = await started(store)
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

        await until(released)
        assert not fails and (await states_of(store))["r1"] == "void"
    finally:
        await s.stop()


async def test_a_void_committed_but_lost_is_written_again_and_released_once(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A void that committed but whose reply was lost reads as failed and is written again
    (``_again``): the retry finds the row void and writes nothing, so the estimate is
    released once, not twice (another request's reservation stays whole). On PostgreSQL
    with the first call still running when the retry comes, the same:
    ``test_settle_db_pg.py::test_a_void_written_again_while_the_first_still_runs_voids_once``."""
    await grant(store, 100 * E)
    s = await started(store)
    try:
        assert (await s.reserve("r0", USER, "m", E)).ok
        assert (await s.reserve("r1", USER, "m", E)).ok
        calls: list[int] = []

        def once(real: Any) -> Any:
            lost = commit_then_lose(real)

            async def apply(ops: Any, holder: str, now: Any) -> Any:
                calls.append(len(ops))
                return await (lost if len(calls) == 1 else real)(ops, holder, now)

            return apply

        through_apply(s, monkeypatch, once)
        s.void("r1", USER)

        async def written_again() -> bool:
            return len(calls) == 2 and not s._tries and not s._ops

        await until(written_again)
        assert await s.balance(USER) == (100 * E, E)  # r0's estimate only, still reserved
        assert await states_of(store) == {"r0": "pending", "r1": "void"}
    finally:
        await s.stop()
    assert await s.balance(USER) == (100 * E, 0)


async def test_a_void_of_a_row_that_does_not_exist_does_nothing(store: SqlStore) -> None:
    await grant(store, 100 * E)
    s = await started(store)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok
        s.void("nobody", USER)
        s.void("nobody", pseudonym("user", "key-2"))
        await s.flush()
        assert await s.balance(USER) == (100 * E, E)
        assert await states_of(store) == {"r1": "pending"}
    finally:
        await s.stop()


@pytest.mark.parametrize("lost", [commit_then_lose, fail_before_commit], ids=["committed", "not"])
@pytest.mark.parametrize("lease", [0, 4], ids=["plain", "take_alone"])
async def test_a_reservation_whose_outcome_is_unknown_is_voided(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, lost: Any, lease: int
) -> None:
    """A reservation that committed but whose answer was lost reads as failed: the request
    is refused (503), and its pending row must not stay reserving the payer's balance
    until the gateway stops; it is voided (a void of no row does nothing). With leases, a
    take near the end of a balance reserves the request alone: the same."""
    await grant(store, 2 * E)  # too little for a lease: a take reserves the request alone
    s = await started(store, lease_estimates=lease)
    try:
        through_apply(s, monkeypatch, lost)
        with pytest.raises(ConnectionError):
            await s.reserve("r1", USER, "m", E)
        monkeypatch.undo()

        async def released() -> bool:
            return (await s.balance(USER))[1] == 0

        await until(released)
        assert (await states_of(store)).get("r1", "void") == "void"
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
    await grant(store, 100 * E)
    s = await started(store)
    try:
        voids: list[int] = []
        late: list[asyncio.Task[None]] = []

        def still_running(real: Any) -> Any:
            async def apply(ops: Any, holder: str, now: Any) -> Any:
                if any(isinstance(op, Reserve) for op in ops) and not late:

                    async def commits_late() -> None:  # once the first void was written
                        await until(lambda: asyncio.sleep(0, bool(voids)))
                        s._ops.extend((op, None) for op in ops)  # through the writer
                        s._wake.set()

                    late.append(asyncio.create_task(commits_late()))
                    raise ConnectionError("lost; the call still runs on the server")
                done = await real(ops, holder, now)
                voids.extend(1 for op in ops if isinstance(op, Void))
                return done

            return apply

        through_apply(s, monkeypatch, still_running)
        with pytest.raises(ConnectionError):
            await s.reserve("r1", USER, "m", E)
        await late[0]

        async def voided() -> bool:
            states = await states_of(store)
            return states.get("r1") == "void" and (await s.balance(USER))[1] == 0

        await until(voided)
        assert (await s.reserve("r2", USER, "m", 100 * E)).ok  # all of it available again
    finally:
        await s.stop()
