"""A background poll of the store: ``poll()`` every ``interval_s``, owned by the app's lifespan.

Revocations reach a running registry this way (nodes: :mod:`revocations`; API keys:
:mod:`api_keys`), so a revocation made by another process on the same store, or by
the admin CLI, takes effect within one interval. A failed poll is logged and the loop
goes on: a store hiccup must not stop it.

``changes`` (optional) is a cheap check of whether the poll would find anything new: a
number that moves with every write the poll reads (``SqlStore.poll_version``: a counter
per poll that SQLite triggers move in the writes' own transactions, migration 0013), or
``None`` for "cannot tell". While it holds the value read before the last successful
poll, the poll would find nothing new and is skipped; a poll of a store that cannot tell
(PostgreSQL, the memory store) always runs. The value is read *before* the poll's
queries, so a write committed while they run moves it and the next tick polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

__all__ = ["Poller"]

log = logging.getLogger(__name__)


class Poller:
    """Subclasses set ``interval_s`` and ``task_name`` and implement :meth:`poll`."""

    interval_s: float = 1.0
    task_name: str = "llm-mesh-poller"
    changes: Callable[[], int | None] | None = None
    _task: asyncio.Task[None] | None = None
    _polled_at: int | None = None  # ``changes()`` read before the last successful poll

    async def poll(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    async def tick(self) -> bool:
        """Poll unless ``changes`` says nothing was written since the last poll; whether
        it polled. A failed poll is logged (the next tick polls again)."""
        version = self._version()
        if version is not None and version == self._polled_at:
            return False
        try:
            await self.poll()
        except Exception:  # a store hiccup must not stop the loop
            log.exception("%s: poll failed", self.task_name)
            self._polled_at = None
        else:
            self._polled_at = version
        return True

    def _version(self) -> int | None:
        if self.changes is None:
            return None
        try:
            return self.changes()
        except Exception:  # cannot tell: poll
            return None

    async def _loop(self) -> None:
        while True:
            await self.tick()
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
