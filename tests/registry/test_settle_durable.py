"""Settlement's writes on the disk (``registry/settle_durable.py``; found 2026-12-05: on
SQLite, ``synchronous=NORMAL``, a journal of answers not written was dropped as soon as its
answer's write had committed, so a power cut after the drop rolled the write back and left
nothing to redo it; and an answer released with its receipt was on the disk only at the
log's next checkpoint, up to a minute later at low traffic).

A power cut cannot be made in a test; its order can be checked. The store's ``fsync`` is
injected (``Settlement.fsync``): :class:`Disk` records each sync and keeps a copy of the
database and its write-ahead log as they were when it ran, "what is on the disk". A power
cut puts those copies back (everything since the last sync is lost, as a real one may lose
it) and a new process starts on the same home.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry import settle_durable, settle_journal, settle_upkeep
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settle_ledger import balance as settle_balance
from LLM_Mesh.registry.settle_ledger import settle, spend_again
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.registry.crash_books import books, crash, journals, ledger_of
from tests.registry.test_settle_outage import Away, _states, _until

USER = pseudonym("user", "key-unwritten")
OP_A = operator_account("alice")
T0 = 1_796_083_200.0
GRANT = 1_000_000
E = 10_000
A1 = Answer("r1", USER, "m", E, (PaidPart("n1", OP_A, 4_000, 200),), "aa" * 32)


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle_upkeep, "_AGAIN_S", (0.02, 0.05, 0.1))


class Disk:
    """The store's file as it is on the disk: a copy of ``registry.db`` and its log taken
    at each sync of the log (``events``: what happened, in order)."""

    def __init__(self, db: Path, events: list[str]) -> None:
        self.db, self.events = db, events
        self.kept: dict[str, bytes | None] = {}

    def fsync(self, fd: int) -> None:
        os.fsync(fd)
        self.snapshot()
        self.events.append("sync")

    def snapshot(self) -> None:
        for name in (self.db.name, self.db.name + "-wal"):
            path = self.db.with_name(name)
            self.kept[name] = path.read_bytes() if path.exists() else None

    def power_cut(self) -> None:
        """Every file of the store back to its last sync (the processes are gone)."""
        self.db.with_name(self.db.name + "-shm").unlink(missing_ok=True)
        for name, data in self.kept.items():
            path = self.db.with_name(name)
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)


def _settlement(store: SqlStore, home: Path, disk: Disk, every: float = 3600.0) -> Settlement:
    s = Settlement(
        ledger_of(store), fee_bps=500, pool_daily_budget=0, wall_clock=lambda: T0,
        settle_interval_s=every, beat_s=3600.0, holder_ttl_s=3600.0, home=home,
    )  # fmt: skip
    s.fsync = disk.fsync
    return s


class Site:
    """One registry's machine: its SQLite store (``db``, open in ``store``) as it is on the
    disk (``disk``), its home, and what happened, in order (``events``)."""

    def __init__(self, tmp_path: Path) -> None:
        self.db, self.home = tmp_path / "registry.db", tmp_path / "home"
        self.home.mkdir()
        self.events: list[str] = []
        self.disk = Disk(self.db, self.events)
        self.store = SqlStore(f"sqlite:///{self.db}")

    async def started(self, every: float = 3600.0) -> Settlement:
        """``USER`` granted ``GRANT``, then a settlement on the store, started."""
        await ledger_of(self.store).append_one(Transfer("grant", MINT, USER, GRANT))
        gw = _settlement(self.store, self.home, self.disk, every)
        await gw.start()
        return gw

    async def power_cut_then_restart_pays_a1_once(self) -> None:
        """The power cut (the store closed first: the processes are gone), then a new
        process on the same home, which recovers its predecessor before it serves: ``A1``
        paid once."""
        self.disk.power_cut()
        after = SqlStore(f"sqlite:///{self.db}")
        await after.open()
        try:
            again = _settlement(after, self.home, self.disk)
            await again.start()
            await again.stop()
            await books(after, {"r1": A1}, ["r1"], grant=GRANT, payer=USER)
        finally:
            await after.close()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    at = Site(tmp_path)
    await at.store.open()
    try:
        yield at
    finally:
        await at.store.close()  # idempotent: a test may have closed it for its power cut


def _record_journal(monkeypatch: pytest.MonkeyPatch, events: list[str]) -> None:
    add, remove = settle_journal.OwnJournal.add, settle_journal.OwnJournal.remove

    def recorded_add(self: Any, *us: Any) -> None:
        add(self, *us)
        events.append("journal")

    def recorded_remove(self: Any) -> None:
        if self.kept:
            events.append("drop")
        remove(self)

    monkeypatch.setattr(settle_journal.OwnJournal, "add", recorded_add)
    monkeypatch.setattr(settle_journal.OwnJournal, "remove", recorded_remove)


async def _served_through_an_outage(
    store: SqlStore,
    gw: Settlement,
    monkeypatch: pytest.MonkeyPatch,
    events: list[str],
    disk: Disk | None = None,
) -> None:
    """``A1`` reserved (on the disk at once with ``disk``: a checkpoint of the log), its
    answer's write failed (journalled), then written and settled once the database is
    back."""
    assert (await gw.reserve("r1", USER, "m", E)).ok
    if disk is not None:
        disk.snapshot()
    away = Away(gw, monkeypatch)
    away.away = True
    with pytest.raises(ConnectionError):
        await gw.answer(A1)  # released all the same: the client holds its receipt
    away.away = False

    async def settled() -> bool:
        await gw.flush()
        return (await _states(store)).get("r1") == "settled"

    assert await _until(settled)
    events.append("written")


@pytest.mark.parametrize("drop", ["upkeep", "stop"])
async def test_a_journal_is_dropped_only_after_the_log_holding_its_write_is_synced(
    site: Site, monkeypatch: pytest.MonkeyPatch, drop: str
) -> None:
    """The order: the journal's drop (a live holder's upkeep round, or a clean stop) after a
    sync that ran once the answer was written. Before the fix: no sync between "written"
    and "drop"."""
    events = site.events
    gw = await site.started()
    _record_journal(monkeypatch, events)
    try:
        await _served_through_an_outage(site.store, gw, monkeypatch, events)
        if drop == "upkeep":
            await gw.upkeep()
    finally:
        await gw.stop()
    assert "drop" in events and not journals(site.home), events
    written, dropped = events.index("written"), events.index("drop")
    assert "sync" in events[written:dropped], events  # before the fix: none
    await books(site.store, {"r1": A1}, ["r1"], grant=GRANT, payer=USER)


async def test_a_power_cut_after_the_journal_is_dropped_loses_no_payment(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer written and settled once the database is back, its journal dropped by the
    upkeep round, then the power cut (only what was synced is left) and a new process on
    the same home: the answer is paid once. Before the fix the journal went with no sync:
    the cut rolled the store back to the reservation (on the disk since a checkpoint) and the
    restart lapsed it, the answer never paid."""
    gw = await site.started()
    try:
        await _served_through_an_outage(site.store, gw, monkeypatch, site.events, site.disk)
        await gw.upkeep()
        assert not journals(site.home)  # dropped: from now on only the store can pay it
    finally:
        monkeypatch.undo()
        await crash(gw)  # the power cut: the process gone with the machine
        await site.store.close()
    await site.power_cut_then_restart_pays_a1_once()
    shutil.rmtree(site.home)


