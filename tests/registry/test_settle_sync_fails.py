"""A sync of the store's log that fails (``registry/settle_durable.py``; found 2026-12-05: an
``fsync`` of ``registry.db-wal`` that raised, in the upkeep round's drop of a journal or in
the recovery of a dead holder's journal, raised out of the round: the rest of it (the pool's
daily top-up, the leases its book does not know, the late forfeits) was skipped for as long
as the sync failed, and at start the registry did not start at all).

The failure is injected (``Settlement.fsync``), never a real disk error: the journal is then
kept (its answers written again, or recovered, as before: both idempotent), the failure
logged, and the round goes on; the next sync that works drops the journal.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer
from LLM_Mesh.registry import settle_upkeep
from LLM_Mesh.registry.settle_db import Answer
from LLM_Mesh.registry.settle_ledger import balance
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.registry.crash_books import books, crash, journals, ledger_of
from tests.registry.test_settle_durable import A1, GRANT, T0, USER, E
from tests.registry.test_settle_outage import Away, _states, _until

BUDGET = 50_000
P1 = Answer("p1", POOL, "m", E, A1.parts, "bb" * 32)
DAY_S = 86_400.0


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle_upkeep, "_AGAIN_S", (0.02, 0.05, 0.1))


class Fsync:
    """The store's ``fsync``, failing (``EIO``) while ``failing``; each call counted."""

    def __init__(self) -> None:
        self.failing = False
        self.calls = 0
        self.failed = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.failing:
            self.failed += 1
            raise OSError(errno.EIO, "Input/output error (injected)")
        os.fsync(fd)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _gateway(store: SqlStore, home: Path, fsync: Fsync, clock: Clock) -> Settlement:
    s = Settlement(
        ledger_of(store), fee_bps=500, pool_daily_budget=BUDGET, wall_clock=clock,
        settle_interval_s=3600.0, beat_s=3600.0, holder_ttl_s=3600.0, home=home,
    )  # fmt: skip
    s.fsync = fsync
    return s


async def _pool(store: SqlStore) -> int:
    return (await balance(store.engine, POOL))[0]


