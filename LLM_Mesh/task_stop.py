"""Stopping a background task: :func:`cancel_and_wait`, the one way every loop of the
package's services (the ledger's checkpointer and witness pusher, the pollers, the reward
closer, the request log's writer, a node's agent, ...) is ended by its ``stop``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (``None``: nothing to stop) and wait until it has ended; its
    ``CancelledError`` is not raised here, an exception it ended with before is."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