async def test_a_dead_holders_journal_is_removed_only_after_its_answers_are_synced(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway killed with an answer not written; its restart records the answer from the
    journal (``revive``) and removes the journal: a sync must run after the answer was
    recorded and while the journal is still there (before the fix: none)."""
    events = site.events
    gw = await site.started()
    try:
        assert (await gw.reserve("r1", USER, "m", E)).ok
        Away(gw, monkeypatch).away = True
        with pytest.raises(ConnectionError):
            await gw.answer(A1)  # released all the same
    finally:
        monkeypatch.undo()
        await crash(gw)
    [journal] = journals(site.home)
    real_fsync, real_revive = site.disk.fsync, settle_upkeep.revive

    def fsync(fd: int) -> None:
        real_fsync(fd)
        events.append("sync, journal kept" if journal.exists() else "sync")

    async def revive(*args: Any) -> bool:
        done = await real_revive(*args)
        events.append("recorded")
        return done

    monkeypatch.setattr(settle_upkeep, "revive", revive)
    again = _settlement(site.store, site.home, site.disk)
    again.fsync = fsync
    await again.start()
    await again.stop()
    assert not journals(site.home)
    recorded = events.index("recorded")
    assert "sync, journal kept" in events[recorded:], events  # before the fix: none
    await books(site.store, {"r1": A1}, ["r1"], grant=GRANT, payer=USER)


async def test_the_settler_syncs_the_log_once_an_answer_is_written_then_a_power_cut_keeps_it(
    site: Site,
) -> None:
    """An answer released (no outage): the settler's next round settles it and syncs the
    log, and not again while nothing is written; a power cut after that round and a restart
    on the same home: the answer is paid. Before the fix nothing synced the log until its
    checkpoint (300 commits) or the ledger's (60 s): the cut lost the answer's row and its
    entries, and the receipt the client holds matched nothing."""
    store, events = site.store, site.events
    gw = await site.started(every=0.02)
    site.disk.snapshot()  # what was on the disk before the request (a checkpoint of the log)
    try:
        assert (await gw.reserve("r1", USER, "m", E)).ok
        await gw.answer(A1)  # released: the client holds its receipt
        events.append("written")

        async def settled() -> bool:
            return (await _states(store)).get("r1") == "settled"

        assert await _until(settled)

        async def synced() -> bool:  # a round after it syncs the log (in a thread: waited
            # for, not given 0.2 s; a loaded disk's fsync took longer: CI flake, flake33)
            return "sync" in events[events.index("written") :]

        assert await _until(synced), events  # before the fix: none

        async def idle() -> bool:  # rounds with nothing written: no more syncs
            syncs = events.count("sync")
            await asyncio.sleep(0.15)
            return events.count("sync") == syncs

        assert await _until(idle), events
    finally:
        await crash(gw)  # the power cut: the process gone with the machine
        await store.close()
    await site.power_cut_then_restart_pays_a1_once()


async def test_a_log_written_in_the_tick_of_its_stat_is_synced_again(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's times come from a coarse clock: a write in the tick of the stat before a
    sync may leave the log's size and time as they were, unsynced. So a log whose time is
    that recent is synced again at the next round; one older is not (nothing written)."""
    events = site.events
    gw = _settlement(site.store, site.home, site.disk)  # rounds by hand
    await gw.start()
    try:
        mtime = os.stat(site.db.with_name("registry.db-wal")).st_mtime_ns
        monkeypatch.setattr(settle_durable, "time", SimpleNamespace(time_ns=lambda: mtime + 10**6))
        await gw._sync_written()
        await gw._sync_written()
        assert events.count("sync") == 2  # written in the stat's tick: synced again
        monkeypatch.setattr(settle_durable, "time", SimpleNamespace(time_ns=lambda: mtime + 10**9))
        await gw._sync_written()
        await gw._sync_written()
        assert events.count("sync") == 3  # older: once, then nothing changed
    finally:
        monkeypatch.undo()
        await gw.stop()


@pytest.mark.parametrize("lease", [0, 4], ids=["reserve", "lease"])
async def test_a_journalled_answer_whose_reservation_the_power_cut_lost_is_paid_once(
    site: Site, monkeypatch: pytest.MonkeyPatch, lease: int
) -> None:
    """The reservation made (not synced yet: the settler's round had not come), the answer's
    write failed (released, journalled: the journal is synced at once), then the power cut:
    the store comes back without the reservation (a lease's take, or the request's pending
    row), the journal with the answer. The restart on the home pays it once. Before the
    fix (``reserve``): recovery's ``revive`` found no lapsed row to record the answer on,
    the answer was dropped with its journal: `r1 delivered, row None`."""
    await ledger_of(site.store).append_one(Transfer("grant", MINT, USER, GRANT))
    gw = _settlement(site.store, site.home, site.disk)
    gw.lease_estimates = lease
    await gw.start()
    site.disk.snapshot()  # the grant and the holder on the disk (a checkpoint of the log)
    try:
        assert (await gw.reserve("r1", USER, "m", E)).ok  # committed, not synced
        Away(gw, monkeypatch).away = True
        with pytest.raises(ConnectionError):
            await gw.answer(A1)  # released all the same: the client holds its receipt
        assert journals(site.home)
        assert "sync" not in site.events  # nothing synced the reservation
    finally:
        monkeypatch.undo()
        await crash(gw)  # the power cut: the process gone with the machine
        await site.store.close()
    await site.power_cut_then_restart_pays_a1_once()
    assert not journals(site.home)


async def test_an_answer_written_again_after_its_rows_were_pruned_is_not_paid_twice(
    tmp_path: Path,
) -> None:
    """``spend_again`` (a lease's answer written again, and since the fix above a journalled
    answer whose row is gone) inserts the answer's rows when the request has none: a request
    paid long ago whose rows retention deleted (``prune_settlements``) has none either, and
    its entries are in the ledger. Before the fix: ``"answered"``, its rows written again
    and then settled: paid twice."""
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await store.open()
    home = tmp_path / "home"
    home.mkdir()
    try:
        await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
        gw = _settlement(store, home, Disk(tmp_path / "registry.db", []))
        await gw.start()
        try:
            assert (await gw.reserve("r1", USER, "m", E)).ok
            await gw.answer(A1)
            await gw.flush()
        finally:
            await gw.stop()
        async with store.engine.begin() as conn:  # retention, 400 days later
            await conn.execute(text("DELETE FROM settlements WHERE request_id = 'r1'"))
        now = datetime.now(timezone.utc)
        assert await spend_again(store.engine, A1, "h-later", now) == "settled"
        assert await settle(ledger_of(store), [A1], now) == 0
        assert await _states(store) == {}  # nothing written again
        balance, reserved = await settle_balance(store.engine, USER)
        assert (balance, reserved) == (GRANT - A1.total, 0)  # paid once
    finally:
        await store.close()
