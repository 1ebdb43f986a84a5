"""Counting, off the hot path, the requests nodes served and were not paid for (0035).

The account stage (``account.make_receipt``) does not charge a request whose charges its
receipt cannot carry (``core/receipt_money.price_receipt``: a charge with no part of its
node, or a payer of a kind a receipt does not name; its receipt signs ``settled`` false).
Every node it would have paid is owed an explanation, its own (``Unsigned.told``: never
another node's id, since money44), as is the node of a priced part no receipt part matches
(``account._unmatched``): :meth:`UnpaidWriter.submit` (no await, no I/O) queues one
:class:`~LLM_Mesh.registry.store_unpaid.Unpaid` per such node, and ``registry/batch_writer.py``'s
loop adds them to the store's ``unpaid_served`` counts (``registry/store_unpaid.py``) every
``flush_interval_s``, with its ``RetryOnFailure`` policy (a batch the store refused is written
again; each value logged once, at WARNING, until written). ``GET /v1/earnings`` answers the
operator's nodes' counts (``unpaid``) and ``llm-mesh earnings`` says them (found
2026-12-07, money43: the operators were told nothing, the registry's operator only an ERROR
line and a counter on ``/metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol

from LLM_Mesh.registry.batch_writer import BatchWriter, RetryOnFailure
from LLM_Mesh.registry.store_unpaid import Unpaid, UnpaidCount

__all__ = ["UnpaidStore", "UnpaidWriter", "stores_unpaid"]

log = logging.getLogger(__name__)


class UnpaidStore(Protocol):
    async def record_unpaid(self, values: Sequence[Unpaid]) -> None: ...

    async def unpaid_served(self, nodes: Sequence[str], since: date) -> list[UnpaidCount]: ...

    async def prune_unpaid(self, before: datetime, limit: int) -> int: ...


def stores_unpaid(store: object) -> bool:
    """Whether ``store`` counts requests served unpaid (the SQL and memory stores do)."""
    return callable(getattr(store, "record_unpaid", None))


class UnpaidWriter(BatchWriter[Unpaid]):
    """Batches :class:`~LLM_Mesh.registry.store_unpaid.Unpaid` values into the store (see
    the module docstring)."""

    def __init__(self, store: UnpaidStore, *, flush_interval_s: float = 0.5) -> None:
        policy = RetryOnFailure[Unpaid](
            "unpaid requests", log, key=lambda u: (u.request_id, u.node_id), log_whole=_log_whole
        )
        super().__init__(
            self._record,
            policy,
            flush_interval_s=flush_interval_s,
            max_batch=500,
            max_queue=100_000,
            task_name="llm-mesh-unpaid",
        )
        self.store = store

    async def _record(self, batch: list[Unpaid]) -> None:
        await self.store.record_unpaid(batch)


def _log_whole(u: Unpaid, why: str) -> None:
    log.warning("request %s served unpaid by node %s (model %s, %s), %s: %s", u.request_id,
                u.node_id, u.model, u.day, why, u.reason)  # fmt: skip
