"""An ASGI app wrapped with a task that runs on its event loop while its lifespan runs.

:class:`LifespanLoop` starts the subclass's ``_loop`` once the app's startup completed and
cancels it when the lifespan ends (before the server hears of its shutdown's end); every other scope goes straight to the app. Used by the
C heap's periodic trim (:mod:`LLM_Mesh.heap`) and a ``--workers`` worker's heartbeat
(:mod:`LLM_Mesh.worker_beat`).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["LifespanLoop"]


class LifespanLoop:
    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def _loop(self) -> None:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        task: asyncio.Task[None] | None = None

        async def sent(message: Message) -> None:
            nonlocal task
            if message["type"].startswith("lifespan.shutdown."):  # complete, or failed
                # ended before the server hears it: it stops waiting on the lifespan there,
                # and a task of it still running would be cancelled (found 2026-12-05:
                # uvicorn then logged "ASGI 'lifespan' protocol appears unsupported.")
                await cancel_and_wait(task)
                task = None
            await send(message)
            if message["type"] == "lifespan.startup.complete" and task is None:
                task = asyncio.get_running_loop().create_task(self._loop())

        try:
            await self.app(scope, receive, sent)
        finally:
            await cancel_and_wait(task)
