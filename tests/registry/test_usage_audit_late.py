"""attack32c: a replica's answers that reach the store after their window was folded.

A replica whose clock is behind the others' by more than the 30 s grace (or whose writes
failed for longer, its sums kept pending: ``usage_audit_sync.UsageAuditSync.flush``)
writes sums into a window another replica already folded. Found 2026-12-05 (attack32c):
those rows were never read again (``usage_audit_rows`` reads windows past the fold mark
only) and were dropped a day later, so that replica's share of a liar's answers never
counted, as before ``auditshare32``. Now the store adds a sum for a folded window to the
first window still open (``core/usage_evidence.open_bucket``): counted, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from LLM_Mesh.core.schemas import MAX_MODEL_ID_CHARS, HostedModel
from LLM_Mesh.core.stream_guard import MAX_CONTEXT
from LLM_Mesh.core.usage_audit import AuditSample
from LLM_Mesh.core.usage_evidence import open_bucket
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.ports import UsageAuditStore, UsageEvidenceRow, UsageWindowRow
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.usage_audit import UsageAuditor, declared_contexts
from LLM_Mesh.registry.usage_audit_sync import MAX_KEY_CHARS, UsageAuditSync
from tests.registry.test_usage_audit_shared import MODEL, POLICY, T0, Clock, _round

W0 = int(T0 // 600)  # window 0: T0's


async def _late_replica(store: UsageAuditStore) -> None:
    ahead, behind = Clock(T0 + 10), Clock(T0 + 590)  # behind the other by 41 s
    a = UsageAuditor(None, policy=POLICY, clock=ahead, store=store)
    b = UsageAuditor(None, policy=POLICY, clock=behind, store=store)
    assert a.shared is not None and b.shared is not None
    _round(a, 3)  # window 0
    ahead.now = T0 + 600 + 31  # past its end and the grace
    await a.shared.run_once()  # window 0 written and folded by a
    rows = await store.usage_audit_rows(MODEL)
    assert rows.folded == W0 and {e.node_id: e.requests for e in rows.evidence}["liar"] == 3
    _round(b, 5)  # b's answers: window 0 by its clock, already folded
    await b.shared.run_once()
    rows = await store.usage_audit_rows(MODEL)
    counted = {e.node_id: e.requests for e in rows.evidence}["liar"]
    counted += sum(w.requests for w in rows.windows if w.node_id == "liar")
    assert counted == 8  # before: 3, b's five answers never read again
    assert all(w.bucket == W0 + 1 for w in rows.windows)


async def test_a_late_replicas_sums_count_in_the_first_open_window_memory() -> None:
    await _late_replica(MemoryStore())


async def test_a_late_replicas_sums_count_in_the_first_open_window_sqlite(tmp_path: Path) -> None:
    async with SqlStore(f"sqlite:///{tmp_path / 'r.db'}") as store:
        await _late_replica(store)
        late = [UsageWindowRow(MODEL, 0, "n", 1, 2, 3, 4, 5),
                UsageWindowRow(MODEL, 1, "n", 1, 1, 1, 1, 1)]  # fmt: skip
        await store.add_usage_windows(late)  # two rows onto one: merged, never refused
        rows = await store.usage_audit_rows(MODEL)
        (n,) = [w for w in rows.windows if w.node_id == "n"]
        assert (n.bucket, n.requests, n.completion, n.prompt_cap) == (W0 + 1, 2, 3, 6)
        assert isinstance(rows.evidence[0], UsageEvidenceRow)


def _sample() -> AuditSample:
    return AuditSample(completion=116, completion_cap=116, prompt=50, prompt_cap=200)


def test_open_bucket() -> None:
    assert [open_bucket(b, 4) for b in (0, 4, 5, 9)] == [5, 5, 5, 9]
    assert open_bucket(0, -1) == 0


async def test_a_late_replicas_sums_count_in_the_first_open_window_postgresql(
    pg_database_url: str,
) -> None:
    async with SqlStore(pg_database_url) as store:
        await _late_replica(store)


async def test_one_audit_key_too_long_for_the_store_never_blocks_the_others(
    pg_database_url: str,
) -> None:
    """Found 2026-12-05 (attack32c): an audit key is the model and, for a request only the
    larger contexts take, ``(context N)`` with N a node's declared context, of any size (a
    node declaring 10^250 beside a sybil declaring less): past the store's 256 characters
    PostgreSQL refused the whole batch, kept pending and refused again every run, so no
    replica counted any answer again. Such a key is not counted (``dropped``; past 320
    characters since migration 0027: here 10^400); the declared contexts are read as the
    stream limit reads them (at most ``MAX_CONTEXT``)."""
    async with SqlStore(pg_database_url) as store:
        clock = Clock()
        auditor = UsageAuditor(None, policy=POLICY, clock=clock, store=store)
        assert auditor.shared is not None
        auditor.shared.add(f"{MODEL} (context {10**400})", "liar", _sample())
        _round(auditor, 2)
        await auditor.shared.run_once()  # before: the batch refused, here and every run after
        rows = await store.usage_audit_rows(MODEL)
        assert {w.node_id: w.requests for w in rows.windows} == {"a": 2, "b": 2, "liar": 2}
        assert auditor.shared.dropped == 1 and not auditor.shared.pending


def test_declared_contexts_are_read_as_the_stream_limit_reads_them() -> None:
    class Entry:
        def __init__(self, ctx: object) -> None:
            self.models = {MODEL: HostedModel(id=MODEL, context_length=ctx)}

    class Table:
        def healthy_entries_for(self, model: str) -> list[Entry]:
            return [Entry(10**250), Entry(-5), Entry(None), Entry(4096)]

    contexts = declared_contexts(cast(NodeTable, Table()))
    assert list(contexts(MODEL)) == [MAX_CONTEXT, 0, 0, 4096]


async def test_a_model_id_of_256_characters_is_audited_on_its_larger_contexts_postgresql(
    pg_database_url: str,
) -> None:
    """Found 2026-12-05 (attack32c), closed 2026-12-06 (audit33): an audit key longer than
    the store's 256 characters was not counted, so a model id near 256 characters (any id
    up to ``MAX_MODEL_ID_CHARS`` is routed) was never audited on the requests only its
    larger contexts take. The store's keys are as wide as the longest key (migration 0027)."""
    longest = f"{'m' * MAX_MODEL_ID_CHARS} (context {MAX_CONTEXT})"
    async with SqlStore(pg_database_url) as store:
        sync = UsageAuditSync(store, POLICY, lambda v: None, clock=Clock())
        sync.add(longest, "n", _sample())
        await sync.run_once()
        assert sync.dropped == 0  # before: 1, not counted
        rows = await store.usage_audit_rows(longest)
        assert [(w.node_id, w.requests) for w in rows.windows] == [("n", 1)]
        sync.add(longest, "n", _sample())
        sync.add("m" * (MAX_KEY_CHARS + 1), "n", _sample())  # past the width: not counted
        await sync.run_once()
        assert sync.dropped == 1
    assert len(longest) <= MAX_KEY_CHARS == tables.usage_audit_windows.c.model.type.length
    assert tables.usage_audit_evidence.c.model.type.length == MAX_KEY_CHARS
    assert tables.usage_audit_folds.c.model.type.length == MAX_KEY_CHARS
