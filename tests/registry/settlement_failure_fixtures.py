"""Settlement with failing writes, for ``test_settlement_failures*.py``: a started settlement
with quick retries, a grant, an answer, its states, writes that commit then are lost or fail
before the commit, and the paid and unpaid said."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import text

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry import settle_upkeep
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import SqliteSettleDb
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.waiting import SOON_S, scaled

USER = pseudonym("user", "key-1")


T0 = 1_796_083_200.0
E = 1000  # the estimate of every request here


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle_upkeep, "_AGAIN_S", (0.02, 0.05, 0.1))


def ledger_of(store: SqlStore) -> SqlLedger:
    async def engine() -> Any:
        return store.engine

    return SqlLedger(engine)


async def started(store: SqlStore, **kw: Any) -> Settlement:
    kw.setdefault("lease_idle_s", 3600.0)
    s = Settlement(
        ledger_of(store), fee_bps=500, pool_daily_budget=0, wall_clock=lambda: T0,
        settle_interval_s=3600.0, beat_s=3600.0, **kw,
    )  # fmt: skip
    await s.start()
    return s


async def grant(store: SqlStore, amount: int) -> None:
    await ledger_of(store).append_one(Transfer("grant", MINT, USER, amount))


async def states_of(store: SqlStore) -> dict[str, str]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT request_id, state FROM settlements"))).all()
    return {str(r[0]): str(r[1]) for r in rows}


async def until(check: Any, timeout: float = SOON_S) -> None:
    """Wait (the retries run on the loop) until ``await check()`` is true."""
    deadline = time.monotonic() + scaled(timeout)  # a fixed 5 s before flakes40
    while not await check():
        assert time.monotonic() < deadline, "still not written"
        await asyncio.sleep(0.02)


def through_apply(s: Settlement, monkeypatch: pytest.MonkeyPatch, wrap: Any) -> None:
    """Every hot-path write through ``wrap(real apply)`` (SQLite: not at once on the loop)."""
    monkeypatch.setattr(s.db, "apply", wrap(s.db.apply))
    if isinstance(s.db, SqliteSettleDb):
        monkeypatch.setattr(s.db, "try_inline", lambda ops, holder, now=None: None)


def commit_then_lose(real: Any) -> Any:
    async def apply(ops: Any, holder: str, now: Any) -> Any:
        await real(ops, holder, now)
        raise ConnectionError("the connection was lost after the commit")

    return apply


def fail_before_commit(real: Any) -> Any:
    async def apply(ops: Any, holder: str, now: Any) -> Any:
        raise ConnectionError("the connection was lost before the commit")

    return apply
