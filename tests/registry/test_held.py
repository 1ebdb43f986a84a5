"""A quarantined node's earnings are held, then released or forfeited (SQLite and PostgreSQL).

The real :class:`Settlement` on a real store (``store`` fixture), paid through the admit
stage's :class:`SettledPayment` as the gateway pays a request; the node's quarantine is
the store's own (``record_canary``) read through :class:`Quality`, as in the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.ledger_entry import MINT, NETWORK, Transfer, pseudonym
from LLM_Mesh.core.pricing import network_fee
from LLM_Mesh.registry.charge import SettledPayment
from LLM_Mesh.registry.earnings import earnings, node_totals
from LLM_Mesh.registry.held import (
    clear_and_release,
    forfeit,
    held_amounts,
    release,
    revoke_and_forfeit,
)
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settlement import Settlement
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import held_account, node_account, operator_account

USER = pseudonym("user", "key-1")
ALICE = operator_account("alice")
T0 = 1_796_083_200.0  # 2026-12-01 00:00:00 UTC
MODEL = "gemma-3-270m"


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> AsyncEngine:
        return store.engine

    return SqlLedger(engine)


@pytest.fixture
async def s(store: SqlStore) -> AsyncIterator[Settlement]:
    st = Settlement(
        _ledger(store), fee_bps=500, pool_daily_budget=0, wall_clock=lambda: T0,
        settle_interval_s=3600.0, beat_s=3600.0,
    )  # fmt: skip
    await st.start()
    now = datetime.now(timezone.utc)
    await store.claim_node_key("n1", "pk-n1", "alice", 1, now)
    await store.claim_node_key("n2", "pk-n2", "alice", 1, now)
    await st.load_operators(store)
    await _ledger(store).append_one(Transfer("grant", MINT, USER, 1_000_000))
    try:
        yield st
    finally:
        await st.stop()


class _Quarantines:
    """The store's held nodes as the app's ``Quality.held`` sees them (loaded on demand):
    the quarantined ones and every other node of their operators."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.nodes: set[str] = set()

    async def load(self) -> None:
        self.nodes = set(await self.store.held_nodes())

    def held(self, node_id: str) -> bool:
        return node_id in self.nodes


async def _request(s: Settlement, key: str, node_id: str, amount: int) -> None:
    """One request answered by ``node_id`` for ``amount`` µNT, paid as the gateway pays."""
    assert (await s.reserve(key, USER, MODEL, amount)).ok
    await SettledPayment(s, key, USER, MODEL, amount).pay(
        [(node_id, amount, network_fee(amount, s.fee_bps))], None
    )
    await s.flush()


async def _entries(store: SqlStore) -> list[tuple[str, str, str, int, str | None]]:
    entries, _ = await _ledger(store).entries(-1, 10_000)
    return [(e.kind, e.from_account, e.to_account, e.amount, e.request_id) for e in entries]


async def _fail_probe(store: SqlStore, q: _Quarantines, node_id: str, model: str = MODEL) -> None:
    at = datetime.now(timezone.utc)
    await store.record_canary(node_id, model, ok=False, reason="canary: token", at=at)
    await q.load()


async def test_after_a_failed_probe_the_node_earnings_are_held_then_released_on_clear(
    s: Settlement, store: SqlStore
) -> None:
    q = _Quarantines(store)
    s.held = q.held
    held = held_account("n1")
    await _request(s, "before", "n1", 1000)  # paid: not quarantined yet
    await _fail_probe(store, q, "n1")
    await _request(s, "during", "n1", 2000)  # held: 1900 to held:..., fee 100 as ever
    # another node of alice's (a spare registered before the catch): held too (found
    # 2026-12-02, third pass: paid to alice, each spare until it was caught itself)
    await _request(s, "other", "n2", 1000)
    assert (await _entries(store))[1:] == [
        ("settle", USER, ALICE, 950, "before"), ("fee", USER, NETWORK, 50, "before"),
        ("hold", USER, held, 1900, "during"), ("fee", USER, NETWORK, 100, "during"),
        ("hold", USER, held_account("n2"), 950, "other"), ("fee", USER, NETWORK, 50, "other"),
    ]  # fmt: skip
    assert await s.balance(ALICE) == (950, 0)
    assert await held_amounts(store.engine, ["n1", "n2"]) == {"n1": 1900, "n2": 950}
    # earnings: what is held is shown, and neither earned nor in the balance
    rep = await earnings(
        store.engine, operator="alice", account=ALICE, nodes=["n1", "n2"], now=T0 + 3600
    )
    assert rep.totals.earned == 950 and rep.balance == 950
    assert rep.to_json()["held"] == 2850
    assert rep.to_json()["held_by_node"] == {"n1": 1900, "n2": 950}
    totals = await node_totals(store.engine, days=1, now=T0 + 3600)
    assert totals["n1"]["earned"] == 950 and totals.get("n2", {}).get("earned", 0) == 0

    at = datetime.now(timezone.utc)
    models, amount, to = await clear_and_release(store, "n1", at)
    assert (models, amount, to) == ([MODEL], 2850, ALICE)  # the spare's hold with it
    assert (await _entries(store))[-2:] == [
        ("release", held, ALICE, 1900, None),
        ("release", held_account("n2"), ALICE, 950, None),
    ]
    assert await s.balance(ALICE) == (3800, 0)
    assert await held_amounts(store.engine, ["n1", "n2"]) == {}
    await q.load()
    await _request(s, "after", "n1", 1000)  # cleared: paid again
    assert (await _entries(store))[-2][:3] == ("settle", USER, ALICE)
    # a second clear: nothing quarantined, nothing held, no entry
    before = len(await _entries(store))
    assert await clear_and_release(store, "n1", at) == ([], 0, ALICE)
    assert len(await _entries(store)) == before
    report = await audit(StoreSource(_ledger(store), "x"))
    assert report.ok, report.findings
    assert report.balances[held] == 0 and report.balances[ALICE] == 4750


