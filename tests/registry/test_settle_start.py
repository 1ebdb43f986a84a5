"""A settlement's start that raises part way stops what it had started
(``registry/settle_start.py``).

Found 2026-12-07 (start40): the app records ``Settlement.stop`` only once ``start``
returned, and ``stop`` does nothing before the start's ``_started`` mark, so a start that
raised after opening its connection (a recovery failing) left the connection open (SQLite:
its thread running) and the home locked; one that raised after its loops started left them
running, and on PostgreSQL the ledger's thread too, against a store the app then closed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import LLM_Mesh.registry.settle_worker as settle_worker
import LLM_Mesh.registry.settlement as settlement
from LLM_Mesh.registry.settle_holders import HomeLock
from LLM_Mesh.registry.settle_start import stop_started
from LLM_Mesh.registry.settle_worker import LedgerThread
from LLM_Mesh.registry.store import SqlStore
from tests.registry.settlement_fixtures import make_settlement
from tests.waiting import scaled

_THREADS = ("llm-mesh-settle-db", "llm-mesh-settle-ledger")


def _running() -> list[str]:
    """The settlement's threads alive, and its tasks not done."""
    threads = [t.name for t in threading.enumerate() if t.name in _THREADS and t.is_alive()]
    tasks = [
        t.get_name() for t in asyncio.all_tasks()
        if not t.done() and t.get_name().startswith(("llm-mesh-settle", "llm-mesh-lease"))
    ]  # fmt: skip
    return threads + tasks


async def _ended(before: list[str]) -> list[str]:
    """:func:`_running` once it is ``before`` again, or at a deadline: the connection's
    thread, told to end (``SqliteSettleDb.close``: not joined), ends soon after."""
    deadline = time.monotonic() + scaled(10.0)
    while True:  # polling threads: nothing to wait on
        running = _running()
        if running == before or time.monotonic() > deadline:
            return running
        await asyncio.sleep(0.02)


class Injected(Exception):
    pass


def _raises(*_: Any, **__: Any) -> Any:
    raise Injected("injected")


@pytest.mark.parametrize("after", ["the connection", "the loops"])
async def test_a_start_that_raises_leaves_nothing_running(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: str
) -> None:
    before = _running()
    s = make_settlement(store, home=tmp_path, lease_estimates=1)
    if after == "the connection":  # the recovery fails: the connection is open by then
        monkeypatch.setattr(s, "recover", _raises)
    else:  # the lease book fails: the writer, the settler, the upkeep (and ledger thread) run
        monkeypatch.setattr(settlement, "LeaseBook", _raises)
    try:
        with pytest.raises(Injected):
            await s.start()
        assert await _ended(before) == before
        assert s._db is not None and s._db._conn is None  # type: ignore[attr-defined]
        other = HomeLock(tmp_path)  # the home's lock released
        assert other.take("h-other") == s.holder
        other.release()
        monkeypatch.undo()
        await s.start()  # run again: starts afresh
        assert s._started and _running() != before
    finally:
        await s.stop()
    assert await _ended(before) == before


def test_a_lock_released_by_a_failed_start_says_the_same_predecessor(tmp_path: Path) -> None:
    """A start run again after one that raised (and released the lock) reads its
    predecessor as the first try did, not the holder id that try wrote."""
    first = HomeLock(tmp_path)
    assert first.take("holder-a") is None
    first.release()
    lock = HomeLock(tmp_path)
    assert lock.take("holder-b") == "holder-a"
    lock.release()  # the start raised
    assert lock.take("holder-b") == "holder-a"
    lock.release()
    last = HomeLock(tmp_path)
    assert last.take("holder-c") == "holder-b"
    last.release()


async def test_a_ledger_thread_whose_engine_fails_is_not_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _running()
    monkeypatch.setattr(settle_worker, "engine_for", _raises)
    worker = LedgerThread(
        make_url(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"),
        wall_clock=lambda: 0.0, on_append=lambda: None,
    )  # fmt: skip
    with pytest.raises(Injected):
        await worker.start()
    assert await _ended(before) == before  # before: its thread running


class _Held:
    """An await that, once reached, holds until let go: ``reached`` set on arrival."""

    def __init__(self) -> None:
        self.reached, self.let_go = asyncio.Event(), asyncio.Event()

    async def hold(self) -> None:
        self.reached.set()
        await self.let_go.wait()


async def _cancel_again(task: asyncio.Task[None], held: _Held) -> None:
    """``task`` cancelled (a second time: it is undoing a failed start) once it reached
    ``held``, which then lets go; the task ends cancelled."""
    await asyncio.wait_for(held.reached.wait(), scaled(10.0))
    task.cancel()  # a Ctrl-C, the app's start timeout, during the failed start's cleanup
    await asyncio.sleep(0)
    held.let_go.set()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_failed_start_cancelled_again_while_it_closes_still_closes_and_unlocks(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second cancellation while the failed start stopped what it had started
    (``stop_started``) left the connection open (SQLite: its thread running) and the home
    locked (found 2026-12-07, files41): the cleanup now finishes, then the cancellation
    goes on. Here it lands while the connection closes (the recovery failed)."""
    before = _running()
    s = make_settlement(store, home=tmp_path, lease_estimates=1)
    held = _Held()
    made = settlement.settle_db_for

    def slow_to_close(url: str) -> Any:
        db = made(url)
        close = db.close

        async def held_close() -> None:
            await held.hold()
            await close()

        db.close = held_close  # type: ignore[method-assign]
        return db

    monkeypatch.setattr(settlement, "settle_db_for", slow_to_close)
    monkeypatch.setattr(s, "recover", _raises)
    await _cancel_again(asyncio.create_task(s.start()), held)
    assert s._db is not None and s._db._conn is None  # type: ignore[attr-defined]
    other = HomeLock(tmp_path)
    assert other.take("h-other") == s.holder  # the home's lock released
    other.release()
    assert await _ended(before) == before


class _Db:
    closed = False

    async def close(self) -> None:
        self.closed = True


async def test_stop_started_cancelled_again_while_its_loops_end_still_closes_and_unlocks(
    tmp_path: Path,
) -> None:
    """The same cancellation while ``stop_started`` waits for the cancelled loops, one of
    them taking a while to end (a write in flight)."""
    held, running = _Held(), asyncio.Event()

    async def slow_to_end() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            await held.hold()

    loop = asyncio.create_task(slow_to_end())
    await running.wait()
    db, lock = _Db(), HomeLock(tmp_path)
    assert lock.take("h-1") is None
    await _cancel_again(asyncio.create_task(stop_started([loop], None, db, lock)), held)  # type: ignore[arg-type]
    assert loop.done() and db.closed
    other = HomeLock(tmp_path)
    assert other.take("h-2") == "h-1"  # the home's lock released
    other.release()
