"""``ledger verify --database-url``'s source (``LLM_Mesh/cli/ledger_store.py``): the proofs it
reads from a store, and what it says of a checkpoint the store is behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.cli.ledger_store import StoreSource
from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.core.merkle_verify import verify_consistency
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.store import SqlStore

ALICE = pseudonym("user", "alice")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A migrated SQLite store (what `ledger verify --database-url` opens), closed after."""
    s = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _source(store: SqlStore, n: int) -> tuple[SqlLedger, StoreSource]:
    async def engine() -> AsyncEngine:
        return store.engine

    ledger = SqlLedger(engine)
    await ledger.append([Transfer("grant", MINT, ALICE, 1 + i) for i in range(n)])
    return ledger, StoreSource(ledger, "test.local/ledger")


async def test_a_proof_within_the_store_is_its_ledgers(store: SqlStore) -> None:
    ledger, source = await _source(store, 5)
    proof = await source.consistency(2, 5)
    assert verify_consistency(2, 5, await ledger.root_at(2), await ledger.root_at(5), proof)


async def test_a_checkpoint_past_the_store_is_said_in_words(store: SqlStore) -> None:
    # found 2026-12-06 (newuser37): the check docs/deploy.md gives before starting on a
    # restored database, `ledger verify --database-url ... --compare ledger.checkpoint`, ended
    # its `unproven` line with the ledger's argument check, "(second must be 0 to 141)"
    _, source = await _source(store, 5)
    with pytest.raises(ValueError) as caught:
        await source.consistency(5, 8)
    said = str(caught.value)
    assert "holds 5 entries" in said and "lacks entries 5 to 7" in said
    assert "restored from an older backup" in said
    assert "must be" not in said
