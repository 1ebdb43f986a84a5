"""The loop iteration's batch (``Settlement._at_tick``): each write keeps its own outcome in
the shared transaction; a void and an answer of one request in one iteration apply in the
order made; PostgreSQL's writes never wait for the iteration (its writer group-commits).

The batch itself, its order with a reservation, a failed batch and a stop:
``tests/registry/test_settlement_iterations.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest

from LLM_Mesh.registry.settle_db import Void
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.registry.settlement_fixtures import (
    OP_A,
    USER,
    answer_of,
    grant,
    make_settlement,
    settlement_rows,
    sqlite_only,
)


@pytest.fixture
async def s(store: SqlStore) -> AsyncIterator[Settlement]:
    st = make_settlement(store)
    await st.start()
    try:
        yield st
    finally:
        await st.stop()


def _ticks(st: Settlement, since: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """The iteration batches written and the writes in them, since ``since``."""
    return st.tick_batches - since[0], st.tick_ops - since[1]


def _count_transactions(st: Settlement) -> list[int]:
    seen = [0]
    transact = st.db._transact  # type: ignore[attr-defined]

    def counting(fn: Any) -> Any:
        seen[0] += 1
        return transact(fn)

    st.db._transact = counting  # type: ignore[attr-defined]
    return seen


async def test_an_answer_whose_row_is_gone_is_false_the_others_in_its_batch_recorded(
    s: Settlement, store: SqlStore
) -> None:
    sqlite_only(s)
    await grant(store, USER, 10_000)
    for key in ("r1", "r2", "r3"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    await s.db.apply([_void("r2")], s.holder, utc_now())  # voided elsewhere (recovery)
    seen, before = _count_transactions(s), _ticks(s)
    got = await asyncio.gather(
        *(s.answer(answer_of(k, ("n1", OP_A, 300, 15))) for k in ("r1", "r2", "r3"))
    )
    assert got == [True, False, True] and seen == [1]
    assert _ticks(s, before) == (1, 3)
    rows = await settlement_rows(store)
    assert [rows[(k, 0)]["state"] for k in ("r1", "r2", "r3")] == ["answered", "void", "answered"]
    assert s.unpaid == 1
    assert await s.balance(USER) == (10_000, 600)  # r1 and r3 at their exact cost


async def test_an_answer_then_the_void_of_its_request_in_one_iteration(
    s: Settlement, store: SqlStore
) -> None:
    """The answer, made first, is recorded; the void after it finds the row answered and
    changes nothing (a request answered is paid)."""
    sqlite_only(s)
    await grant(store, USER, 10_000)
    for key in ("r0", "r1"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    before = _ticks(s)
    task = asyncio.create_task(s.answer(answer_of("r1", ("n1", OP_A, 400, 20))))
    await asyncio.sleep(0)  # the answer waits for the iteration's batch
    s.void("r1", USER)  # in the same iteration: after it
    assert await task is True
    assert _ticks(s, before) == (1, 2)
    assert (await settlement_rows(store))[("r1", 0)]["state"] == "answered"
    assert await s.balance(USER) == (10_000, 1400)  # r0's estimate, r1's exact cost


async def test_a_void_then_the_answer_of_its_request_in_one_iteration(
    s: Settlement, store: SqlStore
) -> None:
    """The void, made first, releases the row; the answer after it finds it void: not
    recorded, nothing paid, counted unpaid (as when the void's own write came first)."""
    sqlite_only(s)
    await grant(store, USER, 10_000)
    for key in ("r0", "r1", "r2"):
        assert (await s.reserve(key, USER, "m", 1000)).ok
    before = _ticks(s)

    async def void_then_answer() -> bool:
        s.void("r1", USER)  # joins the batch r2's answer started
        return await s.answer(answer_of("r1", ("n1", OP_A, 400, 20)))

    got = await asyncio.gather(s.answer(answer_of("r2", ("n1", OP_A, 100, 5))), void_then_answer())
    assert got == [True, False]
    assert _ticks(s, before) == (1, 3)
    assert (await settlement_rows(store))[("r1", 0)]["state"] == "void"
    assert s.unpaid == 1
    assert await s.balance(USER) == (10_000, 1100)  # r0's estimate, r2's exact cost


async def test_postgresql_writes_do_not_wait_for_the_iteration(
    s: Settlement, store: SqlStore
) -> None:
    if hasattr(s.db, "try_inline"):
        pytest.skip("SQLite: the iteration's batch (the tests above)")
    await grant(store, USER, 100_000)
    assert (await s.reserve("r0", USER, "m", 1000)).ok
    got = await asyncio.gather(*(s.reserve(f"r{i}", USER, "m", 1000) for i in range(1, 6)))
    assert all(r.ok for r in got)
    done = await asyncio.gather(
        *(s.answer(answer_of(f"r{i}", ("n1", OP_A, 100, 5))) for i in range(6))
    )
    assert all(done) and (s.tick_batches, s.tick_ops) == (0, 0)
    assert await s.balance(USER) == (100_000, 600)


def _void(key: str) -> Void:
    return Void(key, USER)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
