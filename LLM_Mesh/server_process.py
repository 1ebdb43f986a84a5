"""uvicorn's server as the long-running commands run it (``registry serve``, ``node start``).

:class:`SignalServer` is uvicorn's ``Server`` whose signal handler (SIGTERM, SIGINT) first
calls ``on_signal(signum)``: the node starts its shutdown budget's clock there
(``core/shutdown.py``), the registry arms its stop watchdog (``registry/stop_watchdog.py``).
Its stop, whichever signal (docs/operations.md, "Stopping and exit statuses"):

- the first signal stops it as uvicorn does: no new connections, requests in flight drain,
  then the app's own stop (the node's goodbye, the registry's settlement); the process then
  exits 0. (uvicorn raises the signal again after its stop: SIGTERM killed the process,
  exit -15, and SIGINT was a ``KeyboardInterrupt``, exit 130 from ``node start`` and 0 from
  ``registry serve``.)
- a second signal cuts the drain: the requests in flight are cancelled (their own cleanup
  runs), and the app's stop still runs, bounded as it is. (uvicorn's second Ctrl-C skipped
  the app's stop: the registry did not settle or close its store, and the lifespan task,
  cancelled at exit, printed a traceback.)

:func:`port_taken` says, before anything slow starts (a model load, migrations), that
something already listens where the server would: :func:`require_free_port` raises
:class:`PortInUse`, one line the CLI prints (exit 1), with what to do. Before the server
runs, :func:`exit_on_signal` makes a stop signal exit at once: a model loading in a thread
cannot be cancelled, and Python waited for it at exit (minutes for a cold load).

``registry serve --workers N``: its supervisor binds one socket (:func:`shared_socket`)
and every worker serves that socket (:func:`inherited_socket`): one accept queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from types import FrameType
from typing import Any

import uvicorn

from LLM_Mesh.errors import MeshError
from LLM_Mesh.start_writes import RefusedStart, StartWriteRefused

__all__ = [
    "LISTEN_FD_ENV",
    "PortInUse",
    "SignalServer",
    "exit_on_signal",
    "flush_logs",
    "inherited_socket",
    "port_taken",
    "require_free_port",
    "shared_socket",
]

log = logging.getLogger("LLM_Mesh.server")

#: how long the requests a second signal cancelled get for their own cleanup
CANCEL_WAIT_S = 1.0


class PortInUse(MeshError):
    """The server's port is taken: said before anything slow starts, with what to do."""


#: what a request cut by a second stop signal before its answer began is answered
_CUT = {
    "error": {
        "message": "the server was stopped while this request ran (a second stop signal): "
        "it was cut before its answer",
        "type": "server_error",
        "code": "stopped",
    }
}


