"""Writing the receipts nobody received into the store, off the hot path (migration 0031).

A stream its client cut before the node's final chunk is paid when it ends, and its receipt
(``account.StreamAccount._made_here``: countersigned, the ledger entry commits to its hash;
a `cut` part with its node's signed prompt count, ``X-Mesh-Prompt-Signature``, money36) is
sent to nobody. :meth:`CutReceiptWriter.submit` (no await, no I/O) queues it; a background
task writes the queue every ``flush_interval_s`` in one ``store.record_cut_receipts`` batch
(``registry/store_cut_receipts.py``: the receipt's JSON under its hash, the request's ledger
id, the payer; no prompt, no output text). ``GET /v1/receipts/{receipt_hash}`` serves them
(``registry/receipts_api.py``).

Nothing is dropped on a store failure, as settlement's writes are not (``settle_upkeep``:
written again until the database takes it): the batch goes back to the head of the queue
and is written again at the next round (stored once: a row already there is left), and each
of its receipts is logged whole once, at WARNING, in the ``X-Mesh-Receipt`` form that
``llm-mesh receipt verify`` reads, so a process that dies before the database returns leaves
it in its log (the state before 2026-12-06, money37, for every receipt). Only a queue grown
past ``max_queue`` (the database away that long) drops its oldest, each already logged
(counted in ``dropped``). ``stop`` writes what is queued, trying again until ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Protocol

from LLM_Mesh.core.receipt import encode_header
from LLM_Mesh.registry.store_cut_receipts import CutReceipt
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["CutReceiptStore", "CutReceiptWriter", "stores_cut_receipts"]

log = logging.getLogger(__name__)


class CutReceiptStore(Protocol):
    async def record_cut_receipts(self, receipts: list[CutReceipt]) -> None: ...

    async def cut_receipt(self, receipt_hash: str) -> CutReceipt | None: ...


def stores_cut_receipts(store: object) -> bool:
    """Whether ``store`` keeps cut receipts (the SQL and memory stores do)."""
    return callable(getattr(store, "record_cut_receipts", None))


class CutReceiptWriter:
    """Batches :class:`CutReceipt` values into the store (see the module docstring)."""

    def __init__(
        self,
        store: CutReceiptStore,
        *,
        flush_interval_s: float = 0.5,
        max_batch: int = 500,
        max_queue: int = 100_000,
    ) -> None:
        if flush_interval_s <= 0 or max_batch < 1 or max_queue < 1:
            raise ValueError("flush_interval_s, max_batch and max_queue must be positive")
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._queue: deque[CutReceipt] = deque()
        self._logged: set[str] = set()  # hashes logged whole after a failed write
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self.written = 0
        self.failed = 0  # failed writes (each batch written again)
        self.dropped = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, receipt: CutReceipt) -> None:
        """Queue one receipt; never blocks. Past ``max_queue`` the oldest is dropped
        (logged whole when it first failed to be written: never unlogged)."""
        self._queue.append(receipt)
        while len(self._queue) > self.max_queue:
            old = self._queue.popleft()
            self._log_whole(old, "dropped unwritten (the queue is full)")
            self._logged.discard(old.receipt_hash)
            self.dropped += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="llm-mesh-cut-receipts")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop and write what is queued, trying again (each ``flush_interval_s``)
        until ``timeout_s``; what is left then is in the log (written whole on failure)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        writing, self._writing = self._writing, None
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        if writing is not None and not writing.done():
            await asyncio.wait({writing}, timeout=timeout_s)
        while self._queue and loop.time() < end:
            if not await self.flush():
                await asyncio.sleep(min(self.flush_interval_s, max(0.0, end - loop.time())))
        for r in self._queue:  # the process ends: each in the log, once
            self._log_whole(r, "not written before the gateway stopped")
        self._queue.clear()

    async def flush(self) -> int:
        """Write up to ``max_batch`` queued receipts now; how many were written (0 when the
        store failed: the batch is back at the queue's head, each receipt logged whole)."""
        queue = self._queue
        if not queue:
            return 0
        n = min(len(queue), self.max_batch)
        batch = [queue.popleft() for _ in range(n)]
        try:
            await self.store.record_cut_receipts(batch)
        except Exception as exc:
            queue.extendleft(reversed(batch))
            self.failed += 1
            log.warning("could not store %d cut receipts (%s); written again later",
                        n, type(exc).__name__)  # fmt: skip
            for r in batch:
                if r.receipt_hash not in self._logged:
                    self._logged.add(r.receipt_hash)
                    self._log_whole(r, "not yet stored")
            return 0
        for r in batch:
            self._logged.discard(r.receipt_hash)
        self.written += n
        return n

    @staticmethod
    def _log_whole(r: CutReceipt, why: str) -> None:
        log.warning("cut receipt %s of %s (payer %s), %s: %s", r.receipt_hash, r.request_id,
                    r.payer, why, encode_header(r.receipt))  # fmt: skip

    async def _drain(self) -> None:
        while await self.flush() == self.max_batch:
            pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            self._writing = asyncio.ensure_future(self._drain())
            await asyncio.shield(self._writing)  # cancelling the loop leaves the write going


def cut_receipt(receipt: dict[str, Any], request_id: str, payer: str, at: float) -> CutReceipt:
    """The row of a countersigned ``receipt`` (``Receipt.to_json``: its ``receipt_hash``)."""
    return CutReceipt(str(receipt["receipt_hash"]), request_id, payer, at, receipt)
