"""Settlement after a holder stops: a crashed holder recovered, one taken for dead that still
records its answer once, a lapsed answer the payer cannot cover, a restart on the same home,
and a clean stop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.registry.settlement_fixtures import (
    OP_A,
    OP_B,
    USER,
    answer_of,
    crash,
    crashed_on_home,
    grant,
    ledger_entries,
    make_settlement,
    settlement_rows,
)


async def test_a_crashed_holder_is_recovered_answered_settled_pending_voided(
    store: SqlStore,
) -> None:
    """A gateway dies with one request answered (not yet in the ledger) and one pending:
    the next one settles the first once and voids the second."""
    await grant(store, USER, 10_000)
    dead = make_settlement(store)
    await dead.start()
    assert (await dead.reserve("answered", USER, "m", 1000)).ok
    assert (await dead.reserve("pending", USER, "m", 2000)).ok
    assert await dead.answer(answer_of("answered", ("n1", OP_A, 300, 15)))
    await crash(dead)
    assert await Settlement.balance(dead, USER) == (10_000, 2300)

    alive = make_settlement(store, holder_ttl_s=3600.0)
    await alive.start()  # the dead holder beat just now: not recovered yet
    try:
        assert {r["state"] for r in (await settlement_rows(store)).values()} == {
            "answered",
            "pending",
        }
        await _silence(store, dead.holder)
        assert await alive.recover() == (1, 1)
        assert await alive.recover() == (0, 0)  # once
        assert await alive.balance(USER) == (9_700, 0)
        assert await alive.balance(OP_A) == (285, 0)
        states = {k[0]: r["state"] for k, r in (await settlement_rows(store)).items()}
        assert states == {"answered": "settled", "pending": "lapsed"}
        report = await audit(StoreSource(alive.ledger, "x"))
        assert report.ok, report.findings
    finally:
        await alive.stop()


async def test_a_holder_taken_for_dead_still_records_its_answer_once(store: SqlStore) -> None:
    """A live gateway whose heartbeat stalled is taken for dead: another process voids its
    pending row (``lapsed``, the estimate released). When it then answers, the answer is
    recorded after all (the payer still covers it) and paid exactly once."""
    await grant(store, USER, 10_000)
    slow, other = make_settlement(store), make_settlement(store)
    await slow.start()
    await other.start()
    try:
        assert (await slow.reserve("r1", USER, "m", 1000)).ok
        await _silence(store, slow.holder)
        assert await other.recover() == (0, 1)
        assert (await settlement_rows(store))[("r1", 0)]["state"] == "lapsed"
        assert await other.balance(USER) == (10_000, 0)  # released
        assert await slow.answer(answer_of("r1", ("n1", OP_A, 300, 15), ("n2", OP_B, 100, 5)))
        assert slow.unpaid == 0
        assert await slow.balance(USER) == (10_000, 400)  # reserved again: the exact total
        assert await other.recover() == (0, 0)  # alive again (its beat): not recovered
        await slow.flush()
        assert await slow.answer(answer_of("r1", ("n1", OP_A, 300, 15))) is False  # once
        await slow.flush()
        assert await slow.balance(USER) == (9_600, 0)
        assert await slow.balance(OP_A) == (285, 0) and await slow.balance(OP_B) == (95, 0)
        assert [e[4] for e in await ledger_entries(store) if e[0] == "settle"] == ["r1", "r1"]
        assert (await audit(StoreSource(slow.ledger, "x"))).ok
    finally:
        await other.stop()
        await slow.stop()


async def test_a_lapsed_answer_the_payer_cannot_cover_any_more_is_unpaid(
    store: SqlStore,
) -> None:
    await grant(store, USER, 1000)
    slow, other = make_settlement(store), make_settlement(store)
    await slow.start()
    await other.start()
    try:
        assert (await slow.reserve("r1", USER, "m", 1000)).ok
        await _silence(store, slow.holder)
        assert await other.recover() == (0, 1)
        assert (await other.reserve("r2", USER, "m", 800)).ok  # the released funds, spent
        assert await slow.answer(answer_of("r1", ("n1", OP_A, 300, 15))) is False
        assert slow.unpaid == 1
        assert (await settlement_rows(store))[("r1", 0)]["state"] == "lapsed"
        assert await other.balance(USER) == (1000, 800)  # r2's reservation only
    finally:
        await other.stop()
        await slow.stop()


async def test_a_restart_on_the_same_home_recovers_its_predecessor_at_start(
    store: SqlStore, tmp_path: Path
) -> None:
    second = await crashed_on_home(store, tmp_path)
    await second.start()
    try:
        states = {k[0]: r["state"] for k, r in (await settlement_rows(store)).items()}
        assert states == {"r1": "lapsed", "r2": "settled"}
        assert await second.balance(USER) == (9_900, 0)
        # a third process on the same home while the second runs does not take its rows
        assert (await second.reserve("r3", USER, "m", 1000)).ok
        third = make_settlement(store, home=tmp_path, holder_ttl_s=3600.0)
        await third.start()
        await third.stop()
        assert (await settlement_rows(store))[("r3", 0)]["state"] == "pending"
    finally:
        await second.stop()
    assert (await settlement_rows(store))[("r3", 0)][
        "state"
    ] == "void"  # a clean stop voids its own


async def test_a_clean_stop_settles_what_was_answered(store: SqlStore) -> None:
    await grant(store, USER, 10_000)
    st = make_settlement(store)
    await st.start()
    assert (await st.reserve("r1", USER, "m", 1000)).ok
    assert await st.answer(answer_of("r1", ("n1", OP_A, 100, 5)))
    await st.stop()
    assert (await settlement_rows(store))[("r1", 0)]["state"] == "settled"
    with pytest.raises(RuntimeError, match="not running"):
        await st.reserve("r2", USER, "m", 1)


async def _silence(store: SqlStore, holder: str) -> None:
    """Make ``holder``'s last heartbeat two hours old."""
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE settle_holders SET beat_ms = beat_ms - 7200000 WHERE holder = :h"),
            {"h": holder},
        )
