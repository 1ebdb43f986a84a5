"""A settlement for the settlement tests (``test_settlement*.py``, ``test_settle_start.py``):
its ledger, a started one on the test store (``s``), a grant, rows and entries, an answer, and
a holder crashed or gone silent on a home."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account

USER = pseudonym("user", "key-1")
OP_A, OP_B = operator_account("alice"), operator_account("bob")


T0 = 1_796_083_200.0  # 2026-12-01 00:00:00 UTC


def ledger_of(store: SqlStore) -> SqlLedger:
    async def engine() -> AsyncEngine:
        return store.engine

    return SqlLedger(engine)


def make_settlement(store: SqlStore, **kw: Any) -> Settlement:
    kw.setdefault("fee_bps", 500)
    kw.setdefault("pool_daily_budget", 0)
    kw.setdefault("wall_clock", lambda: T0)
    kw.setdefault("settle_interval_s", 3600.0)
    kw.setdefault("beat_s", 3600.0)
    return Settlement(ledger_of(store), **kw)


@pytest.fixture
async def s(store: SqlStore) -> AsyncIterator[Settlement]:
    st = make_settlement(store)
    await st.start()
    try:
        yield st
    finally:
        await st.stop()


async def grant(store: SqlStore, account: str, amount: int) -> None:
    await ledger_of(store).append_one(Transfer("grant", MINT, account, amount))


async def settlement_rows(store: SqlStore) -> dict[tuple[str, int], dict[str, Any]]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM settlements"))).mappings().all()
    return {(r["request_id"], int(r["part"])): dict(r) for r in rows}


async def ledger_entries(store: SqlStore) -> list[tuple[str, str, str, int, str | None]]:
    entries, _ = await ledger_of(store).entries(-1, 10_000)
    return [(e.kind, e.from_account, e.to_account, e.amount, e.request_id) for e in entries]


def answer_of(key: str, *parts: tuple[str, str | None, int, int], estimate: int = 1000) -> Answer:
    return Answer(key, USER, "gemma-3-270m", estimate, tuple(PaidPart(*p) for p in parts))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


async def crashed_on_home(store: SqlStore, home: Path) -> Settlement:
    """A settlement on ``home`` that reserved r1 and r2 for USER (1,000 each; r2 answered,
    100 to OP_A) and crashed (:func:`_crash`): its heartbeat fresh, its home lock released;
    and its successor on the same home, not started, that may take that fresh holder's
    rows (``holder_ttl_s`` 3,600 s). Once the successor recovered its predecessor, r1 is
    lapsed, r2 settled and USER's balance (9,900, 0)."""
    await grant(store, USER, 10_000)
    first = make_settlement(store, home=home)
    await first.start()
    assert (await first.reserve("r1", USER, "m", 1000)).ok
    assert (await first.reserve("r2", USER, "m", 1000)).ok
    assert await first.answer(answer_of("r2", ("n1", OP_A, 100, 5)))
    await crash(first)  # its heartbeat is fresh, but its home lock is released
    return make_settlement(store, home=home, holder_ttl_s=3600.0)


async def crash(st: Settlement) -> None:
    """Stop ``st`` as a killed process would: no flush, no voids, its connection gone."""
    st._started = False
    for task in [*st._tasks, st._writer]:
        if task is not None:
            task.cancel()
    await st.db.close()
    if st._worker is not None:
        await st._worker.stop()
    if st._home_lock is not None:
        st._home_lock.release()


def sqlite_only(s: Settlement) -> None:
    if not hasattr(s.db, "try_inline"):
        pytest.skip("the loop iteration's batch is SQLite's (PostgreSQL group-commits)")
