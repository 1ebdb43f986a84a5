"""The ledger on SQLite and PostgreSQL: appends, proofs, triggers, concurrency, tampering.

Tampering is done as an attacker with DDL rights would: drop the trigger, change the
table directly; ``ledger verify``'s audit must then name what was done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.ledger_audit import Report
from LLM_Mesh.core.ledger_entry import MINT, POOL, Transfer, pseudonym
from LLM_Mesh.core.merkle import root_of
from LLM_Mesh.core.merkle_verify import verify_consistency, verify_inclusion
from LLM_Mesh.registry.ledger import IssueLimit, LedgerError, SqlLedger
from LLM_Mesh.registry.ledger_signer import Checkpointer
from LLM_Mesh.registry.store import SqlStore
from tests.keyed import operator_account
from tests.waiting import SOON_S, scaled

ORIGIN = "test.local/ledger"
ALICE, BOB = pseudonym("user", "alice"), operator_account("bob")


def _ledger(store: SqlStore) -> SqlLedger:
    async def engine() -> AsyncEngine:
        return store.engine

    return SqlLedger(engine)


@pytest.fixture
async def ledger(store: SqlStore) -> AsyncIterator[SqlLedger]:
    yield _ledger(store)


async def _stored_balances(ledger: SqlLedger) -> dict[str, int]:
    """The ``balances`` table that every append keeps (migration 0006)."""
    engine = await ledger.engine()
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT account, balance FROM balances"))).all()
    return {r.account: int(r.balance) for r in rows if r.balance}


async def _fill(ledger: SqlLedger, n: int) -> None:
    await ledger.append([Transfer("grant", MINT, ALICE, 1_000_000)])
    await ledger.append(
        [Transfer("settle", ALICE, BOB, 10 + i, request_id=f"req-{i}") for i in range(n - 1)]
    )


async def test_a_guard_commits_its_rows_with_the_entries_or_rolls_all_back(
    ledger: SqlLedger,
) -> None:
    """``append(guard=)``: the guard's own writes commit with the entries; a guard that
    says no leaves no entry and none of its writes (the exactly-once building block)."""
    engine = await ledger.engine()
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE guard_probe (k VARCHAR(10) PRIMARY KEY)"))
    calls: list[str] = []

    def guard_for(key: str, answer: bool):  # type: ignore[no-untyped-def]
        async def guard(conn) -> bool:  # type: ignore[no-untyped-def]
            calls.append(key)
            await conn.execute(text("INSERT INTO guard_probe (k) VALUES (:k)"), {"k": key})
            return answer

        return guard

    ok = await ledger.append([Transfer("grant", MINT, ALICE, 5)], guard=guard_for("yes", True))
    no = await ledger.append([Transfer("grant", MINT, ALICE, 6)], guard=guard_for("no", False))
    assert [e.amount for e in ok] == [5] and no == [] and calls == ["yes", "no"]
    assert (await ledger.head())[0] == 1
    async with engine.connect() as conn:
        kept = (await conn.execute(text("SELECT k FROM guard_probe"))).scalars().all()
    assert kept == ["yes"]
    assert (await ledger.balances())[ALICE] == 5


async def test_locked_work_commits_or_rolls_back_without_an_entry(ledger: SqlLedger) -> None:
    """``locked``: a guard's kind of work when there is nothing to append (a reward
    period's zero-amount rows), under the same head lock; ``False`` writes nothing."""
    engine = await ledger.engine()
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE locked_probe (k VARCHAR(10) PRIMARY KEY)"))

    def work_for(key: str, answer: bool):  # type: ignore[no-untyped-def]
        async def work(conn) -> bool:  # type: ignore[no-untyped-def]
            await conn.execute(text("INSERT INTO locked_probe (k) VALUES (:k)"), {"k": key})
            return answer

        return work

    assert await ledger.locked(work_for("yes", True)) is True
    assert await ledger.locked(work_for("no", False)) is False
    async with engine.connect() as conn:
        kept = (await conn.execute(text("SELECT k FROM locked_probe"))).scalars().all()
    assert kept == ["yes"] and (await ledger.head())[0] == 0


