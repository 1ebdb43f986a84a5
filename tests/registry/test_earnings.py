"""An operator's earnings from settlements and reward periods, on SQLite and PostgreSQL.

Settlements are written here as the settlement code writes them: a ``settlements`` row
in state ``settled`` committed with its ``settle`` (payer → operator, amount − fee) and
``fee`` (payer → network) ledger entries, in the append's guard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.ledger_entry import MINT, NETWORK, Transfer, pseudonym
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.earnings import account_balance, earnings
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)
ALICE, BOB = operator_account("alice"), operator_account("bob")
USER = pseudonym("user", "key-1")


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> AsyncEngine:
        return store.engine

    return SqlLedger(engine)


async def settle(
    ledger: SqlLedger,
    request_id: str,
    *,
    node_id: str,
    operator: str,
    model: str,
    amount: int,
    fee: int,
    at: datetime,
    state: str = "settled",
    part: int = 0,
) -> None:
    """A request part paid as the settlement code pays it (row and entries together)."""

    async def guard(conn: AsyncConnection) -> bool:
        await conn.execute(
            tables.settlements.insert().values(
                request_id=request_id, part=part, payer=USER, node_id=node_id,
                operator=operator, model=model, estimate=amount, amount=amount, fee=fee,
                state=state, receipt_hash=None, created_at=at, updated_at=at,
            )
        )  # fmt: skip
        return True

    if state != "settled":
        await ledger.locked(guard)
        return
    transfers = [Transfer("settle", USER, operator, amount - fee, request_id=request_id)]
    if fee:
        transfers.append(Transfer("fee", USER, NETWORK, fee, request_id=request_id))
    assert await ledger.append(transfers, guard=guard)


async def reward_row(
    ledger: SqlLedger, node_id: str, operator: str | None, start: datetime, amount: int
) -> None:
    """A closed reward period as ``registry/rewards.py`` writes it."""

    async def guard(conn: AsyncConnection) -> bool:
        await conn.execute(
            tables.reward_periods.insert().values(
                node_id=node_id, period_start=int(start.timestamp()), period_s=3600,
                operator=operator, healthy_ms=1_800_000, mark_ms=0, performance=1000,
                success=1000, amount=amount, entry_seq=None, created_at=start,
            )
        )  # fmt: skip
        return True

    if amount and operator:
        await ledger.append([Transfer("reward", MINT, operator, amount)], guard=guard)
    else:
        await ledger.locked(guard)


@pytest.fixture
async def filled(store: SqlStore) -> AsyncIterator[SqlLedger]:
    ledger = _ledger(store)
    await ledger.append([Transfer("grant", MINT, USER, 10_000_000)])
    day1, day2 = NOW - timedelta(days=1), NOW
    await settle(
        ledger, "r1", node_id="a1", operator=ALICE, model="m1", amount=1000, fee=50, at=day1
    )
    await settle(
        ledger, "r2", node_id="a1", operator=ALICE, model="m2", amount=2000, fee=100, at=day2
    )
    await settle(
        ledger, "r3", node_id="a2", operator=ALICE, model="m1", amount=500, fee=25, at=day2
    )
    # a continued stream: its second part on another of alice's nodes
    await settle(
        ledger, "r3", node_id="a1", operator=ALICE, model="m1", amount=300, fee=15, at=day2, part=1
    )
    # not alice's, not settled, or too old
    await settle(ledger, "r4", node_id="b1", operator=BOB, model="m1", amount=7000, fee=0, at=day2)
    await settle(
        ledger,
        "r5",
        node_id="a1",
        operator=ALICE,
        model="m1",
        amount=900,
        fee=9,
        at=day2,
        state="pending",
    )
    await settle(
        ledger,
        "r6",
        node_id="a1",
        operator=ALICE,
        model="m1",
        amount=800,
        fee=8,
        at=day2,
        state="void",
    )
    await settle(
        ledger, "r7", node_id="a1", operator=ALICE, model="m1", amount=111, fee=1,
        at=NOW - timedelta(days=40),
    )  # fmt: skip
    start = NOW.replace(minute=0) - timedelta(hours=1)
    await reward_row(ledger, "a1", ALICE, start, 100_000)
    await reward_row(ledger, "a2", ALICE, start, 40_000)
    await reward_row(ledger, "a2", ALICE, start - timedelta(days=1), 60_000)
    await reward_row(ledger, "a1", None, start - timedelta(hours=1), 0)  # a mark, not paid
    await reward_row(ledger, "b1", BOB, start, 99_000)
    yield ledger


async def _report(ledger: SqlLedger, **kw: object) -> dict[str, object]:
    e = await earnings(
        await ledger.engine(), operator="alice", account=ALICE, nodes=["a2", "a1"],
        now=NOW.timestamp(), **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return e.to_json()


async def test_earnings_per_day_model_and_node(filled: SqlLedger) -> None:
    got = await _report(filled)
    assert got["object"] == "earnings" and got["unit"] == "micro-NetworkToken"
    assert (got["since"], got["until"]) == ("2026-11-02", "2026-12-01")
    assert got["nodes"] == ["a1", "a2"]
    earned = (1000 - 50) + (2000 - 100) + (500 - 25) + (300 - 15)
    rewards = 100_000 + 40_000 + 60_000
    assert got["totals"] == {
        "requests": 4, "earned": earned, "fees": 50 + 100 + 25 + 15, "rewards": rewards,
        "total": earned + rewards,
    }  # fmt: skip
    by_day = {d["day"]: d for d in got["by_day"]}  # type: ignore[union-attr]
    assert by_day["2026-11-30"]["earned"] == 950 and by_day["2026-11-30"]["rewards"] == 60_000
    assert by_day["2026-12-01"]["earned"] == earned - 950
    assert by_day["2026-12-01"]["rewards"] == 140_000 and by_day["2026-12-01"]["requests"] == 3
    assert got["by_model"] == [
        {"model": "m1", "requests": 3, "earned": 950 + 475 + 285, "fees": 90},
        {"model": "m2", "requests": 1, "earned": 1900, "fees": 100},
    ]
    by_node = {n["node_id"]: n for n in got["by_node"]}  # type: ignore[union-attr]
    assert sorted(by_node) == ["a1", "a2"]  # bob's b1 never appears
    assert by_node["a1"]["earned"] == 950 + 1900 + 285 and by_node["a1"]["rewards"] == 100_000
    assert by_node["a2"]["earned"] == 475 and by_node["a2"]["rewards"] == 100_000
    assert by_node["a2"]["healthy_s"] == 3600
    # the balance is the ledger's: what was paid in, nothing else
    assert got["balance"] == earned + rewards + (111 - 1)  # the old request was paid too
    report = await audit(StoreSource(filled, "test.local/ledger"))
    assert report.ok, report.findings
    assert report.balances[ALICE] == got["balance"]


async def test_earnings_of_one_node_and_a_shorter_window(filled: SqlLedger) -> None:
    got = await _report(filled, node="a2", days=1)
    assert (got["since"], got["until"], got["node"]) == ("2026-12-01", "2026-12-01", "a2")
    assert got["totals"] == {
        "requests": 1,
        "earned": 475,
        "fees": 25,
        "rewards": 40_000,
        "total": 40_475,
    }
    assert [n["node_id"] for n in got["by_node"]] == ["a2"]  # type: ignore[union-attr]


async def test_no_earnings_is_zeros_not_an_error(store: SqlStore) -> None:
    ledger = _ledger(store)
    got = await _report(ledger)
    assert got["totals"] == {"requests": 0, "earned": 0, "fees": 0, "rewards": 0, "total": 0}
    assert got["by_day"] == [] and got["balance"] == 0
    with pytest.raises(ValueError):
        await _report(ledger, days=0)


async def test_account_balance_is_credits_less_debits(store: SqlStore) -> None:
    ledger = _ledger(store)
    await ledger.append([Transfer("grant", MINT, ALICE, 500), Transfer("grant", MINT, BOB, 7)])
    await ledger.append([Transfer("settle", ALICE, BOB, 120, request_id="x")])
    async with store.engine.connect() as conn:
        assert await account_balance(conn, ALICE) == 380
        assert await account_balance(conn, BOB) == 127
        assert await account_balance(conn, MINT) == -507
        assert await account_balance(conn, "operator:nobody") == 0


async def test_an_old_account_is_added_up_and_named_only_with_a_history(
    filled: SqlLedger,
) -> None:
    """``old_account`` (the unkeyed account of before migration 0018) is named, and added
    up, when anything names it: an entry, a settlement or a reward period; one nothing
    names is ``None`` (it would add nothing: the figures are the same)."""
    unused = pseudonym("operator", "alice")
    plain = await _report(filled)
    got = await _report(filled, old_account=unused)
    assert got["old_account"] is None
    assert {k: v for k, v in got.items() if k != "old_account"} == {
        k: v for k, v in plain.items() if k != "old_account"
    }
    # an old account with entries of its own (BOB's stands in: paid, rewarded)
    got = await _report(filled, old_account=BOB)
    assert got["old_account"] == BOB
    assert got["balance"] == plain["balance"] + 7000 + 99_000
