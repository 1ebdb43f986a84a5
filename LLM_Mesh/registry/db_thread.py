"""One daemon thread that runs calls in order: a blocking database connection's own thread.

:class:`DbThread` is what ``ThreadPoolExecutor(1)`` gave
:class:`~LLM_Mesh.registry.settle_db_sqlite.SqliteSettleDb` (each call a
``concurrent.futures.Future``, run in submission order, a call cancelled before it starts
never run), with one difference: its thread is a daemon, and nothing joins it at exit.

Why: a call can hang for good in its thread (a SQLite file on a disk or network share
that stopped answering). Settlement's stop abandons it after ``stop_wait_s``
(``registry/settlement.py``), the connection's close queued behind it never runs, and
the process must still exit. A ``ThreadPoolExecutor``'s workers are not daemons, and
``concurrent.futures`` joins every one at interpreter exit: the registry stopped, and
its process never exited (found 2026-12-03). An abandoned call's transaction is then
cut off as by a crash, which SQLite's journal is for; the call's result is lost the same
way an abandoned call's always was.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["DbThread"]

_Call = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...]]


class DbThread:
    """Calls run one at a time, in order, on one daemon thread named ``name``."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._closed = False
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        """``fn(*args)`` after the calls submitted before it; its future (as an executor's:
        ``asyncio.wrap_future`` awaits it)."""
        if self._closed:
            raise RuntimeError("the database thread is shut down")
        fut: Future[Any] = Future()
        self._calls.put((fut, fn, args))
        return fut

    def shutdown(self, wait: bool = True) -> None:
        """No more calls; the thread ends after those queued (``wait``: joined)."""
        self._closed = True
        self._calls.put(None)
        if wait:
            self.thread.join()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            fut, fn, args = call
            if not fut.set_running_or_notify_cancel():  # cancelled before it ran
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # the caller's to see, as an executor's
                fut.set_exception(exc)
