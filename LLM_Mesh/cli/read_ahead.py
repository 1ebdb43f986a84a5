"""Read an async iterator ahead of its consumer (``ledger verify``'s entry pages)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from LLM_Mesh.task_stop import cancel_and_wait

T = TypeVar("T")


async def read_ahead(items: AsyncIterator[T], depth: int = 4) -> AsyncIterator[T]:
    """``items``, fetched by a task of its own up to ``depth`` ahead of the consumer."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(depth)

    async def pump() -> None:
        try:
            async for item in items:
                await queue.put((True, item))
        except Exception as exc:  # handed to the consumer, raised there
            await queue.put((False, exc))
        else:
            await queue.put((False, None))

    task = asyncio.create_task(pump())
    try:
        while True:
            more, item = await queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        await cancel_and_wait(task)
