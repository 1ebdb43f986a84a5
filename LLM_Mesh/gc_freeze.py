"""Keep the garbage collector off the objects a server made while starting.

A started registry holds about 140,000 objects that live as long as the process
(modules, the app, SQLAlchemy's tables, pydantic's schemas). Python's full collection
walks all of them: measured 80 ms of CPU on the 2-core dev box, a pause that lands on
whichever request is in flight (the gateway's p99, ``docs/benchmarks.md``).
:func:`freeze_after_startup` wraps a server's ASGI app so that, once its lifespan has
started, one collection runs and every object alive then is moved to the permanent
generation (``gc.freeze``): later collections see only what requests allocate.

Only ``registry serve`` and ``node start`` use it (their processes are servers until they
exit); the apps built by tests are not frozen.
"""

from __future__ import annotations

import gc
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["freeze_after_startup", "freeze_now"]


def freeze_now() -> int:
    """Collect once, then freeze every object alive; returns how many are frozen now."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class _FreezeAfterStartup:
    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def sent(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                freeze_now()

        await self.app(scope, receive, sent)


def freeze_after_startup(app: Any) -> ASGIApp:
    """``app`` whose objects alive after its lifespan's startup are frozen (module doc)."""
    return _FreezeAfterStartup(app)
