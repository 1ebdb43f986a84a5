"""Stopping a background task: :func:`cancel_and_wait`, the one way every loop of the
package's services (the ledger's checkpointer and witness pusher, the pollers, the reward
closer, the request log's writer, a node's agent, ...) is ended by its ``stop``."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (``None``: nothing to stop) and wait until it has ended; its
    ``CancelledError`` is not raised here, an exception it ended with before is. A cancel
    of the caller itself that comes while it waits is raised (Python 3.11+: the caller's
    ``Task.cancelling`` count grew during the wait; a cancel it was already handling, a
    stop in a ``finally`` after Ctrl-C, is not raised again; on 3.10 none can be told from
    the task's own end and none is raised)."""
    if task is None:
        return
    me = asyncio.current_task()
    cancelling = getattr(me, "cancelling", None)
    before = cancelling() if cancelling is not None else 0
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if cancelling is not None and cancelling() > before:
            raise  # the caller was cancelled meanwhile: not the task's own end
