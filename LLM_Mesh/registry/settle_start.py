"""A settlement's start that raises part way stops what it had started first
(:class:`SettleStart`, a base of ``Settlement``; :func:`stop_started`).

``Settlement.start`` opens its connection (SQLite: a thread of its own), takes the home's
lock, starts the ledger's thread (PostgreSQL) and its loops, then marks itself started.
Its ``stop`` does nothing before that mark, and the app records the stop only once the
start returned (``app_stops.Stops``), so a start that raised after one of those (a
recovery or the pool's top-up failing, a thread whose engine could not be made) left the
connection open, the thread running, the home locked, and past the mark its loops running
against a store the app then closed (found 2026-12-07, start40). Now it stops them before
it raises; a start run again (``start_retry.StartRetry``) opens them afresh, and reads its
predecessor on the home as the first try did (``settle_holders.HomeLock.take``). Cancelled
again while it stops them (found 2026-12-07, files41: the connection was left open and the
home locked), the stop still finishes, then the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from LLM_Mesh.registry.settle_db import SettleDb
from LLM_Mesh.registry.settle_holders import HomeLock
from LLM_Mesh.registry.settle_worker import LedgerThread

__all__ = ["SettleStart", "stop_started"]

log = logging.getLogger("LLM_Mesh.registry.settlement")


async def stop_started(
    tasks: Sequence[asyncio.Task[None] | None],
    worker: LedgerThread | None,
    db: SettleDb | None,
    lock: HomeLock | None,
) -> None:
    """The loops cancelled, the ledger's thread stopped, the connection closed and the
    home's lock released, each whatever the others did (a failure logged, never raised:
    the start's own error is the one said). Cancelled again meanwhile (a Ctrl-C, a start's
    timeout, while it waits for the loops to end or the connection to close), it still
    finishes, then raises ``CancelledError`` (found 2026-12-07, files41: the connection
    was left open, the ledger's thread running and the home locked)."""
    undo = asyncio.ensure_future(_stop(tasks, worker, db, lock))
    cancelled = False
    while True:
        try:
            await asyncio.shield(undo)
            break
        except asyncio.CancelledError:
            if undo.done():  # finished just now, or itself cancelled (the loop ending)
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


async def _stop(
    tasks: Sequence[asyncio.Task[None] | None],
    worker: LedgerThread | None,
    db: SettleDb | None,
    lock: HomeLock | None,
) -> None:
    """:func:`stop_started`'s work; the lock released whatever ends it."""
    try:
        started = [t for t in tasks if t is not None]
        for task in started:
            task.cancel()
        if started:
            await asyncio.wait(started)
        for what, part in (("the ledger thread", worker), ("its connection", db)):
            if part is None:
                continue
            try:
                await (part.stop() if isinstance(part, LedgerThread) else part.close())
            except Exception:
                log.exception("settlement: a start that failed could not stop %s", what)
    finally:
        if lock is not None:
            lock.release()


class SettleStart:
    """``Settlement.start``: its steps (``Settlement._start``) run, and, when one raises,
    what they had started stopped before the error goes on (module docstring)."""

    _started: bool
    _tasks: list[asyncio.Task[None]]
    _writer: asyncio.Task[None] | None
    _worker: LedgerThread | None
    _db: SettleDb | None
    _home_lock: HomeLock | None

    async def _start(self) -> None:  # pragma: no cover - Settlement's
        raise NotImplementedError

    async def start(self) -> None:
        """Open the connection, register this holder, recover the dead (a predecessor on
        this home at once), top the pool up, start the writer, settler and upkeep; one step
        that raises: what the others started is stopped, then it raises."""
        if self._started:
            return
        try:
            await self._start()
        except BaseException:
            self._started, tasks, worker = False, [*self._tasks, self._writer], self._worker
            self._tasks, self._writer, self._worker = [], None, None
            await stop_started(tasks, worker, self._db, self._home_lock)
            raise
