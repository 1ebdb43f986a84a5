"""Recording finished requests off the hot path.

The gateway calls :meth:`RequestWriter.submit` (no await, no I/O); a background
task drains the queue every ``flush_interval_s`` into one
``store.record_requests`` batch: a :class:`~LLM_Mesh.registry.batch_writer.BatchWriter`
(the loop, its bounds and its drain on stop, shared with ``cut_receipts.py``) with the
:class:`~LLM_Mesh.registry.batch_writer.DropOnFailure` policy. A full queue drops records
(counted in ``dropped``) rather than slowing requests down; store errors are logged and the
batch is dropped, never raised into a request. ``observers`` see each record as it is
submitted (the dashboard's traffic series): plain calls, no I/O, on the request's path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from LLM_Mesh.registry.batch_writer import BatchWriter, DropOnFailure
from LLM_Mesh.registry.ports import RequestRecord, Store

log = logging.getLogger(__name__)


class RequestWriter(BatchWriter[RequestRecord]):
    """Batches :class:`RequestRecord` values into the store in the background."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval_s: float = 0.5,
        max_batch: int = 1000,
        max_queue: int = 100_000,
    ) -> None:
        super().__init__(
            self._record,
            DropOnFailure[RequestRecord]("requests", log),
            flush_interval_s=flush_interval_s,
            max_batch=max_batch,
            max_queue=max_queue,
            task_name="llm-mesh-request-writer",
        )
        self.store = store
        # called with each submitted record (cheap, in memory: the dashboard's series)
        self.observers: list[Callable[[RequestRecord], None]] = []

    async def _record(self, batch: list[RequestRecord]) -> None:
        await self.store.record_requests(batch)

    def submit(self, value: RequestRecord) -> None:
        """Queue one record (and show it to the observers); never blocks. A full queue
        (``max_queue``) drops it (counted)."""
        for observe in self.observers:
            observe(value)
        super().submit(value)
