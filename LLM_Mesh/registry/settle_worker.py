"""The settler's ledger appends on a thread of their own, with their own event loop and engine.

Used on PostgreSQL; on SQLite the settler appends synchronously on settlement's own
``sqlite3`` connection instead (``registry/settle_sqlite.py``).

A ledger append holds the database's write lock (SQLite) or the payers' balance rows
(PostgreSQL) from its first statement to its commit. On the gateway's event loop, every
statement of the append is an ``await`` between which the gateway's requests run, so the
append's transaction (and the lock it holds, which each request's reservation needs)
would last as long as the requests it lets through. On a loop of its own, an append runs
back to back: its lock is held only as long as the append itself takes.

:class:`LedgerThread` opens a second engine on the ledger's database (same URL; SQLite's
``busy_timeout`` and, on WAL, ``synchronous=NORMAL`` as the store sets them) and a :class:`~LLM_Mesh.registry.ledger.SqlLedger`
on it; :meth:`LedgerThread.call` runs a coroutine there and awaits its result from the
gateway's loop. The entries it appends are announced to the gateway's checkpointer
(``on_append``, called back on the gateway's loop). While an append runs here the
interpreter's switch interval is 0.5 ms (:func:`_short_slices`): the gateway's own SQLite
calls release the GIL, and with the default 5 ms they would queue that long behind this
thread's Python work to get it back.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.pg_connect import engine_for

__all__ = ["LedgerThread"]

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """As the store's connections: wait for the write lock; on WAL, no fsync per commit."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


SWITCH_S = 0.0005  # the interpreter's switch interval while an append runs here


async def _short_slices(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` with the interpreter's switch interval at :data:`SWITCH_S`: the gateway's
    thread waits at most that long for the GIL behind this thread's Python work (instead of
    the default 5 ms after each of its own SQLite calls, which release it)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_S))
    try:
        return await coro
    finally:
        sys.setswitchinterval(before)


class LedgerThread:
    """See the module docstring. ``start`` and ``stop`` from the gateway's loop."""

    def __init__(
        self,
        url: URL,
        *,
        wall_clock: Callable[[], float],
        on_append: Callable[[], Callable[[int], None] | None],
    ) -> None:
        self.url = url
        self.wall_clock = wall_clock
        self._on_append = on_append  # the gateway ledger's callback, read when it fires
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._home: asyncio.AbstractEventLoop | None = None
        self._engine: AsyncEngine | None = None
        self.ledger: SqlLedger | None = None

    async def start(self) -> None:
        self._home = asyncio.get_running_loop()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="llm-mesh-settle-ledger", daemon=True
        )
        self._thread.start()
        try:
            await self.call(self._open())
        except BaseException:  # (its engine not made: found 2026-12-07, start40)
            await self.stop()  # the thread is not left running
            raise

    async def _open(self) -> None:
        # pre-pinged at checkout as the store's engine (store.py): a connection PostgreSQL
        # dropped is replaced, not failed on (found 2026-12-07, replica41)
        postgres = make_url(self.url).get_backend_name() == "postgresql"
        engine = engine_for(self.url, pool_pre_ping=postgres)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        self._engine = engine

        async def get_engine() -> AsyncEngine:
            return engine

        self.ledger = SqlLedger(get_engine, wall_clock=self.wall_clock, on_append=self._notify)

    def _notify(self, size: int) -> None:
        callback, home = self._on_append(), self._home
        if callback is not None and home is not None:
            home.call_soon_threadsafe(callback, size)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the thread's loop; its result here."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the settlement's ledger thread is not running")
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(_short_slices(coro), self._loop)
        )

    async def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        engine, self._engine = self._engine, None
        if engine is not None:
            await self.call(engine.dispose())
        self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 10.0)
        loop.close()
