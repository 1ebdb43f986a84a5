"""A ``registry serve --workers N`` worker's proof that its event loop is alive.

The supervisor (:mod:`LLM_Mesh.registry.workers`) gives each worker the path of a file of
its own, in a private (0700) directory of its run, in ``LLM_MESH_WORKER_HEARTBEAT``.
:func:`beat_for_supervisor` wraps the worker's ASGI app: from its lifespan's startup on, a
task on the event loop itself sets that file's modification time every ``BEAT_S`` seconds
(``os.utime``: one system call, no data). A worker whose loop is blocked, or whose process
is stopped (``SIGSTOP``), goes silent; the supervisor kills one silent longer than its
``--worker-timeout`` (:class:`~LLM_Mesh.core.worker_restart.HangPolicy`) and starts another,
as it does for one that exited. Without the variable (a lone registry) nothing beats.
"""

from __future__ import annotations

import asyncio
import logging
import os

from starlette.types import ASGIApp

from LLM_Mesh.lifespan_loop import LifespanLoop

__all__ = ["BEAT_S", "HEARTBEAT_ENV", "beat_for_supervisor"]

log = logging.getLogger(__name__)

HEARTBEAT_ENV = "LLM_MESH_WORKER_HEARTBEAT"
BEAT_S = 1.0


class _Beating(LifespanLoop):
    __slots__ = ("beats", "interval_s", "path")

    def __init__(self, app: ASGIApp, path: str, interval_s: float) -> None:
        super().__init__(app)
        self.path = path
        self.interval_s = interval_s
        self.beats = 0

    async def _loop(self) -> None:
        failed = False
        while True:
            try:
                os.utime(self.path)
                self.beats += 1
                failed = False
            except OSError as exc:  # the supervisor's directory gone: it is stopping
                if not failed:
                    log.debug("worker heartbeat %s: %s", self.path, exc)
                failed = True
            await asyncio.sleep(self.interval_s)


def beat_for_supervisor(
    app: ASGIApp, path: str | None = None, interval_s: float = BEAT_S
) -> ASGIApp:
    """``app`` beating to ``path`` (default: ``$LLM_MESH_WORKER_HEARTBEAT``) every
    ``interval_s`` seconds while its lifespan runs (module doc); ``app`` itself without one."""
    path = path if path is not None else os.environ.get(HEARTBEAT_ENV)
    if not path:
        return app
    return _Beating(app, path, interval_s)
