"""The store's receipts nobody received (migration 0031): a cut stream's, for its payer.

:class:`SqlCutReceipts` is mixed into :class:`~LLM_Mesh.registry.store.SqlStore` (which
gives it ``engine``), :class:`MemoryCutReceipts` into the memory store;
``registry/cut_receipts.py`` writes them, ``registry/receipts_api.py`` reads them. A row is
a receipt's JSON (``X-Mesh-Receipt``'s form: counts, hashes, ids, amounts, signatures; no
prompt, no output text) under its hash; writing one already stored changes nothing (``ON
CONFLICT DO NOTHING``: a batch written again after a failure whose commit did land, or two
replicas' writes of one receipt, store it once). Commits wait for the disk (the receipt is
the charge's evidence, as the ledger entry that commits to it). ``prune_cut_receipts``
deletes those made before a cutoff, a bounded batch a call (``registry/retention.py``'s
``CutReceiptPruner``, ``LLM_MESH_CUT_RECEIPT_KEEP_DAYS``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.retention import prune_bounds
from LLM_Mesh.registry import tables

__all__ = ["CutReceipt", "MemoryCutReceipts", "SqlCutReceipts"]

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, sort_keys=True).encode
_CHUNK = 1000  # rows a statement (asyncpg: 32,767 arguments at most; 5 a row)


@dataclass(frozen=True)
class CutReceipt:
    """A receipt nobody received, as the store keeps it."""

    receipt_hash: str
    request_id: str  # the request's id in the ledger (its entries' request_id)
    payer: str  # the ledger account charged (``user:…`` or ``pool``)
    created_at: float  # seconds since the epoch
    receipt: dict[str, Any]  # the countersigned receipt (``Receipt.to_json``)

    def row(self) -> dict[str, Any]:
        return {"receipt_hash": self.receipt_hash, "request_id": self.request_id,
                "payer": self.payer, "created_at": self.created_at,
                "receipt": _ENCODE(self.receipt)}  # fmt: skip


def _from_row(r: Any) -> CutReceipt:
    return CutReceipt(r.receipt_hash, r.request_id, r.payer, r.created_at, json.loads(r.receipt))


class SqlCutReceipts:
    """The receipts on SQLAlchemy (see the module docstring)."""

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    async def record_cut_receipts(self, receipts: Sequence[CutReceipt]) -> None:
        """Store ``receipts`` in one transaction; those already stored are left as they are."""
        if not receipts:
            return
        t = tables.cut_receipts
        async with self.engine.begin() as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            for i in range(0, len(receipts), _CHUNK):
                rows = [r.row() for r in receipts[i : i + _CHUNK]]
                await conn.execute(insert(t).on_conflict_do_nothing(), rows)

    async def cut_receipt(self, receipt_hash: str) -> CutReceipt | None:
        """The receipt stored under ``receipt_hash``, if any."""
        t = tables.cut_receipts
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.receipt_hash == receipt_hash))).first()
        return None if row is None else _from_row(row)

    async def prune_cut_receipts(self, before: datetime, limit: int) -> int:
        """Delete at most ``limit`` receipts made before ``before``; how many. One short
        statement, as ``Store.prune_requests`` (on PostgreSQL the rows are taken ``FOR UPDATE
        SKIP LOCKED``: replicas pruning at once skip each other's rows)."""
        prune_bounds(before, limit)
        t = tables.cut_receipts
        keys = select(t.c.receipt_hash).where(t.c.created_at < before.timestamp()).limit(limit)
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                keys = keys.with_for_update(skip_locked=True)
            stmt = delete(t).where(t.c.receipt_hash.in_(keys.scalar_subquery()))
            result = await conn.execute(stmt)
        return int(result.rowcount or 0)


class MemoryCutReceipts:
    """The receipts in memory (tests, ``demo``)."""

    def __init__(self) -> None:
        self.cut_receipts: dict[str, CutReceipt] = {}

    async def record_cut_receipts(self, receipts: Sequence[CutReceipt]) -> None:
        for r in receipts:  # as stored: a copy of its JSON, not the caller's object
            kept = replace(r, receipt=json.loads(_ENCODE(r.receipt)))
            self.cut_receipts.setdefault(r.receipt_hash, kept)

    async def cut_receipt(self, receipt_hash: str) -> CutReceipt | None:
        return self.cut_receipts.get(receipt_hash)

    async def prune_cut_receipts(self, before: datetime, limit: int) -> int:
        prune_bounds(before, limit)
        cutoff = before.timestamp()
        doomed = [h for h, r in self.cut_receipts.items() if r.created_at < cutoff][:limit]
        for h in doomed:
            del self.cut_receipts[h]
        return len(doomed)
