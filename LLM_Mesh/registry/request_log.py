"""Recording finished requests off the hot path.

The gateway calls :meth:`RequestWriter.submit` (no await, no I/O); a background
task drains the queue every ``flush_interval_s`` into one
``store.record_requests`` batch. The queue is a plain ``deque`` bounded by ``max_queue``
(nothing awaits it: an ``asyncio.Queue``'s put and get, with their waiter and
unfinished-task bookkeeping, were CPU on the loop for every request and again in every
flush). A full queue drops records (counted in
``dropped``) rather than slowing requests down; store errors are logged and the
batch is dropped, never raised into a request. ``observers`` see each record as it is
submitted (the dashboard's traffic series): plain calls, no I/O, on the request's path.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from LLM_Mesh.registry.ports import RequestRecord, Store
from LLM_Mesh.task_stop import cancel_and_wait

log = logging.getLogger(__name__)


class RequestWriter:
    """Batches :class:`RequestRecord` values into the store in the background."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval_s: float = 0.5,
        max_batch: int = 1000,
        max_queue: int = 100_000,
    ) -> None:
        if flush_interval_s <= 0 or max_batch < 1 or max_queue < 1:
            raise ValueError("flush_interval_s, max_batch and max_queue must be positive")
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._queue: deque[RequestRecord] = deque()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0
        self._writing: asyncio.Future[None] | None = None  # the loop's write in progress
        # called with each submitted record (cheap, in memory: the dashboard's series)
        self.observers: list[Callable[[RequestRecord], None]] = []
        # told each count added to ``written`` / ``dropped`` (the metrics of --workers N)
        self.counted: Callable[[str, int], None] | None = None

    @property
    def queued(self) -> int:
        """Records submitted and not yet taken by a flush."""
        return len(self._queue)

    def submit(self, rec: RequestRecord) -> None:
        """Queue one record (and show it to the observers); never blocks. A full queue
        (``max_queue``) drops it (counted)."""
        for observe in self.observers:
            observe(rec)
        queue = self._queue
        if len(queue) < self.max_queue:
            queue.append(rec)
        else:
            self._count("dropped", 1)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="llm-mesh-request-writer")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop and write what is still queued.

        A write in progress is waited for (up to ``timeout_s``), never cancelled:
        its batch has already left the queue and would be lost.
        """
        task, self._task = self._task, None
        await cancel_and_wait(task)
        writing, self._writing = self._writing, None
        if writing is not None and not writing.done():
            await asyncio.wait({writing}, timeout=timeout_s)
        while self._queue:
            await self.flush()

    async def flush(self) -> int:
        """Write up to ``max_batch`` queued records now; returns how many."""
        queue = self._queue
        if not queue:
            return 0
        if len(queue) <= self.max_batch:
            batch = list(queue)
            queue.clear()
        else:
            take = queue.popleft
            batch = [take() for _ in range(self.max_batch)]
        try:
            await self.store.record_requests(batch)
        except Exception:
            log.exception("could not record %d requests; dropped", len(batch))
            self._count("dropped", len(batch))
            return 0
        self._count("written", len(batch))
        return len(batch)

    def _count(self, result: str, n: int) -> None:
        if result == "written":
            self.written += n
        else:
            self.dropped += n
        if self.counted is not None:
            self.counted(result, n)

    async def _drain(self) -> None:
        while await self.flush() == self.max_batch:
            pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            self._writing = asyncio.ensure_future(self._drain())
            await asyncio.shield(self._writing)  # cancelling the loop leaves the write going