class _CutAnswer:
    """The app, whose requests cancelled by a second stop signal before their answer began
    get a 500 saying so (one WARNING), not uvicorn's bare ``Internal Server Error`` and
    ERROR traceback (found 2026-12-04). One whose answer had begun is cut as before."""

    def __init__(self, app: Any, server: SignalServer) -> None:
        self.app, self.server = app, server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if scope.get("type") != "http" or not self.server.force_exit:
                raise
            body = json.dumps(_CUT).encode()
            try:
                await send({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
            except RuntimeError:  # its answer had begun: uvicorn refuses another start
                raise asyncio.CancelledError("a second stop signal") from None
            log.warning("%s %s cut by a second stop signal: answered 500", scope.get(
                "method"), scope.get("path"))  # fmt: skip


class SignalServer(uvicorn.Server):
    """uvicorn's server, calling ``on_signal(signum)`` when a stop signal comes."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_signal: Callable[[int], None] | None = None,
        what: str = "the start",
        database: str | None = None,
    ) -> None:
        super().__init__(config)
        self.on_signal = on_signal
        #: who could not write (``the registry``) and its SQLite file, for :attr:`refusal`
        self.what, self.database = what, database
        self._refused: RefusedStart | None = None

    @property
    def refusal(self) -> str | None:
        """The one line when the app's start failed on a file it could not write (a full
        disk, a read-only one: ``start_writes.py``); the command says it and exits 1."""
        return None if self._refused is None else self._refused.line

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_signal is not None:
            self.on_signal(sig)
        if self.should_exit and not self.force_exit:
            log.warning(
                "%s again: the requests in flight are cut; the stop goes on",
                signal.Signals(sig).name,
            )
            self.force_exit = True
        self.should_exit = True  # not uvicorn's handle_exit: it raises the signal again

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if not isinstance(self.config.loaded_app, _CutAnswer):  # the connections' app
            self._refused = RefusedStart(self.config.loaded_app, self.what, self.database)
            self.config.loaded_app = _CutAnswer(self.config.loaded_app, self)
            self._lifespan_through(self._refused)
        said = logging.getLogger("uvicorn.error")
        if self._refused is not None:  # uvicorn's "startup failed" left out after its line
            said.addFilter(self._refused)
        try:
            await super().startup(sockets)  # uvicorn's sys.exit(3) when the app's start failed
        except SystemExit:
            if self.refusal is not None:  # a file it could not write: one line, exit 1
                raise StartWriteRefused(self.refusal) from None
            raise
        finally:
            if self._refused is not None:
                said.removeFilter(self._refused)

    def _lifespan_through(self, app: RefusedStart) -> None:
        """The lifespan (uvicorn's ``LifespanOn``, which calls its config's ``loaded_app``)
        runs ``app``; the connections keep ``config.loaded_app``: a request's ASGI call
        does not pass through :class:`RefusedStart` (perf43: one awaited layer a request
        for a failure only a start can meet). No lifespan (``lifespan="off"``): nothing."""
        config = getattr(self.lifespan, "config", None)
        if config is self.config:  # its own copy, the connections' config unchanged
            own = copy.copy(config)
            own.loaded_app = app
            self.lifespan.config = own

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if not self.force_exit:
            return
        tasks = list(self.server_state.tasks)
        for task in tasks:
            task.cancel(msg="a second stop signal")
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
        stopped = getattr(self.lifespan, "shutdown_event", None)  # LifespanOn's
        if stopped is not None and not stopped.is_set():  # uvicorn skipped the app's stop
            await self.lifespan.shutdown()


def port_taken(host: str, port: int) -> bool:
    """Something listens on ``host:port`` (bound as uvicorn binds, ``SO_REUSEADDR``); any
    other bind error (an address not on this machine) is left to uvicorn to say."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


#: the inherited listening socket's file descriptor, in a ``registry serve --workers N``
#: worker's environment (``registry/workers.py`` passes it to each worker it starts)
LISTEN_FD_ENV = "LLM_MESH_LISTEN_FD"


def shared_socket(host: str, port: int, what_to_do: str = "") -> socket.socket:
    """The socket ``registry serve --workers N``'s supervisor binds to ``host:port`` once,
    before any worker starts, and hands every worker it starts (``SO_REUSEADDR``, as uvicorn
    binds; not yet listening: worker 0's server listens on it once its app has started, so
    connections are refused, not queued, until one serves). :class:`PortInUse` when taken;
    any other bind error (an address not on this machine) as ``ValueError``: one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} on {host} is already in use{what_to_do}") from exc
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)  # a worker gets it by Popen(pass_fds=...), nothing else
    return sock


def inherited_socket(environ: MutableMapping[str, str] | None = None) -> socket.socket:
    """The listening socket a ``--workers N`` worker's supervisor handed it: the descriptor
    in ``LISTEN_FD_ENV`` (taken out of the environment: no child of the worker inherits it).
    ``ValueError`` when there is none (``--worker-index`` run by hand)."""
    env = os.environ if environ is None else environ
    value = env.pop(LISTEN_FD_ENV, None)
    try:
        sock = socket.socket(fileno=int(value or ""))
    except (ValueError, OSError) as exc:
        raise ValueError(
            f"no listening socket handed down ({LISTEN_FD_ENV}={value!r}): --worker-index is "
            "for the workers that `registry serve --workers N` starts"
        ) from exc
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ValueError(f"{LISTEN_FD_ENV}={value}: not a stream socket")
    sock.set_inheritable(False)
    return sock


def require_free_port(host: str, port: int, what_to_do: str) -> None:
    """:class:`PortInUse` (``port N on HOST is already in use`` and ``what_to_do``) when
    :func:`port_taken`."""
    if port_taken(host, port):
        raise PortInUse(f"port {port} on {host} is already in use{what_to_do}")


def flush_logs() -> None:
    """Flush every log handler and the standard streams: before an ``os._exit``."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for handler in lg.handlers:
            with contextlib.suppress(Exception):  # one broken handler stops no other
                handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _exit_now(status: int) -> None:  # pragma: no cover - the process ends here
    os._exit(status)  # not sys.exit: that would join the thread still loading


@contextlib.contextmanager
def exit_on_signal(what: str, exit: Callable[[int], None] = _exit_now) -> Iterator[None]:
    """While in it (in the main thread), SIGINT or SIGTERM logs ``SIGINT while WHAT:
    exiting now`` and exits 0 at once (``exit``, injected for tests): nothing serves yet,
    so there is nothing to drain or say goodbye for."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.warning(
            "%s while %s: exiting now (nothing serves yet)", signal.Signals(signum).name, what
        )
        flush_logs()
        exit(0)

    before = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
