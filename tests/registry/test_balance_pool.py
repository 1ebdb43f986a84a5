"""``GET /v1/balance`` without a key: the pool's row is read from the store at most once a
``POOL_READ_EVERY_S`` per process (found 2026-12-05: every call read the database,
unlimited, from any number of addresses). docs/security.md, "Users and API keys"."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from LLM_Mesh.core.ledger_entry import POOL
from LLM_Mesh.registry.balance_api import POOL_READ_EVERY_S
from LLM_Mesh.registry.ledger import SqlLedger
from tests.registry.helpers import Harness, running
from tests.registry.test_access import bearer
from tests.registry.test_charge import new_user


def _count_reads(h: Harness) -> list[tuple[str, ...]]:
    ledger = h.runtime.ledger
    assert isinstance(ledger, SqlLedger)
    reads: list[tuple[str, ...]] = []
    plain = ledger.stored_balances

    async def counted(accounts: Any = None) -> Any:
        reads.append(tuple(accounts or ()))
        return await plain(accounts)

    ledger.stored_balances = counted  # type: ignore[method-assign]
    return reads


async def test_pool_balance_reads_the_store_once_a_second(tmp_path: Path) -> None:
    async with running(tmp_path, pool_daily_budget=7_000) as h:
        key, _ = await new_user(h, 1000)
        reads = _count_reads(h)
        answers = await asyncio.gather(*(h.client.get("/v1/balance") for _ in range(20)))
        answers += [await h.client.get("/v1/balance") for _ in range(20)]
        for r in answers:
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["account"] == POOL and body["balance"] == 7_000
            assert body == answers[0].json()
        assert reads == [(POOL,)]  # before: 40 reads
        h.clock.advance(POOL_READ_EVERY_S)
        assert (await h.client.get("/v1/balance")).status_code == 200
        assert reads == [(POOL,), (POOL,)]  # read again once it is that old
        mine = await h.client.get("/v1/balance", headers=bearer(key))
        assert mine.status_code == 200 and mine.json()["balance"] == 1000
        assert len(reads) == 3  # a key's own row: read each time
