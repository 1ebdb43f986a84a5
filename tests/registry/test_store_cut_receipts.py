"""The store's cut receipts (``registry/store_cut_receipts.py``, migration 0031), on SQLite
and PostgreSQL: stored once under their hash, read back as written, and a row altered in
the database no longer verifies (``llm-mesh receipt verify``'s own check); those made
before a cutoff are pruned, a bounded batch a call."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import Connection, inspect, text

from LLM_Mesh.core.receipt import ReceiptError, ReceiptSigner
from LLM_Mesh.core.receipt_verify import find_receipt, verify
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_cut_receipts import CutReceipt, MemoryCutReceipts
from tests.core.receipt_fixtures import HASH, REGISTRY_ID, REGISTRY_KEY, check, node_claim, observed

KEYS = {REGISTRY_ID: REGISTRY_KEY.public_key().public_bytes_raw()}


def made(request_id: str = "req-1") -> CutReceipt:
    """A countersigned receipt (one node-signed part) as the gateway stores it."""
    signer = ReceiptSigner(REGISTRY_KEY, lambda: 1_700_000_000.5)
    part = check(observed(node_claim(request_id=request_id)), request_id=request_id)
    receipt, receipt_hash = signer.countersign(request_id, "gemma-3-270m", 10, 5, HASH, [part])
    return CutReceipt(receipt_hash, f"{request_id}-ledger", "user:abc", 1_700_000_001.25,
                      receipt.to_json(receipt_hash))  # fmt: skip


def verified(r: CutReceipt) -> object:
    return verify(find_receipt(json.dumps({"mesh": {"receipt": r.receipt}})), KEYS)


async def test_a_stored_receipt_reads_back_as_written_and_verifies(store: SqlStore) -> None:
    r, other = made(), made("req-2")
    await store.record_cut_receipts([r])
    await store.record_cut_receipts([r, other])  # written again (a retried batch): once
    back = await store.cut_receipt(r.receipt_hash)
    assert back == r
    verified(back)
    assert await store.cut_receipt(other.receipt_hash) == other
    assert await store.cut_receipt("0" * 64) is None
    async with store.engine.connect() as conn:
        n = (await conn.execute(text("SELECT count(*) FROM cut_receipts"))).scalar()
    assert n == 2


async def test_a_receipt_altered_in_the_database_fails_verify(store: SqlStore) -> None:
    r = made()
    await store.record_cut_receipts([r])
    forged = {**r.receipt, "parts": [{**r.receipt["parts"][0], "completion_tokens": 50}]}
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE cut_receipts SET receipt = :r WHERE receipt_hash = :h"),
            {"r": json.dumps(forged), "h": r.receipt_hash},
        )
    back = await store.cut_receipt(r.receipt_hash)
    assert back is not None and back.receipt["parts"][0]["completion_tokens"] == 50
    with pytest.raises(ReceiptError):
        verified(back)


async def test_the_memory_store_keeps_its_own_copy() -> None:
    m = MemoryCutReceipts()
    r = made()
    await m.record_cut_receipts([r])
    r.receipt["prompt_tokens"] = 99  # the caller's object changed after the write
    back = await m.cut_receipt(r.receipt_hash)
    assert back is not None and back.receipt["prompt_tokens"] == 10
    verified(back)


def aged(request_id: str, created_at: float) -> CutReceipt:
    """:func:`made`'s receipt for ``request_id``, stored as made at ``created_at``."""
    r = made(request_id)
    return CutReceipt(r.receipt_hash, r.request_id, r.payer, created_at, r.receipt)


async def test_prune_deletes_receipts_made_before_the_cutoff_bounded(store: SqlStore) -> None:
    cutoff = datetime.fromtimestamp(1_700_000_000, timezone.utc)
    old = [aged(f"old-{i}", 1_699_999_000.0 + i) for i in range(3)]
    new = aged("new", 1_700_000_000.0)  # at the cutoff: kept
    await store.record_cut_receipts([*old, new])
    assert await store.prune_cut_receipts(cutoff, 2) == 2  # a bounded batch
    assert await store.prune_cut_receipts(cutoff, 2) == 1
    assert await store.prune_cut_receipts(cutoff, 2) == 0
    assert [await store.cut_receipt(r.receipt_hash) for r in old] == [None] * 3
    assert await store.cut_receipt(new.receipt_hash) == new
    with pytest.raises(ValueError):
        await store.prune_cut_receipts(cutoff.replace(tzinfo=None), 2)


async def test_the_pruners_rows_are_found_by_an_index_on_created_at(store: SqlStore) -> None:
    """The hourly prune selects by ``created_at``: an index on it (migration 0032), not a
    read of the whole table each run and batch (found 2026-12-06, review38b); on SQLite
    the query's plan is shown to use it."""

    def indexed(conn: Connection) -> list[list[str]]:
        return [list(ix["column_names"]) for ix in inspect(conn).get_indexes("cut_receipts")]

    async with store.engine.connect() as conn:
        assert ["created_at"] in await conn.run_sync(indexed)
        if conn.dialect.name == "sqlite":
            plan = " ".join(
                str(row[-1])
                for row in await conn.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT receipt_hash FROM cut_receipts "
                        "WHERE created_at < 1700000000 LIMIT 1000"
                    )
                )
            )
            assert "ix_cut_receipts_created_at" in plan, plan


async def test_the_memory_store_prunes_as_the_sql_store() -> None:
    mem = MemoryCutReceipts()
    cutoff = datetime.fromtimestamp(1_700_000_000, timezone.utc)
    old, new = aged("old", 1_699_999_999.0), aged("new", 1_700_000_000.0)
    await mem.record_cut_receipts([old, new, aged("old-2", 1.0)])
    assert await mem.prune_cut_receipts(cutoff, 1) == 1
    assert await mem.prune_cut_receipts(cutoff, 5) == 1
    assert list(mem.cut_receipts) == [new.receipt_hash]
    with pytest.raises(ValueError):
        await mem.prune_cut_receipts(cutoff, 0)