async def test_append_chains_and_proves(ledger: SqlLedger) -> None:
    entries = await ledger.append(
        [Transfer("grant", MINT, ALICE, 500), Transfer("settle", ALICE, BOB, 200, "r1", "ab" * 32)]
    )
    assert [e.seq for e in entries] == [0, 1]
    assert entries[1].prev_hash == entries[0].leaf_hash
    more = await ledger.append([Transfer("grant", MINT, POOL, 7) for _ in range(9)])
    assert [e.seq for e in more] == list(range(2, 11))
    leaves = [bytes.fromhex(e.leaf_hash) for e in entries + more]
    size, root = await ledger.head()
    assert size == 11 and root == root_of(leaves)
    for n in range(1, 12):
        assert await ledger.root_at(n) == root_of(leaves[:n])
        for m in range(n):
            leaf, r, path = await ledger.inclusion_proof(m, n)
            assert leaf == leaves[m] and verify_inclusion(m, n, leaf, path, r)
        for m in range(0, n + 1):
            r1, r2, proof = await ledger.consistency_proof(m, n)
            assert verify_consistency(m, n, r1, r2, proof)
    page, more_ = await ledger.entries(after=4, limit=3)
    assert [e.seq for e in page] == [5, 6, 7] and more_
    assert await ledger.balances() == {MINT: -563, ALICE: 300, BOB: 200, POOL: 63}
    assert await _stored_balances(ledger) == await ledger.balances()
    size, every = await ledger.stored_balances()
    assert size == 11
    assert {a: bal for a, (bal, _) in every.items() if bal} == await ledger.balances()
    # some accounts (GET /v1/balance's one): theirs only, the same snapshot's size
    assert await ledger.stored_balances((ALICE, "user:nobody")) == (11, {ALICE: every[ALICE]})
    assert await ledger.stored_balances(()) == (11, {})
    with pytest.raises(LedgerError):
        await ledger.inclusion_proof(11, 11)
    with pytest.raises(LedgerError):
        await ledger.consistency_proof(3, 12)


async def test_a_batch_is_all_or_nothing(ledger: SqlLedger) -> None:
    with pytest.raises(ValueError):
        await ledger.append([Transfer("grant", MINT, ALICE, 5), Transfer("x", MINT, ALICE, 0)])
    await ledger.append([Transfer("grant", MINT, ALICE, 5)])
    assert (await ledger.head())[0] == 1


@pytest.mark.parametrize("statement", ["UPDATE {t} SET {c} = {c}", "DELETE FROM {t}"])
@pytest.mark.parametrize(
    ("table", "column"),
    [("ledger_entries", "amount"), ("ledger_nodes", "hash"), ("ledger_checkpoints", "note")],
)
async def test_triggers_refuse_changes(
    ledger: SqlLedger, store: SqlStore, statement: str, table: str, column: str
) -> None:
    await _fill(ledger, 4)
    cp = Checkpointer(ledger, Ed25519PrivateKey.generate(), ORIGIN)
    assert await cp.checkpoint() is not None
    with pytest.raises(DBAPIError, match="append-only"):
        async with store.engine.begin() as conn:
            await conn.execute(text(statement.format(t=table, c=column)))
    async with store.engine.connect() as conn:
        n = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
    assert n and n > 0


