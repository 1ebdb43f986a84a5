"""audit33: a replica's batch of window sums and another's fold of the same window.

Two ways a batch was lost (found 2026-12-06, audit33; the first written in
docs/security.md by attack32c), each interleaved here step by step:

- the batch read the model's fold mark, a fold committed, the batch inserted into the
  window now folded (PostgreSQL, read committed): never read again. Now a batch holds the
  model's shared advisory lock from its read to its commit, a fold the exclusive one;
- a fold read the windows, the batch added to them, the fold dropped the rows it folded
  (every store): dropped unread. Now the fold reads them again under its lock and adds
  what they gained to the first open window.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import UsageAuditStore, UsageEvidenceRow, UsageWindowRow
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_usage_audit import LOCK_SLOTS, lock_key
from LLM_Mesh.registry.usage_audit import UsageAuditor
from tests.registry.test_usage_audit_shared import MODEL, POLICY, T0, Clock, _round

W0 = int(T0 // 600)


async def _replicas(first: UsageAuditStore, second: UsageAuditStore) -> tuple[Any, Any, Clock]:
    """Replicas a and b of one registry: a wrote 3 answers of each node in window 0, b has
    5 pending; window 0 is closed for good (its end and the grace past)."""
    clock = Clock(T0 + 10)
    one = UsageAuditor(None, policy=POLICY, clock=clock, store=first)
    two = UsageAuditor(None, policy=POLICY, clock=clock, store=second)
    _round(one, 3)
    _round(two, 5)
    assert one.shared is not None and two.shared is not None
    await one.shared.flush()
    clock.now = T0 + 600 + 31
    return one.shared, two.shared, clock


async def _liar_counted(store: UsageAuditStore) -> int:
    rows = await store.usage_audit_rows(MODEL)
    counted = sum(e.requests for e in rows.evidence if e.node_id == "liar")
    return counted + sum(w.requests for w in rows.windows if w.node_id == "liar")


async def _written_between_the_folds_read_and_its_commit(
    first: UsageAuditStore, second: UsageAuditStore
) -> None:
    a, b, _clock = await _replicas(first, second)
    read = first.usage_audit_rows

    async def read_then_b_writes(model: str) -> Any:
        rows = await read(model)
        await b.flush()  # b's batch lands after a's read, before a's fold
        return rows

    first.usage_audit_rows = read_then_b_writes  # type: ignore[method-assign]
    await a.check(MODEL)
    first.usage_audit_rows = read  # type: ignore[method-assign]
    rows = await first.usage_audit_rows(MODEL)
    assert rows.folded == W0
    assert await _liar_counted(first) == 8  # before: 3, b's five dropped with window 0
    assert {w.bucket for w in rows.windows} == {W0 + 1}


async def test_a_batch_between_a_folds_read_and_its_commit_counts_memory() -> None:
    store = MemoryStore()
    await _written_between_the_folds_read_and_its_commit(store, store)


async def test_a_batch_between_a_folds_read_and_its_commit_counts_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    async with SqlStore(url) as first, SqlStore(url) as second:
        await _written_between_the_folds_read_and_its_commit(first, second)


async def test_a_batch_between_a_folds_read_and_its_commit_counts_postgresql(
    pg_database_url: str,
) -> None:
    async with SqlStore(pg_database_url) as first, SqlStore(pg_database_url) as second:
        await _written_between_the_folds_read_and_its_commit(first, second)


async def _blocked_or_done(dsn: str, task: asyncio.Task[Any]) -> bool:
    """Wait until ``task`` ended or its connection waits for a lock; ``True``: it ended."""
    conn = await asyncpg.connect(dsn)
    try:
        while not task.done():
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )  # (this test's database only: the server is shared)
            if waiting:
                return False
            await asyncio.sleep(0.01)  # polled: what is asserted is the order, not the time
        return True
    finally:
        await conn.close()


async def test_a_fold_between_a_batchs_read_of_the_marks_and_its_insert_postgresql(
    pg_database_url: str,
) -> None:
    """Replica b's batch has read the model's fold mark (none yet) when replica a folds
    window 0: before, a's fold committed at once and b's sums went into window 0, folded,
    never read (the liar's 3 + 5 answers counted 3). Now a's fold waits for b's commit,
    then adds b's sums to the first open window."""
    dsn = make_url(pg_database_url).set(drivername="postgresql").render_as_string(False)
    async with SqlStore(pg_database_url) as first, SqlStore(pg_database_url) as second:
        a, b, _clock = await _replicas(first, second)
        marks = second._usage_marks
        ended: list[bool] = []

        async def read_then_a_folds(conn: Any, models: list[str]) -> dict[str, int]:
            read = await marks(conn, models)
            fold = asyncio.get_running_loop().create_task(a.check(MODEL))
            ended.append(await _blocked_or_done(dsn, fold))
            hold.append(fold)
            return read

        hold: list[asyncio.Task[Any]] = []
        second._usage_marks = read_then_a_folds  # type: ignore[method-assign]
        await b.flush()
        await hold[0]
        rows = await first.usage_audit_rows(MODEL)
        assert rows.folded == W0
        assert await _liar_counted(first) == 8  # before: 3
        assert ended == [False]  # a's fold waited for b's batch (before: it committed first)


async def test_a_batch_holds_the_writer_lock_from_its_read_of_the_marks_sqlite(
    tmp_path: Path,
) -> None:
    """SQLite: a batch's read of the fold marks ran outside its transaction (the driver
    begins one at the first write), so another process's fold could commit between it and
    the insert. Now the batch writes first: from its read to its commit no fold can."""
    path = tmp_path / "r.db"
    async with SqlStore(f"sqlite:///{path}") as store:
        marks = store._usage_marks
        refused: list[str] = []

        async def read_then_try_a_write(conn: Any, models: list[str]) -> dict[str, int]:
            read = await marks(conn, models)
            other = sqlite3.connect(path, timeout=0)
            try:
                other.execute("UPDATE usage_audit_folds SET folded = folded + 1")
                other.commit()
            except sqlite3.OperationalError as exc:
                refused.append(str(exc))
            finally:
                other.close()
            return read

        store._usage_marks = read_then_try_a_write  # type: ignore[method-assign]
        await store.add_usage_windows([UsageWindowRow(MODEL, W0, "n", 1, 1, 1, 1, 1)])
        assert refused == ["database is locked"]  # before: []


async def test_a_batch_of_many_models_takes_a_bounded_number_of_locks_postgresql(
    pg_database_url: str,
) -> None:
    """Found 2026-12-06 (review33): a batch took one advisory lock per model, all held to
    its commit, and the server's lock table is shared (``max_locks_per_transaction`` 64 per
    connection by default: 6,400 in all). Sybil nodes declaring 256 models each, asked once
    each in a run (a few replicas' batches at once: fewer per replica), made the batch fail
    with "out of shared memory", kept and refused again every run (no answer counted at
    that replica again), and every other transaction on the server needing a lock then
    failed too. Now a model's lock is one of ``LOCK_SLOTS`` (two models sharing one only
    wait for each other). Past 32,767 models (pending holds up to 65,536 keys), the read
    of their fold marks was refused by asyncpg ("the number of query arguments cannot
    exceed 32767"), the same way; now read in chunks."""
    async with SqlStore(pg_database_url) as store:
        rows = [UsageWindowRow(f"m{i}", W0, "n", 1, 1, 1, 1, 1) for i in range(40_000)]
        await store.add_usage_windows(rows)  # before: out of shared memory
        assert len((await store.usage_audit_rows("m39999")).windows) == 1
    assert len({lock_key(f"m{i}") for i in range(40_000)}) == LOCK_SLOTS


async def _a_verdict_claimed_between_a_folds_read_and_its_commit(store: UsageAuditStore) -> None:
    """A fold read node n's 3 answers in window 0; another replica claimed a verdict on n
    (its evidence started over, its windows' rows dropped); a late batch then added 4 to
    window 0. Found 2026-12-06 (review33): the fold took the 4 as the 3 it read and 1
    gained, so n's evidence started over with 1 of the 4 answers after its verdict. Now a
    node whose evidence the fold may not write (its epoch moved: claimed in between) has
    all of its rows taken as gained."""
    row = UsageWindowRow(MODEL, W0, "n", 3, 3, 3, 3, 3)
    await store.add_usage_windows([row])
    read = await store.usage_audit_rows(MODEL)
    assert await store.claim_usage_verdict(MODEL, "n", 0, W0 + 1)
    await store.add_usage_windows([UsageWindowRow(MODEL, W0, "n", 4, 4, 4, 4, 4)])
    evidence = UsageEvidenceRow(MODEL, "n", 0, 3, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, W0 + 1)
    assert await store.fold_usage_audit(
        MODEL, expect=read.folded, through=W0, rows=[evidence], seen=read.windows
    )
    rows = await store.usage_audit_rows(MODEL)
    assert [e.requests for e in rows.evidence] == [0]  # the claim's fresh start stands
    assert [(w.bucket, w.requests) for w in rows.windows] == [(W0 + 1, 4)]  # before: 1


async def test_a_verdict_claimed_between_a_folds_read_and_its_commit_memory() -> None:
    await _a_verdict_claimed_between_a_folds_read_and_its_commit(MemoryStore())


async def test_a_verdict_claimed_between_a_folds_read_and_its_commit_sqlite(
    tmp_path: Path,
) -> None:
    async with SqlStore(f"sqlite:///{tmp_path / 'r.db'}") as store:
        await _a_verdict_claimed_between_a_folds_read_and_its_commit(store)


async def test_a_verdict_claimed_between_a_folds_read_and_its_commit_postgresql(
    pg_database_url: str,
) -> None:
    async with SqlStore(pg_database_url) as store:
        await _a_verdict_claimed_between_a_folds_read_and_its_commit(store)


async def test_a_verdict_claim_waits_for_a_fold_of_its_model_postgresql(
    pg_database_url: str,
) -> None:
    """Found 2026-12-06 (review33): a claim took no lock, so on PostgreSQL it could commit
    inside a fold's transaction, after the fold read its windows again: the fold then put
    back, in the first open window, sums of the node's the claim had dropped (answers from
    before its verdict counted after it). Now a claim holds the model's exclusive lock."""
    dsn = make_url(pg_database_url).set(drivername="postgresql").render_as_string(False)
    async with SqlStore(pg_database_url) as store:
        await store.add_usage_windows([UsageWindowRow(MODEL, W0, "n", 3, 3, 3, 3, 3)])
        fold = await asyncpg.connect(dsn)  # a fold under way: the model's lock held
        try:
            async with fold.transaction():
                await fold.execute("SELECT pg_advisory_xact_lock($1)", lock_key(MODEL))
                claim = asyncio.get_running_loop().create_task(
                    store.claim_usage_verdict(MODEL, "n", 0, W0 + 1)
                )
                ended = await _blocked_or_done(dsn, claim)
        finally:
            await fold.close()
        assert await claim
        assert ended is False  # before: True, the claim committed inside the fold