async def test_an_operator_stays_held_until_its_last_quarantine_is_cleared(
    s: Settlement, store: SqlStore
) -> None:
    """Two of alice's nodes quarantined: clearing one releases nothing (both still held);
    revoking the other forfeits its own held balance only, and its siblings stay held
    until the admin clears it (or revokes them, or the operator)."""
    q = _Quarantines(store)
    s.held = q.held
    now = datetime.now(timezone.utc)
    await store.claim_node_key("n3", "pk-n3", "alice", 1, now)
    await _fail_probe(store, q, "n1")
    await _fail_probe(store, q, "n3")
    await _request(s, "r1", "n1", 1000)
    await _request(s, "r2", "n2", 1000)
    await _request(s, "r3", "n3", 1000)
    assert await clear_and_release(store, "n1", now) == ([MODEL], 0, ALICE)
    await q.load()
    assert q.held("n1") and q.held("n2")  # n3 still quarantined
    assert await store.revoke_node("n3", now)
    assert await revoke_and_forfeit(store, ["n3"]) == {"n3": 950}
    await q.load()
    assert q.held("n2")
    assert await held_amounts(store.engine, ["n1", "n2", "n3"]) == {"n1": 950, "n2": 950}
    assert await clear_and_release(store, "n3", now) == ([MODEL], 1900, ALICE)
    await q.load()
    assert not q.held("n1") and not q.held("n2")
    assert await s.balance(ALICE) == (1900, 0)
    report = await audit(StoreSource(_ledger(store), "x"))
    assert report.ok, report.findings


async def test_a_quarantine_for_one_model_holds_the_node_earnings_for_every_model(
    s: Settlement, store: SqlStore
) -> None:
    q = _Quarantines(store)
    s.held = q.held
    await _fail_probe(store, q, "n1", model="other-model")
    await _request(s, "r1", "n1", 1000)  # a request for MODEL: held too
    assert (await _entries(store))[1][:3] == ("hold", USER, held_account("n1"))


async def test_an_answer_recorded_before_the_quarantine_is_paid_even_if_settled_after(
    s: Settlement, store: SqlStore
) -> None:
    q = _Quarantines(store)
    s.held = q.held
    assert (await s.reserve("r1", USER, MODEL, 1000)).ok
    await SettledPayment(s, "r1", USER, MODEL, 1000).pay(
        [("n1", 1000, network_fee(1000, s.fee_bps))], None
    )
    await _fail_probe(store, q, "n1")  # the probe fails before the settler runs
    await s.flush()
    assert (await _entries(store))[1][:3] == ("settle", USER, ALICE)


async def test_revoking_a_held_node_forfeits_its_held_earnings_to_the_network(
    s: Settlement, store: SqlStore
) -> None:
    q = _Quarantines(store)
    s.held = q.held
    await _fail_probe(store, q, "n1")
    await _request(s, "r1", "n1", 2000)
    await _request(s, "r2", "n1", 1000)
    held = held_account("n1")
    assert await s.balance(held) == (2850, 0)
    assert await store.revoke_node("n1", datetime.now(timezone.utc))
    assert await revoke_and_forfeit(store, ["n1", "n2"]) == {"n1": 2850}
    assert (await _entries(store))[-1] == ("forfeit", held, NETWORK, 2850, None)
    assert await s.balance(held) == (0, 0) and await s.balance(ALICE) == (0, 0)
    assert await forfeit(_ledger(store), "n1") == 0  # nothing left: no entry
    assert (await _entries(store))[-1][0] == "forfeit"
    assert (await release(_ledger(store), "n1"))[0] == 0  # nor anything to release
    report = await audit(StoreSource(_ledger(store), "x"))
    assert report.ok, report.findings
    assert report.balances[NETWORK] == 150 + 2850