async def test_postgres_refuses_truncate(ledger: SqlLedger, store: SqlStore) -> None:
    if store.dialect != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    await _fill(ledger, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        async with store.engine.begin() as conn:
            await conn.execute(text("TRUNCATE ledger_entries"))


async def test_concurrent_appends_from_two_processes_never_collide(
    store: SqlStore, database_url: str
) -> None:
    other = SqlStore(database_url)
    await other.open()
    try:
        a, b = _ledger(store), _ledger(other)
        await a.append([Transfer("grant", MINT, ALICE, 10_000)])

        async def pay(ledger: SqlLedger, i: int) -> int:
            return (await ledger.append_one(Transfer("settle", ALICE, BOB, 1, f"r{i}"))).seq

        seqs = await asyncio.gather(*(pay(a if i % 2 else b, i) for i in range(40)))
        assert sorted(seqs) == list(range(1, 41))
        report = await audit(StoreSource(a, ORIGIN))
        assert report.ok, report.findings
        assert report.entries == 41 and report.balances[BOB] == 40
        assert await _stored_balances(a) == await a.balances()
    finally:
        await other.close()


async def _drop_triggers(store: SqlStore) -> None:
    async with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            await conn.execute(text("DROP TRIGGER ledger_entries_append_only ON ledger_entries"))
        else:
            await conn.execute(text("DROP TRIGGER ledger_entries_no_update"))
            await conn.execute(text("DROP TRIGGER ledger_entries_no_delete"))


async def _signed(ledger: SqlLedger, n: int) -> None:
    cp = Checkpointer(ledger, Ed25519PrivateKey.generate(), ORIGIN)
    await _fill(ledger, n // 2)
    await cp.checkpoint()
    await _fill(ledger, n - n // 2)
    await cp.checkpoint()
    report = await audit(StoreSource(ledger, ORIGIN), page=3)
    assert report.ok, report.findings
    assert (report.entries, report.checkpoints, report.consistency_proofs) == (n, 2, 1)


def _kinds(report: Report) -> set[str]:
    return {f.kind for f in report.findings}


async def test_a_changed_amount_is_found(ledger: SqlLedger, store: SqlStore) -> None:
    await _signed(ledger, 12)
    await _drop_triggers(store)
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE ledger_entries SET amount = 1 WHERE seq = 3"))
    report = await audit(StoreSource(ledger, ORIGIN))
    assert not report.ok
    assert "changed" in _kinds(report)
    assert any("entry 3 was changed" in f.message for f in report.findings)
    assert "root" in _kinds(report)


async def test_a_deleted_row_is_found(ledger: SqlLedger, store: SqlStore) -> None:
    await _signed(ledger, 12)
    await _drop_triggers(store)
    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM ledger_entries WHERE seq = 4"))
    report = await audit(StoreSource(ledger, ORIGIN))
    assert any(f.kind == "missing" and "entry 4 is missing" in f.message for f in report.findings)
    assert "root" in _kinds(report) or "truncated" in _kinds(report)


async def test_two_reordered_rows_are_found(ledger: SqlLedger, store: SqlStore) -> None:
    await _signed(ledger, 12)
    await _drop_triggers(store)
    async with store.engine.begin() as conn:
        for a, b in ((5, -1), (6, 5), (-1, 6)):
            await conn.execute(text(f"UPDATE ledger_entries SET seq = {b} WHERE seq = {a}"))
    report = await audit(StoreSource(ledger, ORIGIN))
    msgs = [f.message for f in report.findings if f.kind == "reordered"]
    assert "entry 5 is the entry written as 6 (rows reordered)" in msgs
    assert "entry 6 is the entry written as 5 (rows reordered)" in msgs


async def test_a_forged_balance_is_found(ledger: SqlLedger) -> None:
    await ledger.append([Transfer("settle", ALICE, BOB, 5)])  # alice never had any
    report = await audit(StoreSource(ledger, ORIGIN))
    assert [f.kind for f in report.findings] == ["balance"]


async def test_checkpoints_every_n_entries(ledger: SqlLedger) -> None:
    cp = Checkpointer(ledger, Ed25519PrivateKey.generate(), ORIGIN, every=5, interval_s=3600)
    ledger.on_append = cp.note_append
    cp.start()
    try:
        await ledger.append([Transfer("grant", MINT, ALICE, 1) for _ in range(5)])
        # written by the checkpointer's task: polled until SOON_S scaled (200 polls of 0.01 s
        # until flakes39: about 2 s, short for a slow write on a loaded box)
        deadline = time.monotonic() + scaled(SOON_S)
        while (await ledger.latest_checkpoint()) is None:
            assert time.monotonic() < deadline, "no checkpoint after 5 appends"
            await asyncio.sleep(0.01)
        latest = await ledger.latest_checkpoint()
        assert latest is not None and latest.tree_size == 5
        await ledger.append([Transfer("grant", MINT, ALICE, 1) for _ in range(2)])
    finally:
        await cp.stop()  # signs the 2 unsigned entries
    latest = await ledger.latest_checkpoint()
    assert latest is not None and latest.tree_size == 7
    keys = await ledger.keys()
    assert [k for k, _ in keys] == [cp.public_key]
    report = await audit(StoreSource(ledger, ORIGIN))
    assert report.ok and report.checkpoints == 2 and report.inclusion_proofs == 1


async def test_a_checkpoint_by_an_unpublished_key_is_refused(ledger: SqlLedger) -> None:
    await _fill(ledger, 3)
    cp = Checkpointer(ledger, Ed25519PrivateKey.generate(), ORIGIN)
    await cp.checkpoint()
    report = await audit(StoreSource(ledger, ORIGIN), pin=Checkpointer(
        ledger, Ed25519PrivateKey.generate(), ORIGIN).public_key)  # fmt: skip
    assert _kinds(report) == {"signature"}  # and no signed root to prove against


async def test_concurrent_checkpoints_sign_a_size_once(ledger: SqlLedger) -> None:
    # the loop (woken by an append), stop() and an API call may sign at once: one of them
    # signs and tells the pusher; the others find the size signed (it was signed twice, a
    # second note returned and told of though the store kept the first)
    await _fill(ledger, 3)
    cp = Checkpointer(ledger, Ed25519PrivateKey.generate(), ORIGIN)
    told: list[int] = []
    cp.on_signed = lambda c: told.append(c.tree_size)
    got = await asyncio.gather(cp.checkpoint(), cp.checkpoint(), cp.checkpoint())
    signed = [c for c in got if c is not None]
    assert len(signed) == 1 and told == [3]
    latest = await ledger.latest_checkpoint()
    assert latest is not None and latest.note == signed[0].note


async def test_a_size_another_replica_signed_first_is_not_claimed(ledger: SqlLedger) -> None:
    await _fill(ledger, 3)
    a = Checkpointer(ledger, Ed25519PrivateKey.generate(), ORIGIN)
    b = Checkpointer(ledger, Ed25519PrivateKey.generate(), ORIGIN)
    got = await asyncio.gather(a.checkpoint(), b.checkpoint())
    signed = [c for c in got if c is not None]
    latest = await ledger.latest_checkpoint()
    assert len(signed) == 1 and latest is not None and latest.note == signed[0].note


async def test_a_balance_changed_without_an_entry_is_found(
    ledger: SqlLedger, store: SqlStore
) -> None:
    """Money made (or taken) in ``balances`` with no ledger entry: settlement admits and
    pays from that row, so a balance the entries do not add up to is spendable money the
    public ledger does not show. Until 2026-12-03 ``ledger verify`` recomputed balances
    from the entries only and passed such a store."""
    await _signed(ledger, 6)
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE balances SET balance = balance + 1000000 WHERE account = :a"),
            {"a": ALICE},
        )
    report = await audit(StoreSource(ledger, ORIGIN))
    assert _kinds(report) == {"stored"}, report.findings
    (found,) = report.findings
    assert ALICE in found.message and "+1000000 without an entry" in found.message
    async with store.engine.begin() as conn:  # a row for an account no entry ever moved
        await conn.execute(
            text("UPDATE balances SET balance = balance - 1000000 WHERE account = :a"),
            {"a": ALICE},
        )
        await conn.execute(
            text("INSERT INTO balances (account, balance, reserved) VALUES (:a, 5, 0)"),
            {"a": pseudonym("user", "mallory")},
        )
    report = await audit(StoreSource(ledger, ORIGIN))
    assert [f.kind for f in report.findings] == ["stored"]
    assert pseudonym("user", "mallory") in report.findings[0].message


async def test_reserved_below_zero_or_above_the_balance_is_found(
    ledger: SqlLedger, store: SqlStore
) -> None:
    """A reservation released twice leaves ``reserved`` below zero: the payer's available
    balance is then more than its balance, and settlement lets it spend money it does not
    have."""
    await _signed(ledger, 6)
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE balances SET reserved = -7 WHERE account = :a"), {"a": ALICE}
        )
    report = await audit(StoreSource(ledger, ORIGIN))
    assert [f.kind for f in report.findings] == ["reserved"], report.findings
    assert f"account {ALICE}: -7 reserved" in report.findings[0].message


async def test_entries_appended_while_the_audit_reads_are_no_finding(ledger: SqlLedger) -> None:
    """The stored balances are held against the entries up to the size read with them:
    entries a busy registry appends meanwhile (after that read) are no mismatch."""
    await _signed(ledger, 6)

    class Busy(StoreSource):
        async def stored(self) -> tuple[int, dict[str, tuple[int, int]]]:
            seen = await super().stored()
            await _fill(self.ledger, 5)  # appended after the read, before the entries
            return seen

    report = await audit(Busy(ledger, ORIGIN), page=4)
    assert report.ok, report.findings
    assert report.entries == 11


async def test_the_mint_issues_at_most_what_a_balance_can_hold(
    ledger: SqlLedger, store: SqlStore
) -> None:
    """A grant past 2^63 - 1 µNT issued in all is refused, nothing written. Until
    2026-12-03 SQLite took it and stored the sums as floats (the mint and the pool
    became REAL, and two more grants of 1 vanished from the stored balances while the
    ledger kept them); PostgreSQL failed it with a database error."""
    most = (1 << 63) - 1
    await ledger.append_one(Transfer("grant", MINT, POOL, most - 1))
    await ledger.append_one(Transfer("grant", MINT, ALICE, 1))  # exactly the most: taken
    with pytest.raises(IssueLimit, match="would pass the most a balance can hold"):
        await ledger.append_one(Transfer("grant", MINT, POOL, 1))
    with pytest.raises(IssueLimit):  # in a batch too, whatever else it moves
        await ledger.append([Transfer("settle", ALICE, BOB, 1), Transfer("reward", MINT, BOB, 2)])
    assert (await ledger.head())[0] == 2
    assert await _stored_balances(ledger) == {MINT: -most, POOL: most - 1, ALICE: 1}
    assert (await ledger.append_one(Transfer("settle", POOL, BOB, 5))).seq == 2  # moves on
    report = await audit(StoreSource(ledger, ORIGIN))
    assert report.ok, report.findings
