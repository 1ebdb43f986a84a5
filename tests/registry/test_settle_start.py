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
from LLM_Mesh.registry.settle_worker import LedgerThread
from LLM_Mesh.registry.store import SqlStore
from tests.registry.test_settlement import _settlement
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
    s = _settlement(store, home=tmp_path, lease_estimates=1)
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
