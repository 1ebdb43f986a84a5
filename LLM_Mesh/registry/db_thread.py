"""One daemon thread that runs calls in order: a blocking database connection's own thread.

:class:`DbThread` is what ``ThreadPoolExecutor(1)`` gave
:class:`~LLM_Mesh.registry.settle_db.SqliteSettleDb` (each call a
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

:meth:`DbThread.call` awaits a call from an event loop with the interpreter's switch
interval at most :data:`SWITCH_S` (0.5 ms) while it is in flight (:func:`short_slices`),
as the PostgreSQL settler's own thread does (``settle_worker.py``): the loop's own SQLite
calls (settlement's inline commits) release the GIL, and at the default 5 ms the loop may
wait that long for it behind this thread's Python (the settler's ledger append). Measured
2026-12-05 (``benchmarks/probe_gateway_timeline.py``, docs/benchmarks.md): one request at a
time, the loop's longest stalls came right after its inline commit, some beside this
thread's calls; that the bound shortens them was not resolved on the 2-core box, where the
processes' preemption is as long.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

__all__ = ["SWITCH_S", "DbThread", "short_slices"]

SWITCH_S = 0.0005  # the interpreter's switch interval while a thread call is in flight
_slices_lock = threading.Lock()
_slices: list[Any] = [0, None]  # calls in flight under short_slices, the interval before


@contextlib.contextmanager
def short_slices() -> Iterator[None]:
    """The interpreter's switch interval at most :data:`SWITCH_S` inside; the one before
    is put back when the last of overlapping uses (any thread) ends, not before."""
    with _slices_lock:
        if _slices[0] == 0:
            _slices[1] = sys.getswitchinterval()
            sys.setswitchinterval(min(_slices[1], SWITCH_S))
        _slices[0] += 1
    try:
        yield
    finally:
        with _slices_lock:
            _slices[0] -= 1
            if _slices[0] == 0:
                sys.setswitchinterval(_slices[1])


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

    async def call(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """``fn(*args)`` here (as :meth:`submit`), awaited with :func:`short_slices`."""
        fut = self.submit(fn, *args)
        with short_slices():
            return await asyncio.wrap_future(fut)

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
