"""The registry process's stop, bounded: SIGTERM/SIGINT → exit within ``registry_shutdown_s``.

:func:`run_bounded` runs uvicorn's server as ``uvicorn.run`` does, but its signal handler
also arms a :class:`StopWatchdog`: a daemon thread that, if the process is still alive
``registry_shutdown_s`` (``LLM_MESH_REGISTRY_SHUTDOWN_S``, default 80 s) after the first
signal, logs one WARNING naming what is still running (each asyncio task's chain of awaits,
the threads the interpreter would join at exit: ``core/shutdown.overdue_warning``), flushes
every log handler and exits with status 70.

Why: a store call hung for good in a database thread (aiosqlite's, for SQLAlchemy on
SQLite: a file whose disk stopped answering) holds the stop for ever. Settlement's stop
steps are bounded, but ``asyncio.wait_for`` waits for the step it cancelled, and that
step's cancellation closes the connection through the same hung thread; aiosqlite's
close (0.22.1) waits in its ``finally`` for that thread, which is not a daemon, and the
interpreter joins it at exit. A supervisor would SIGKILL the process (systemd, after
``TimeoutStopSec``), losing the log's last lines and any word of what was stuck. A clean
stop never meets the bound (its steps end; the default is over settlement's 60 s stop
limit); the watchdog is a daemon thread and dies with a process that exits on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from LLM_Mesh.core.shutdown import STOP_OVERDUE_STATUS, overdue_warning
from LLM_Mesh.server_process import SignalServer, flush_logs

__all__ = ["StopWatchdog", "run_bounded"]

log = logging.getLogger("LLM_Mesh.registry.stop")

#: uvicorn's exit status when the app did not start (``uvicorn.run``'s)
_STARTUP_FAILURE = 3


def _exit_now(status: int) -> None:  # pragma: no cover - the process ends here
    # os._exit, not sys.exit: the main thread is the one stuck (in the event loop behind a
    # hung step, or joining a hung non-daemon thread at exit), so nothing can unwind it; and
    # what a clean exit would still do (join that thread, run atexit) cannot finish. The
    # warning has been logged and every handler flushed before this: nothing that could
    # still be written is lost.
    os._exit(status)


class StopWatchdog:
    """Exits the process ``bound_s`` after :meth:`arm`, unless it has exited by then.

    ``exit`` (default :func:`os._exit`) and ``loop`` (whose tasks the warning names; by
    default the loop running where :meth:`arm` is called, if any) are injected for tests.
    """

    def __init__(
        self,
        bound_s: float,
        *,
        exit: Callable[[int], None] = _exit_now,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not bound_s > 0:
            raise ValueError(f"a stop bound is positive, got {bound_s!r}")
        self.bound_s = bound_s
        self._exit = exit
        self._loop = loop
        self._signal_name = ""
        self._disarmed = threading.Event()
        self.thread: threading.Thread | None = None

    def arm(self, signum: int) -> None:
        """The stop began (signal ``signum``); the first call only starts the count."""
        if self.thread is not None:
            return
        self._signal_name = signal.Signals(signum).name
        if self._loop is None:
            with contextlib.suppress(RuntimeError):  # no loop running here: no tasks named
                self._loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._watch, name="llm-mesh-stop-bound", daemon=True)
        self.thread.start()

    def disarm(self) -> None:
        """Tests: the thread ends without exiting."""
        self._disarmed.set()

    def _watch(self) -> None:
        if self._disarmed.wait(self.bound_s):
            return
        log.warning(
            overdue_warning(self.bound_s, self._signal_name, self._tasks(), _joined_threads())
        )
        flush_logs()
        self._exit(STOP_OVERDUE_STATUS)

    def _tasks(self) -> list[list[str]]:
        loop = self._loop
        if loop is None or loop.is_closed():
            return []
        try:  # read from this thread while the loop's own is stuck: names only, no calls
            tasks = asyncio.all_tasks(loop)
        except RuntimeError:
            return []
        chains = [_awaits(t.get_coro()) for t in tasks]
        return sorted(c for c in chains if c)


def _awaits(coro: Any) -> list[str]:
    """``coro``'s chain of awaits, outermost first, each ``module.qualname``; through an
    ``async with`` on an async generator's context manager (the app's lifespan) too."""
    chain: list[str] = []
    while coro is not None and len(chain) < 60:
        name = getattr(coro, "__qualname__", None)
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if name is None:
            break
        module = frame.f_globals.get("__name__", "") if frame is not None else ""
        chain.append(f"{module}.{name}" if module else name)
        inner = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        if inner is not None and getattr(inner, "__qualname__", None) is None and frame:
            gen = getattr(frame.f_locals.get("self"), "gen", None)  # athrow()/anext() of it
            inner = gen if inspect.isasyncgen(gen) else None
        coro = inner
    return chain


def _joined_threads() -> list[str]:
    """The threads still alive that the interpreter joins at exit (not daemons)."""
    main = threading.main_thread()
    return sorted(
        t.name for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()
    )


def run_bounded(
    app: Any,
    bound_s: float,
    sockets: list[socket.socket] | None = None,
    database: str | None = None,
    **config: Any,
) -> None:
    """``uvicorn.run(app, **config)`` (one process, no reload), its stop bounded by
    ``bound_s`` seconds from the first signal (0: not bounded); on ``sockets`` (bound, not
    listening) instead of ``config``'s host and port when given. A start that could not
    write a file (``database``: the SQLite file) raises ``StartWriteRefused`` (one line,
    ``server_process.SignalServer``)."""
    watchdog = StopWatchdog(bound_s) if bound_s > 0 else None
    # its signal handler (SIGTERM, SIGINT) also arms the watchdog
    server = SignalServer(
        uvicorn.Config(app, **config), watchdog.arm if watchdog else None,
        what="the registry", database=database,
    )  # fmt: skip
    server.run(sockets)  # a signal's stop returns (server_process.py), exit 0
    if not server.started:
        sys.exit(_STARTUP_FAILURE)
