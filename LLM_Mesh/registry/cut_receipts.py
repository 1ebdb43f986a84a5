"""Writing the receipts nobody received into the store, off the hot path (migration 0031).

A stream its client cut before the node's final chunk is paid when it ends, and its receipt
(``account.StreamAccount._made_here``: countersigned, the ledger entry commits to its hash;
a `cut` part with its node's signed prompt count, ``X-Mesh-Prompt-Signature``, money36) is
sent to nobody. :meth:`CutReceiptWriter.submit` (no await, no I/O) queues it; a background
task writes the queue every ``flush_interval_s`` in one ``store.record_cut_receipts`` batch
(``registry/store_cut_receipts.py``: the receipt's JSON under its hash, the request's ledger
id, the payer; no prompt, no output text): ``registry/batch_writer.py``'s loop, shared with
the request log, with its ``RetryOnFailure`` policy. ``GET /v1/receipts/{receipt_hash}`` serves them
(``registry/receipts_api.py``).

Nothing is dropped on a store failure, as settlement's writes are not (``settle_upkeep``:
written again until the database takes it): the batch goes back to the head of the queue
and is written again at the next round (stored once: a row already there is left), and each
of its receipts is logged whole once, at WARNING, in the ``X-Mesh-Receipt`` form that
``llm-mesh receipt verify`` reads, so a process that dies before the database returns leaves
it in its log (the state before 2026-12-06, money37, for every receipt). Only a queue grown
past ``max_queue`` (the database away that long) drops its oldest, each already logged
(counted in ``dropped``). ``stop`` writes what is queued, trying again until ``timeout_s``.
A receipt given up (a full queue, the stop) is logged whole then unless a failed write
logged it whole before: then one line names its hash (every receipt never stored is in the
log whole exactly once; ``docs/operations.md``, "Receipts the database did not take").
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from LLM_Mesh.core.receipt import encode_header
from LLM_Mesh.registry.batch_writer import BatchWriter, RetryOnFailure
from LLM_Mesh.registry.store_cut_receipts import CutReceipt

__all__ = ["CutReceiptStore", "CutReceiptWriter", "stores_cut_receipts"]

log = logging.getLogger(__name__)


class CutReceiptStore(Protocol):
    async def record_cut_receipts(self, receipts: list[CutReceipt]) -> None: ...

    async def cut_receipt(self, receipt_hash: str) -> CutReceipt | None: ...

    async def prune_cut_receipts(self, before: datetime, limit: int) -> int: ...


def stores_cut_receipts(store: object) -> bool:
    """Whether ``store`` keeps cut receipts (the SQL and memory stores do)."""
    return callable(getattr(store, "record_cut_receipts", None))


class CutReceiptWriter(BatchWriter[CutReceipt]):
    """Batches :class:`CutReceipt` values into the store (see the module docstring): a
    :class:`~LLM_Mesh.registry.batch_writer.BatchWriter` with the
    :class:`~LLM_Mesh.registry.batch_writer.RetryOnFailure` policy."""

    def __init__(
        self,
        store: CutReceiptStore,
        *,
        flush_interval_s: float = 0.5,
        max_batch: int = 500,
        max_queue: int = 100_000,
    ) -> None:
        self._policy = policy = RetryOnFailure[CutReceipt](
            "cut receipts", log, key=lambda r: r.receipt_hash, log_whole=_log_whole
        )
        super().__init__(
            self._record,
            policy,
            flush_interval_s=flush_interval_s,
            max_batch=max_batch,
            max_queue=max_queue,
            task_name="llm-mesh-cut-receipts",
        )
        self.store = store

    def submit_logged(self, receipt: CutReceipt) -> None:
        """Queue a receipt its maker logged whole already (``account.StreamAccount.
        _made_here``: a ``cut`` part with its node's signed count): not logged whole again
        should its write fail or the stop give it up (a short line names its hash)."""
        self._policy.logged_before(receipt)
        self.submit(receipt)

    async def _record(self, batch: list[CutReceipt]) -> None:
        await self.store.record_cut_receipts(batch)


def _log_whole(r: CutReceipt, why: str) -> None:
    log.warning("cut receipt %s of %s (payer %s), %s: %s", r.receipt_hash, r.request_id,
                r.payer, why, encode_header(r.receipt))  # fmt: skip


def cut_receipt(receipt: dict[str, Any], request_id: str, payer: str, at: float) -> CutReceipt:
    """The row of a countersigned ``receipt`` (``Receipt.to_json``: its ``receipt_hash``)."""
    return CutReceipt(str(receipt["receipt_hash"]), request_id, payer, at, receipt)
