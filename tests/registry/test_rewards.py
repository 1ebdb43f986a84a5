"""The reward task on SQLite and PostgreSQL: periods closed once, amounts, audit.

Nodes get their uptime the way the registry gives it (``touch_heartbeat`` with a credit
limit); the task is driven with an injected wall clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.identity import hash_secret
from LLM_Mesh.core.ledger_entry import MINT, pseudonym
from LLM_Mesh.registry import rewards as rewards_module
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.earnings import earnings, node_totals
from LLM_Mesh.registry.held import clear_and_release
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import RequestRecord, Store
from LLM_Mesh.registry.rewards import RewardTask, reward_request_id
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import KEYED, held_account, node_account, operator_account
from tests.registry.test_store import node

PERIOD_S = 3600
S = 1_700_000_000 // PERIOD_S * PERIOD_S  # a period start
RATE = 100_000
EXPIRY_S = 600.0  # long heartbeat intervals keep the test's transactions few
ORIGIN = "test.local/ledger"


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(S + seconds, tz=timezone.utc)


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> AsyncEngine:
        return store.engine

    return SqlLedger(engine, wall_clock=lambda: S + PERIOD_S + 20)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _task(
    store: Store, ledger: SqlLedger, clock: Clock, rate: int = RATE, uptime_nodes: int = 4
) -> RewardTask:
    return RewardTask(store, ledger, rate=rate, period_s=PERIOD_S, grace_s=10, wall_clock=clock,
                      uptime_nodes=uptime_nodes)  # fmt: skip


async def _operator(store: Store, name: str) -> None:
    await store.add_operator(name, hash_secret(f"token-{name}"), _at(-100))


async def _node(
    store: Store,
    node_id: str,
    operator: str,
    *,
    up_from: float = 0,
    up_to: float = PERIOD_S,
    models: list[dict[str, object]] | None = None,
) -> None:
    """A node of ``operator`` registered at ``up_from`` (seconds into the period) that
    heartbeats every ``EXPIRY_S`` until ``up_to``."""
    await store.claim_node_key(node_id, f"key-{node_id}", operator, 1, _at(up_from))
    rec = node(node_id, state="online", registered_at=_at(up_from), last_heartbeat_at=_at(up_from))
    if models is not None:
        rec.models = models
    await store.upsert_node(rec)
    await _beat(store, node_id, up_from, up_to)


async def _beat(store: Store, node_id: str, since: float, until: float) -> None:
    """Heartbeats from ``since`` (exclusive) to ``until`` (inclusive), at most EXPIRY_S apart."""
    t = since
    while t < until:
        t = min(t + EXPIRY_S, until)
        await store.touch_heartbeat(node_id, _at(t), "online", credit_limit_s=EXPIRY_S)


async def _rewards(ledger: SqlLedger) -> list[tuple[str, str, int, str | None]]:
    entries, _ = await ledger.entries(-1, 10_000)
    return [(e.kind, e.to_account, e.amount, e.request_id) for e in entries if e.kind == "reward"]


async def _rows(engine: AsyncEngine) -> dict[tuple[str, int], dict[str, object]]:
    rp = tables.reward_periods
    async with engine.connect() as conn:
        rows = (await conn.execute(select(rp))).mappings().all()
    return {(r["node_id"], int(r["period_start"])): dict(r) for r in rows}


def _request(i: int, node_id: str, outcome: str) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{i}", node_id=node_id, model="m", stream=False, outcome=outcome,
        error_code=None, prompt_tokens=5, completion_tokens=5, latency_ms=100.0, ttft_ms=10.0,
        cost=0.0, created_at=_at(60 + i),
    )  # fmt: skip


@pytest.fixture
async def two(database_url: str) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    """Two registries' stores on one database."""
    a, b = SqlStore(database_url), SqlStore(database_url)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_two_reward_tasks_on_one_database_pay_each_node_once(
    two: tuple[SqlStore, SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two registries close the same period at the same moment: every node has one row
    and at most one entry, whoever wrote it; the ledger still verifies."""
    monkeypatch.setattr(rewards_module, "CHUNK", 7)  # several batches, overlapping
    a, b = two
    await _operator(a, "alice")
    for i in range(30):
        await _node(a, f"n{i:02d}", "alice", up_from=0 if i % 3 else 1800)
    clock = Clock(S + PERIOD_S + 20)
    la, lb = _ledger(a), _ledger(b)
    # no cap on an operator's uptime here (test_rewards_cap.py has it with one)
    ta, tb = _task(a, la, clock, uptime_nodes=0), _task(b, lb, clock, uptime_nodes=0)
    reports = await asyncio.gather(ta.close_due(), tb.close_due(), ta.close(S), tb.close(S))
    assert sum(r.closed for r in reports if r) == 30
    assert sum(r.paid for r in reports if r) == 30
    rows = await _rows(a.engine)
    assert sorted(rows) == [(f"n{i:02d}", S) for i in range(30)]
    got = await _rewards(la)
    assert len(got) == 30
    assert len({rid for *_, rid in got}) == 30  # one entry per (node, period)
    alice = operator_account("alice")
    full, half = RATE, RATE // 2
    assert sorted(amount for _, to, amount, _ in got if to == alice) == sorted(
        [half] * 10 + [full] * 20
    )
    # rows point at their entries
    entries = {e.seq: e for e in (await la.entries(-1, 10_000))[0]}
    for (node_id, _), row in rows.items():
        entry = entries[int(str(row["entry_seq"]))]
        assert entry.request_id == reward_request_id(S, node_id, KEYED)
        assert entry.amount == row["amount"] and entry.from_account == MINT
    report = await audit(StoreSource(la, ORIGIN))
    assert report.ok, report.findings
    assert report.balances[alice] == 20 * full + 10 * half
    # and again later: nothing more for that period
    assert await ta.close(S) == rewards_module.PeriodReport(S, 0, 0, 0, 30)


async def test_amounts_follow_the_formula(store: SqlStore) -> None:
    await _operator(store, "op")
    await _operator(store, "gone")
    await _node(store, "full", "op")
    await _node(store, "half", "op", up_from=1800)
    await _node(store, "flaky", "op")
    await _node(store, "revoked", "gone")
    await store.revoke_operator("gone", _at(3500))
    await _node(store, "cut", "op")
    await store.revoke_node("cut", _at(3500))  # its key revoked, its operator not
    await _node(store, "idle", "op", up_from=0, up_to=0)  # registered, never heartbeat
    store_rows = [_request(i, "flaky", "ok" if i == 0 else "error") for i in range(4)]
    await store.record_requests(store_rows)
    ledger = _ledger(store)
    report = await _task(store, ledger, Clock(S + PERIOD_S + 20)).close_due()
    assert report is not None and (report.closed, report.paid) == (5, 3)
    op = operator_account("op")
    got = {rid: amount for _, to, amount, rid in await _rewards(ledger) if to == op}
    assert got == {
        reward_request_id(S, "full", KEYED): RATE,
        reward_request_id(S, "half", KEYED): RATE // 2,
        reward_request_id(S, "flaky", KEYED): RATE * 400 // 1000,  # 1 ok of 4: success 0.4
    }
    rows = await _rows(store.engine)
    revoked = rows[("revoked", S)]
    assert revoked["amount"] == 0 and revoked["entry_seq"] is None and revoked["operator"] is None
    assert rows[("cut", S)]["amount"] == 0 and rows[("cut", S)]["operator"] is None
    assert ("idle", S) not in rows  # no uptime: no row
    assert rows[("flaky", S)]["success"] == 400 and rows[("full", S)]["performance"] == 1000


async def test_the_next_period_counts_from_the_mark(store: SqlStore) -> None:
    """Always up across two periods: 100 % each time, although the first close ran after
    heartbeats that vouch for the next period had been counted."""
    await _operator(store, "op")
    await _node(store, "n", "op", up_to=PERIOD_S + 20)  # 20 s into the next period
    ledger = _ledger(store)
    clock = Clock(S + PERIOD_S + 25)
    task = _task(store, ledger, clock)
    first = await task.close_due()
    assert first is not None and first.amount == RATE
    assert await task.close_due() is None  # same period: nothing to do
    # heartbeats go on until 10 s into the third period
    await _beat(store, "n", PERIOD_S + 20, 2 * PERIOD_S + 10)
    clock.t = S + 2 * PERIOD_S + 15
    second = await task.close_due()
    assert second is not None and second.period_start == S + PERIOD_S
    assert second.amount == RATE
    rows = await _rows(store.engine)
    assert rows[("n", S)]["mark_ms"] == PERIOD_S * 1000
    assert rows[("n", S + PERIOD_S)]["healthy_ms"] == PERIOD_S * 1000
    # down for the whole third period: no row, no pay
    clock.t = S + 3 * PERIOD_S + 15
    third = await task.close_due()
    assert third is not None and third.closed == 1 and third.amount == RATE * 10 // 3600
    clock.t = S + 4 * PERIOD_S + 15
    fourth = await task.close_due()
    assert fourth is not None and fourth.closed == 0


async def test_rate_zero_writes_marks_and_no_entries(store: SqlStore) -> None:
    await _operator(store, "op")
    await _node(store, "n", "op")
    ledger = _ledger(store)
    report = await _task(store, ledger, Clock(S + PERIOD_S + 20), rate=0).close_due()
    assert report is not None and (report.closed, report.paid, report.amount) == (1, 0, 0)
    assert await _rewards(ledger) == []
    assert (await _rows(store.engine))[("n", S)]["mark_ms"] == PERIOD_S * 1000


async def test_a_refused_batch_is_retried_without_the_nodes_closed_elsewhere(
    store: SqlStore,
) -> None:
    """Another registry closed some nodes of the batch between our read and our write:
    ours are still paid, theirs are not paid twice."""
    await _operator(store, "op")
    for name in ("a", "b", "c"):
        await _node(store, name, "op")
    ledger = _ledger(store)
    clock = Clock(S + PERIOD_S + 20)
    ours, theirs = _task(store, ledger, clock), _task(store, ledger, clock)
    real_marks = ours._marks

    async def stale_marks(node_ids: list[str]) -> dict[str, tuple[int, int]]:
        marks = await real_marks(node_ids)
        await theirs.close(S)  # closes all three meanwhile
        return marks

    ours._marks = stale_marks  # type: ignore[method-assign]
    report = await ours.close(S)
    assert (report.closed, report.paid, report.closed_elsewhere) == (0, 0, 3)
    assert len(await _rewards(ledger)) == 3


async def test_the_loop_closes_on_its_ticks_and_stops() -> None:
    """start() runs close_due at once and after every tick (sleep injected); a failing
    close does not stop it."""
    store = MemoryStore()
    calls: list[float] = []
    ticks = asyncio.Event()

    async def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) >= 3:
            ticks.set()
        await asyncio.sleep(0)

    async def engine() -> AsyncEngine:
        raise RuntimeError("no database")  # each close fails; the loop goes on

    task = RewardTask(
        store, SqlLedger(engine), rate=RATE, period_s=PERIOD_S, grace_s=10,
        wall_clock=lambda: S + PERIOD_S + 20, sleep=sleep,
    )  # fmt: skip
    await store.upsert_node(node("n", state="online", last_heartbeat_at=_at(0)))
    await store.touch_heartbeat("n", _at(10), "online", credit_limit_s=EXPIRY_S)
    task.start()
    await asyncio.wait_for(ticks.wait(), 5)
    await task.stop()
    assert calls[:3] == [60.0, 60.0, 60.0]
    await task.stop()  # twice is fine


def test_reward_task_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RewardTask(MemoryStore(), _ledger(SqlStore("sqlite://")), rate=-1, period_s=1, grace_s=0)
    with pytest.raises(ValueError):
        RewardTask(MemoryStore(), _ledger(SqlStore("sqlite://")), rate=1, period_s=0, grace_s=0)


def test_reward_request_ids_name_the_period_and_the_node_pseudonym() -> None:
    rid = reward_request_id(S, "node-abc", KEYED)
    assert rid == f"reward:{S}:{node_account('node-abc')}"
    assert pseudonym("node", "node-abc") not in rid  # keyed: not from the public id (2026-12-03)
    assert "node-abc" not in rid and len(rid) <= 128


async def test_with_no_uptime_anywhere_the_ledger_is_not_even_opened() -> None:
    """A registry starting with no node (every test app, a fresh network) closes its first
    period without touching the ledger's database (a memory store's is made on first use)."""
    opened: list[bool] = []

    async def engine() -> AsyncEngine:
        opened.append(True)
        raise RuntimeError("not expected")

    store = MemoryStore()
    await store.upsert_node(node("idle", state="online", last_heartbeat_at=_at(0)))  # no credit
    task = RewardTask(
        store, SqlLedger(engine), rate=RATE, period_s=PERIOD_S, grace_s=10,
        wall_clock=lambda: S + PERIOD_S + 20,
    )  # fmt: skip
    assert await task.close_due() == rewards_module.PeriodReport(S, 0, 0, 0, 0)
    assert opened == []


async def test_a_quarantined_nodes_uptime_reward_is_held_not_paid(store: SqlStore) -> None:
    """A node caught by a canary keeps heartbeating: its uptime reward for the period goes
    to its held account (as its requests' shares do), not to its operator; the admin's
    clear releases it, a revocation would forfeit it. Its operator's earnings do not count
    it as earned. (Found 2026-12-02: rewards were minted to the operator all the same.)
    Its operator's spare node (a key registered before the catch) is held the same way,
    until the clear releases both; another operator's node is paid (found 2026-12-02,
    third pass: the spare was paid, each spare until it was caught itself)."""
    await _operator(store, "op")
    await _operator(store, "other")
    await _node(store, "liar", "op")
    await _node(store, "spare", "op")
    await _node(store, "bobs", "other")
    await store.record_canary("liar", "m", ok=False, reason="canary: token", at=_at(100))
    ledger = _ledger(store)
    report = await _task(store, ledger, Clock(S + PERIOD_S + 20)).close_due()
    assert report is not None and (report.closed, report.paid) == (3, 3)
    op, other = operator_account("op"), operator_account("other")
    got = sorted((to, amount) for _, to, amount, _ in await _rewards(ledger))
    assert got == sorted(
        [(other, RATE), (held_account("liar"), RATE), (held_account("spare"), RATE)]
    )
    rows = await _rows(store.engine)
    assert rows[("liar", S)]["operator"] == held_account("liar")
    assert rows[("spare", S)]["operator"] == held_account("spare")
    assert rows[("liar", S)]["amount"] == RATE
    mine = await earnings(store.engine, operator="op", account=op, nodes=["liar", "spare"],
                          days=1, now=S + PERIOD_S + 20)  # fmt: skip
    assert mine.totals.rewards == 0  # nothing paid to the operator while it is held
    assert mine.held == {"liar": RATE, "spare": RATE}
    assert (await node_totals(store.engine, days=1, now=S + PERIOD_S + 20)).keys() == {"bobs"}
    _, released, to = await clear_and_release(store, "liar", _at(PERIOD_S + 30))
    assert (released, to) == (2 * RATE, op)  # the spare's hold released with the liar's
    assert await store.held_nodes() == []
    report_ = await audit(StoreSource(ledger, ORIGIN))
    assert report_.ok, report_.findings
    assert report_.balances[op] == 2 * RATE


async def test_a_node_that_serves_only_simulated_models_earns_no_uptime(store: SqlStore) -> None:
    """``llm-mesh node start --engine sim`` declares every model simulated: it runs no
    model, so its availability is worth nothing to users; an operator running a hundred
    of them on one small machine must not be minted a hundred uptime rewards (found
    2026-12-02: paid the full rate). A node with one real model among simulated ones
    still earns; the row is written (the mark), without an entry."""
    await _operator(store, "op")
    sim = {"id": "gemma-3-270m", "engine": "sim", "simulated": True}
    real = {"id": "mistral-7b", "engine": "llama-cpp", "simulated": False}
    await _node(store, "sim", "op", models=[sim])
    await _node(store, "empty", "op", models=[])
    await _node(store, "mixed", "op", models=[sim, real])
    ledger = _ledger(store)
    report = await _task(store, ledger, Clock(S + PERIOD_S + 20)).close_due()
    assert report is not None and (report.closed, report.paid) == (3, 1)
    got = {rid: amount for _, _, amount, rid in await _rewards(ledger)}
    assert got == {reward_request_id(S, "mixed", KEYED): RATE}
    rows = await _rows(store.engine)
    assert rows[("sim", S)]["amount"] == 0 and rows[("sim", S)]["entry_seq"] is None
    assert rows[("sim", S)]["mark_ms"] == PERIOD_S * 1000  # counted, not carried over
    # a test mesh of sim nodes can count them (Settings.reward_simulated)
    later = Clock(S + 2 * PERIOD_S + 20)
    await _beat(store, "sim", PERIOD_S, 2 * PERIOD_S)
    task = RewardTask(store, ledger, rate=RATE, period_s=PERIOD_S, grace_s=10,
                      wall_clock=later, reward_simulated=True)  # fmt: skip
    second = await task.close_due()
    assert second is not None and second.paid == 1 and second.amount == RATE


async def test_after_every_registry_was_down_the_uptime_is_closed_in_its_own_period(
    store: SqlStore,
) -> None:
    """Found 2026-12-05: every registry stopped half-way through a period and came back
    two periods later; the first close (the latest due period) took the uptime counted
    before the stop and labelled it that latest period, in which the node was never up
    (``reward:<that period>``, the row too), judged by that period's requests (none:
    success 1) while the period it was earned in, and its failed requests, were never
    closed. Now a node's uptime is closed in the period of its last credited heartbeat
    when that is before the due period (and after the node's last closed one)."""
    await _operator(store, "op")
    await _node(store, "ok", "op")  # up the whole first period S
    await _node(store, "flaky", "op", up_to=PERIOD_S / 2)  # every registry stops at S + P/2
    await store.record_requests(
        [_request(i, "flaky", "ok" if i == 0 else "error") for i in range(4)]
    )
    ledger = _ledger(store)
    clock = Clock(S + 3 * PERIOD_S + 15)  # back two periods later: a fresh task closes
    report = await _task(store, ledger, clock).close_due()
    assert report is not None and report.closed == 2
    rows = await _rows(store.engine)
    assert set(rows) == {("ok", S), ("flaky", S)}, sorted(rows)  # before: both at S + 2P
    assert rows[("flaky", S)]["healthy_ms"] == PERIOD_S * 1000 // 2
    assert rows[("flaky", S)]["success"] == 400  # its period's requests (before: 1000)
    got = {rid: amount for _, _, amount, rid in await _rewards(ledger)}
    assert got == {
        reward_request_id(S, "ok", KEYED): RATE,
        reward_request_id(S, "flaky", KEYED): RATE // 2 * 400 // 1000,
    }
    # the next periods go on as before: the node's counter did not move, nothing to close
    clock.t = S + 4 * PERIOD_S + 15
    later = await _task(store, ledger, clock).close_due()
    assert later is not None and later.closed == 0


def _timed(i: int, node_id: str, latency_ms: float) -> RequestRecord:
    """An answered request of 50 completion tokens that took ``latency_ms``."""
    return RequestRecord(
        request_id=f"t{node_id}{i}", node_id=node_id, model="m", stream=False, outcome="ok",
        error_code=None, prompt_tokens=5, completion_tokens=50, latency_ms=latency_ms,
        ttft_ms=1.0, cost=0.0, created_at=_at(60 + i),
    )  # fmt: skip


async def test_nodes_that_earn_no_uptime_do_not_set_the_speed_honest_nodes_are_judged_by(
    store: SqlStore,
) -> None:
    """The attack (found 2026-12-05, attack30): the performance factor compares a node's
    speed with the median of every node that served the model in the period. An operator
    registers three sim nodes of the model (made-up text at once: they earn no uptime, so
    they cost it nothing) and a node caught by a canary (held) answers as fast: the median
    was theirs, 1,000 times the honest node's speed, and the honest node was paid half its
    reward (performance 500). Only nodes whose uptime is paid to an operator set the bar:
    alone, the honest node is judged at 1000."""
    await _operator(store, "honest")
    await _operator(store, "mallory")
    sim = {"id": "m", "engine": "sim", "simulated": True}
    await _node(store, "real", "honest")
    for n in ("s1", "s2", "s3"):
        await _node(store, n, "mallory", models=[sim])
    await _node(store, "caught", "mallory")
    await store.record_canary("caught", "m", ok=False, reason="canary: token", at=_at(100))
    rows = [_timed(i, "real", 1000.0) for i in range(3)]  # 50 tokens/s
    rows += [_timed(i, n, 1.0) for i in range(3) for n in ("s1", "s2", "s3", "caught")]
    await store.record_requests(rows)
    ledger = _ledger(store)
    report = await _task(store, ledger, Clock(S + PERIOD_S + 20)).close_due()
    assert report is not None
    closed = await _rows(store.engine)
    assert closed[("real", S)]["performance"] == 1000
    got = {rid: amount for _, to, amount, rid in await _rewards(ledger)
           if to == operator_account("honest")}  # fmt: skip
    assert got == {reward_request_id(S, "real", KEYED): RATE}


async def test_a_row_made_anew_after_retention_is_paid_its_whole_uptime(
    store: SqlStore,
) -> None:
    """Found 2026-12-06 (departed34): a node's row deleted after ``node_keep_days``
    (``registry/node_retention.py``) and registered again starts ``healthy_ms`` at 0, but
    its old ``reward_periods`` mark stays; once the new counter passed the old mark the
    close subtracted that mark from the new uptime (half a period of a full one here). The
    new row resumes at the mark (``store_rewards.last_mark``)."""
    await _operator(store, "op")
    await _node(store, "n", "op", up_from=PERIOD_S / 2)  # half the first period: mark 1.8e6
    ledger = _ledger(store)
    clock = Clock(S + PERIOD_S + 25)
    task = _task(store, ledger, clock)
    first = await task.close_due()
    assert first is not None and first.amount == RATE // 2
    async with store.engine.begin() as conn:  # the pruner's delete, 40 periods on
        await conn.execute(tables.nodes.delete().where(tables.nodes.c.node_id == "n"))
    back = 40 * PERIOD_S
    await store.claim_node_key("n", "key-n", "op", 2, _at(back))
    await store.upsert_node(
        node("n", state="online", registered_at=_at(back), last_heartbeat_at=_at(back))
    )
    await _beat(store, "n", back, back + PERIOD_S)  # the whole period up
    clock.t = S + back + PERIOD_S + 25
    again = await task.close_due()
    assert again is not None and again.period_start == S + back
    assert again.amount == RATE  # the whole period, not the whole minus the old mark
    assert (await _rows(store.engine))[("n", S + back)]["mark_ms"] == PERIOD_S * 1500
