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

from LLM_Mesh.core.usage_evidence import open_bucket
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import UsageAuditStore, UsageEvidenceRow, UsageWindowRow
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.usage_audit import UsageAuditor
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


def test_open_bucket() -> None:
    assert [open_bucket(b, 4) for b in (0, 4, 5, 9)] == [5, 5, 5, 9]
    assert open_bucket(0, -1) == 0


async def test_a_late_replicas_sums_count_in_the_first_open_window_postgresql(
    pg_database_url: str,
) -> None:
    async with SqlStore(pg_database_url) as store:
        await _late_replica(store)