async def test_a_node_without_a_key_is_released_to_its_node_account(store: SqlStore) -> None:
    ledger = _ledger(store)
    await ledger.append_one(Transfer("grant", MINT, USER, 500))
    await ledger.append_one(Transfer("hold", USER, held_account("stray"), 300, "r1"))
    amount, to = await release(ledger, "stray")
    assert (amount, to) == (300, node_account("stray"))


@pytest.mark.parametrize("by", ["settler", "recovery"])
async def test_a_hold_settled_after_the_revocation_is_forfeited_with_it(
    s: Settlement, store: SqlStore, by: str
) -> None:
    """A quarantined node answered a request; the admin revokes it before that answer is
    settled (a gateway's settler a moment later, or recovery of a dead gateway's rows, maybe
    days later): the revocation's forfeit finds nothing held yet. The settlement forfeits
    the share in the same append, however long after the revocation (until 2026-12-03 the
    upkeep forfeited it only within a day of the revocation: a hold recovered later stayed
    held, paid to no one)."""
    q = _Quarantines(store)
    s.held = q.held
    await _fail_probe(store, q, "n1")
    assert (await s.reserve("late", USER, MODEL, 2000)).ok
    await SettledPayment(s, "late", USER, MODEL, 2000).pay(
        [("n1", 2000, network_fee(2000, s.fee_bps))], None
    )  # answered
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    assert await store.revoke_node("n1", two_days_ago)
    assert await revoke_and_forfeit(store, ["n1"]) == {}  # nothing settled yet
    if by == "recovery":
        assert await s.recover([s.holder]) == (1, 0)  # the async append (settle_ledger.settle)
    await s.flush()  # the settler (on SQLite its own append, settle_sqlite.py)
    await s.upkeep()
    assert (await _entries(store))[-3:] == [
        ("hold", USER, held_account("n1"), 1900, "late"),
        ("forfeit", held_account("n1"), NETWORK, 1900, "late"),
        ("fee", USER, NETWORK, 100, "late"),
    ]  # fmt: skip
    assert await held_amounts(store.engine, ["n1", "n2"]) == {}
    assert await s.balance(NETWORK) == (2000, 0)
    # a held node that is not revoked keeps its hold until the admin decides
    await _request(s, "spare", "n2", 1000)
    await s.upkeep()
    assert await held_amounts(store.engine, ["n2"]) == {"n2": 950}
    report = await audit(StoreSource(_ledger(store), "x"))
    assert report.ok, report.findings


async def test_a_hold_written_after_the_revocation_is_forfeited_by_the_upkeep(
    s: Settlement, store: SqlStore
) -> None:
    """A hold that reached the held account of a node revoked in the last day some other
    way (a gateway of an earlier version settling it, during a rolling upgrade) is
    forfeited by the next upkeep round."""
    ledger = _ledger(store)
    assert await store.revoke_node("n1", datetime.now(timezone.utc))
    await ledger.append_one(Transfer("hold", USER, held_account("n1"), 300, "old"))
    await s.upkeep()
    assert (await _entries(store))[-1] == ("forfeit", held_account("n1"), NETWORK, 300, None)
    assert await held_amounts(store.engine, ["n1"]) == {}
    assert await s.forfeit_late() == {}  # a later round: nothing more held, nothing written
    report = await audit(StoreSource(ledger, "x"))
    assert report.ok, report.findings


async def test_a_revocations_forfeit_waits_for_a_hold_being_appended(store: SqlStore) -> None:
    """The revocation's forfeit runs while a settlement that read the node not revoked yet
    is appending its hold: the forfeit reads the held balance again after that append
    (under the ledger's head lock), so it forfeits the hold (until 2026-12-03 it read
    nothing held, returned, and the hold committed a moment later stayed held)."""
    ledger = _ledger(store)
    await ledger.append_one(Transfer("grant", MINT, USER, 500))
    started: list[asyncio.Task[int]] = []

    async def revoked_meanwhile(conn: AsyncConnection) -> bool:
        started.append(asyncio.create_task(forfeit(ledger, "n1")))
        await asyncio.sleep(0.3)  # the forfeit reads the held balance meanwhile
        return True

    hold = Transfer("hold", USER, held_account("n1"), 300, "r1")
    assert await ledger.append([hold], guard=revoked_meanwhile)
    assert await started[0] == 300
    assert await held_amounts(store.engine, ["n1"]) == {}
    assert (await _entries(store))[-1] == ("forfeit", held_account("n1"), NETWORK, 300, None)