async def _days(store: SqlStore) -> list[tuple[str, int]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(text("SELECT day, amount FROM pool_days ORDER BY day"))
        return [(str(r[0]), int(r[1])) for r in rows]


async def test_a_failed_sync_in_the_upkeep_round_keeps_the_journal_and_tops_the_pool_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A live gateway's journal of an answer written since (its drop is due), the pool's top-up
    of a new UTC day due (the pool spent a probe's price the day before), and the sync
    failing: the upkeep round tops the pool up (and does not raise), keeps the journal and
    logs the failure; once the sync works again the next round drops the journal. Before
    the fix: the round raised ``OSError`` at the drop, before the top-up: the pool stayed
    short of its budget for as long as the sync failed."""
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await store.open()
    home = tmp_path / "home"
    home.mkdir()
    fsync, clock = Fsync(), Clock()
    try:
        await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
        gw = _gateway(store, home, fsync, clock)
        await gw.start()
        try:
            assert await _pool(store) == BUDGET  # the first day's top-up, at start
            assert (await gw.reserve("p1", POOL, "m", E)).ok  # a probe the pool pays
            await gw.answer(P1)
            assert (await gw.reserve("r1", USER, "m", E)).ok
            away = Away(gw, monkeypatch)
            away.away = True
            with pytest.raises(ConnectionError):
                await gw.answer(A1)  # released all the same: journalled
            away.away = False

            async def settled() -> bool:
                await gw.flush()
                return (await _states(store)) == {"p1": "settled", "r1": "settled"}

            assert await _until(settled)
            assert await _pool(store) == BUDGET - P1.total
            clock.now = T0 + DAY_S  # a new UTC day: its top-up is due
            fsync.failing = True
            caplog.clear()
            with caplog.at_level(logging.ERROR, "LLM_Mesh.registry.settlement"):
                await gw.upkeep()  # before the fix: OSError, the top-up skipped
            assert fsync.failed == 1
            assert journals(home), "dropped without its writes on the disk"
            assert await _days(store) == [("2026-12-01", BUDGET), ("2026-12-02", P1.total)]
            assert await _pool(store) == BUDGET
            assert any("syncing" in r.getMessage() for r in caplog.records), caplog.text
            fsync.failing = False
            await gw.upkeep()
            assert not journals(home)  # the sync worked: dropped
        finally:
            monkeypatch.undo()
            await gw.stop()
        await books(store, {"r1": A1}, ["r1"], grant=GRANT, payer=USER)  # p1: the pool above
    finally:
        await store.close()


async def test_a_failed_sync_while_a_dead_holders_journal_is_recovered_does_not_stop_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway killed with an answer not written (its journal in the home); its restart
    (a new UTC day) records the answer from the journal, and the sync before the journal's
    removal fails: the start goes on (the answer settled, the day's top-up made), the
    journal kept; the next upkeep round, its sync working, finds the answer recorded and
    removes the journal: paid once. Before the fix: the start raised ``OSError``."""
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await store.open()
    home = tmp_path / "home"
    home.mkdir()
    fsync, clock = Fsync(), Clock()
    try:
        await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
        gw = _gateway(store, home, fsync, clock)
        await gw.start()
        try:
            assert (await gw.reserve("r1", USER, "m", E)).ok
            Away(gw, monkeypatch).away = True
            with pytest.raises(ConnectionError):
                await gw.answer(A1)  # released all the same
        finally:
            monkeypatch.undo()
            await crash(gw)
        assert journals(home)
        clock.now = T0 + DAY_S
        fsync.failing = True
        again = _gateway(store, home, fsync, clock)
        await again.start()  # before the fix: OSError
        try:
            assert fsync.failed >= 1
            assert journals(home)  # its answer's write not known to be on the disk: kept
            assert (await _states(store)).get("r1") == "settled"
            assert [d for d, _ in await _days(store)] == ["2026-12-01", "2026-12-02"]
            fsync.failing = False
            await again.upkeep()
            assert not journals(home)
        finally:
            await again.stop()
        await books(store, {"r1": A1}, ["r1"], grant=GRANT, payer=USER)
    finally:
        await store.close()


async def test_a_failed_sync_at_the_stop_keeps_the_journal_and_finishes_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases on; an answer journalled in an outage, then written and settled; the clean
    stop's sync (before its own journal goes) fails: the stop still gives its leases back and
    forgets its holder, the journal is left for the next process on the home (its lock let
    go), which finds the answer settled and removes it: paid once. Before the fix: the
    stop's recovery raised at the sync, its leases and holder row left to a successor."""
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await store.open()
    home = tmp_path / "home"
    home.mkdir()
    fsync, clock = Fsync(), Clock()
    try:
        await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
        gw = _gateway(store, home, fsync, clock)
        gw.lease_estimates = 4
        await gw.start()
        try:
            assert (await gw.reserve("r1", USER, "m", E)).ok
            away = Away(gw, monkeypatch)
            away.away = True
            with pytest.raises(ConnectionError):
                await gw.answer(A1)  # released all the same: journalled
            away.away = False

            async def settled() -> bool:
                await gw.flush()
                return (await _states(store)).get("r1") == "settled"

            assert await _until(settled)
        finally:
            monkeypatch.undo()
            fsync.failing = True
            await gw.stop()
        assert fsync.failed >= 1
        async with store.engine.connect() as conn:
            leases = (await conn.execute(text("SELECT holder FROM settle_leases"))).all()
            holders = (await conn.execute(text("SELECT holder FROM settle_holders"))).all()
        assert (leases, holders) == ([], [])  # before the fix: the lease and the holder left
        assert journals(home)  # not known to be on the disk: kept for the next process
        fsync.failing = False
        again = _gateway(store, home, fsync, clock)
        await again.start()
        await again.stop()
        assert not journals(home)
        await books(store, {"r1": A1}, ["r1"], grant=GRANT, payer=USER)
    finally:
        await store.close()
