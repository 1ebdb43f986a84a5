"""A take that commits after its lease went back (PostgreSQL: the take's connection lost
while the server still ran it, waiting on the payer's row; the reconnects failed, the take
counted failed, its lease handed back idle, a give of no row; then the server commits the
take): a lease row the holder's book no longer knows, reserving the payer's balance.

Found 2026-12-05 (named in docs/ARCHITECTURE.md as not covered): it stayed until the
holder's stop, which for a gateway that runs for weeks is that long, out of the payer's
available balance. Now each upkeep round hands back this holder's lease rows its book does
not know. The late commit is simulated here (its row written as the take would).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from LLM_Mesh.core.ledger_entry import MINT, Transfer, pseudonym
from LLM_Mesh.registry.settle_db import Answer, PaidPart
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.registry.crash_books import books, ledger_of

USER = pseudonym("user", "key-late")
OP_A = operator_account("alice")
T0 = 1_796_083_200.0
GRANT = 1_000_000
E = 10_000


def _settlement(store: SqlStore, **kw: Any) -> Settlement:
    return Settlement(
        ledger_of(store), fee_bps=500, pool_daily_budget=0, wall_clock=lambda: T0,
        settle_interval_s=3600.0, beat_s=3600.0, lease_estimates=4, lease_idle_s=3600.0, **kw,
    )  # fmt: skip


async def _late_take(store: SqlStore, holder: str, lease_id: str, amount: int) -> None:
    """What a take's late commit writes: the lease row, the payer's ``reserved`` raised."""
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE balances SET reserved = reserved + :a WHERE account = :p"),
            {"a": amount, "p": USER},
        )
        await conn.execute(
            text(
                "INSERT INTO settle_leases (lease_id, holder, payer, amount)"
                " VALUES (:l, :h, :p, :a)"
            ),
            {"l": lease_id, "h": holder, "p": USER, "a": amount},
        )


async def _leases(store: SqlStore) -> dict[str, int]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(text("SELECT lease_id, amount FROM settle_leases"))
        return {str(r[0]): int(r[1]) for r in rows}


async def test_a_lease_row_the_book_does_not_know_goes_back_at_the_next_upkeep(
    store: SqlStore,
) -> None:
    await ledger_of(store).append_one(Transfer("grant", MINT, USER, GRANT))
    s = _settlement(store)
    other = _settlement(store)  # another holder's lease: not this one's to hand back
    await s.start()
    await other.start()
    answer = Answer("r1", USER, "m", E, (PaidPart("n1", OP_A, 3_000, 150),), "aa" * 32)
    try:
        assert (await s.reserve("r1", USER, "m", E)).ok  # a live lease, in the book
        assert (await other.reserve("r2", USER, "m", E)).ok
        live = set(await _leases(store))
        assert len(live) == 2
        await _late_take(store, s.holder, "l-late-take", 4 * E)
        before = (await s.balance(USER))[1]
        await s.upkeep()
        assert set(await _leases(store)) == live  # the late one handed back, the live kept
        assert (await s.balance(USER))[1] == before - 4 * E  # released
        assert await s.answer(answer)  # the live lease still pays
        other.void("r2", USER)
    finally:
        await other.stop()
        await s.stop()
    await books(store, {"r1": answer}, ["r1"], grant=GRANT, payer=USER)
