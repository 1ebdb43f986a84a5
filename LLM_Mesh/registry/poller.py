"""A background poll of the store: ``poll()`` every ``interval_s``, owned by the app's lifespan.

Revocations reach a running registry this way (nodes: :mod:`revocations`; API keys:
:mod:`api_keys`), so a revocation made by another process on the same store, or by
the admin CLI, takes effect within one interval. A failed poll is logged and the loop
goes on: a store hiccup must not stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

__all__ = ["Poller"]

log = logging.getLogger(__name__)


class Poller:
    """Subclasses set ``interval_s`` and ``task_name`` and implement :meth:`poll`."""

    interval_s: float = 1.0
    task_name: str = "llm-mesh-poller"
    _task: asyncio.Task[None] | None = None

    async def poll(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:  # a store hiccup must not stop the loop
                log.exception("%s: poll failed", self.task_name)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
