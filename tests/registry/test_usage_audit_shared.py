"""The usage audit's evidence through the store (``registry/usage_audit_sync.py``, migration
0026; found 2026-12-05, ``auditshare32``): each replica audited the answers it relayed, in
memory, so a registry restart started over and a liar spread over several replicas on one
PostgreSQL needed that many times the answers. Now the evidence is the store's: kept over a
restart, added to by every replica in batches (no commit on the request's path), judged by
each, a verdict claimed once. A usage-audit quarantine is not a failed probe either."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.usage_audit import AuditPolicy, AuditVerdict
from LLM_Mesh.registry.job import Job, Tally
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import UsageEvidenceRow, UsageWindowRow
from LLM_Mesh.registry.quality import Quality
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.usage_audit import UsageAuditor, model_of
from tests.registry.canary_mesh import MODEL, mesh, register
from tests.registry.helpers import Harness

__all__ = ["mesh"]  # the fixture

POLICY = AuditPolicy(min_requests=40, check_every=1, bucket_s=600.0)
T0 = 1_800_000_000.0 - 1_800_000_000.0 % 600  # the start of a window


class Clock:
    def __init__(self, now: float = T0 + 10.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _job(model: str = MODEL) -> Job:
    spec = get_spec(model)
    assert spec is not None
    return Job(path="/v1/completions", model=model, body={}, raw=b"{}", stream=False,
               prompt_text="x" * 200, max_tokens=200, price=spec.price, estimate=1,
               catalog_context=spec.context_length, request_id="r", started=0.0)  # fmt: skip


def _answer(auditor: UsageAuditor, node: str, completion: int) -> AuditVerdict | None:
    """One routed answer of 100 bytes (cap 116) and a 200-byte prompt (50 tokens)."""
    tally = Tally()
    tally.node_id, tally.completion_cap = node, 116
    tally.completion_tokens, tally.prompt_tokens = completion, 50
    return auditor.answered(_job(), tally)


def _round(auditor: UsageAuditor, n: int) -> None:
    """``n`` answers each of two honest nodes (30 tokens of 116) and a liar (116)."""
    for _ in range(n):
        for node, tokens in (("a", 30), ("b", 34), ("liar", 116)):
            assert _answer(auditor, node, tokens) is None  # never judged on the request's path


async def _judged(auditor: UsageAuditor) -> list[str]:
    assert auditor.shared is not None
    return [v.node_id for v in await auditor.shared.run_once()]


async def test_a_restart_keeps_the_evidence(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    clock = Clock()
    async with SqlStore(url) as store:
        first = UsageAuditor(None, policy=POLICY, clock=clock, store=store)
        _round(first, 25)  # 25 of the liar's 40 answers: no verdict yet
        assert await _judged(first) == []
        await first.stop()
    clock.now += 600 + 60  # the registry back in the next window, its first closed for good
    async with SqlStore(url) as store:
        second = UsageAuditor(None, policy=POLICY, clock=clock, store=store)
        _round(second, 20)  # 45 in all: judged (it failed before: 20 only, started over)
        assert await _judged(second) == ["liar"]
        rows = await store.usage_audit_rows(MODEL)
        assert rows.folded == int(T0 // 600)  # the first window folded into the evidence
    async with SqlStore(f"sqlite:///{tmp_path / 'fresh.db'}") as store:
        fresh = UsageAuditor(None, policy=POLICY, clock=clock, store=store)
        _round(fresh, 20)  # the same 20 answers on an empty store: too few
        assert await _judged(fresh) == []


async def test_two_replicas_on_one_postgresql_reach_a_verdict_neither_reaches_alone(
    pg_database_url: str,
) -> None:
    clock = Clock()
    alone = [UsageAuditor(None, policy=POLICY, clock=clock) for _ in range(2)]
    for auditor in alone:  # each replica's share, audited in its own memory: 30 of 40
        for _ in range(30):
            for node, tokens in (("a", 30), ("b", 34), ("liar", 116)):
                assert _answer(auditor, node, tokens) is None
    assert not any(a.verdicts for a in alone)
    async with SqlStore(pg_database_url) as s1, SqlStore(pg_database_url) as s2:
        r1, r2 = (UsageAuditor(None, policy=POLICY, clock=clock, store=s) for s in (s1, s2))
        _round(r1, 30)
        _round(r2, 30)
        assert await _judged(r1) == []  # r1's 30 written, r2's not yet: too few
        judged = await _judged(r2)  # r2 writes its 30 and judges all 60: the liar
        assert judged == ["liar"]
        assert await _judged(r1) == []  # claimed once: r1 finds its evidence started over
        rows = await s1.usage_audit_rows(MODEL)
        assert {w.node_id for w in rows.windows} == {"a", "b"}  # the liar's window rows gone


async def test_the_account_stage_writes_nothing_itself_a_batch_a_run() -> None:
    calls: list[str] = []

    class Counting(MemoryStore):
        async def add_usage_windows(self, rows: list[UsageWindowRow]) -> None:
            calls.append(f"add {len(rows)}")
            await super().add_usage_windows(rows)

        async def usage_audit_rows(self, model: str) -> Any:
            calls.append("read")
            return await super().usage_audit_rows(model)

    auditor = UsageAuditor(None, policy=POLICY, clock=Clock(), store=Counting())
    _round(auditor, 50)  # 150 answers: nothing written yet
    assert calls == []
    assert await _judged(auditor) == ["liar"]
    assert calls == ["add 3", "read"]  # one batch of 3 rows (model, window, node), one read
    seen = auditor.view()  # the admin's: the standing as last judged, the store's evidence
    assert seen["evidence"] == "store"
    shares = {r["node_id"]: r["completion_share"] for r in seen["nodes"]}
    assert shares["liar"] == 1.0 and shares["a"] is not None and shares["a"] < 0.3


async def test_pending_sums_are_bounded_and_a_failed_write_keeps_them() -> None:
    class Failing(MemoryStore):
        fail = True

        async def add_usage_windows(self, rows: list[UsageWindowRow]) -> None:
            if self.fail:
                raise OSError("database down")
            await super().add_usage_windows(rows)

    store, clock = Failing(), Clock()
    auditor = UsageAuditor(None, policy=POLICY, clock=clock, store=store)
    assert auditor.shared is not None
    auditor.shared.max_pending = 2
    _round(auditor, 45)
    assert auditor.shared.dropped == 45  # the third node had no room
    try:
        await auditor.shared.run_once()
    except OSError:
        pass
    else:
        raise AssertionError("the failed write was not raised to the loop")
    _round(auditor, 1)  # merged with the kept sums
    store.fail = False
    await auditor.shared.run_once()
    sums = {w.node_id: w.requests for w in (await store.usage_audit_rows(MODEL)).windows}
    assert sums == {"a": 46, "b": 46}


async def test_a_fold_and_a_verdict_are_each_written_once_sqlite(tmp_path: Path) -> None:
    async with SqlStore(f"sqlite:///{tmp_path / 'r.db'}") as store:
        await store.add_usage_windows([UsageWindowRow(MODEL, 7, "n", 5, 10, 50, 5, 50)])
        await store.add_usage_windows([UsageWindowRow(MODEL, 7, "n", 1, 2, 10, 1, 10)])
        rows = await store.usage_audit_rows(MODEL)
        assert rows.folded == -1 and rows.windows == [
            UsageWindowRow(MODEL, 7, "n", 6, 12, 60, 6, 60)
        ]
        ev = UsageEvidenceRow(MODEL, "n", 0, 6, 9, 2, 12.0, 60.0, 6.0, 6.0, 60.0, 6.0, 7)
        seen = rows.windows
        assert await store.fold_usage_audit(MODEL, expect=-1, through=7, rows=[ev], seen=seen)
        assert not await store.fold_usage_audit(MODEL, expect=-1, through=7, rows=[ev], seen=[])
        rows = await store.usage_audit_rows(MODEL)
        assert rows.folded == 7 and rows.windows == [] and rows.evidence[0].requests == 6
        assert rows.evidence[0].epoch == 1
        assert not await store.claim_usage_verdict(MODEL, "n", 0, 8)  # an old epoch
        assert await store.claim_usage_verdict(MODEL, "n", 1, 8)
        assert not await store.claim_usage_verdict(MODEL, "n", 1, 8)  # claimed once
        (fresh,) = (await store.usage_audit_rows(MODEL)).evidence
        assert (fresh.epoch, fresh.requests, fresh.completion) == (2, 0, 0.0)


async def test_the_store_keeps_at_most_max_entries_and_drops_old_windows(tmp_path: Path) -> None:
    async with SqlStore(f"sqlite:///{tmp_path / 'r.db'}") as store:
        for i in range(5):
            ev = UsageEvidenceRow("m", f"n{i}", 0, 1, 1, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, i)
            assert await store.fold_usage_audit("m", expect=i - 1, through=i, rows=[ev], seen=[])
        await store.add_usage_windows([UsageWindowRow("q", 1, "n", 1, 1, 1, 1, 1)])
        await store.add_usage_windows([UsageWindowRow("q", 9, "n", 1, 1, 1, 1, 1)])
        assert await store.prune_usage_audit(max_entries=3, before_bucket=5) == 3
        rows = await store.usage_audit_rows("m")
        assert sorted(r.node_id for r in rows.evidence) == ["n2", "n3", "n4"]
        assert [w.bucket for w in (await store.usage_audit_rows("q")).windows] == [9]


async def test_a_usage_audit_quarantine_is_not_a_failed_probe(mesh: Harness) -> None:
    q = mesh.runtime.quality
    assert isinstance(q, Quality)
    for node in ("a", "b", "liar"):
        await register(mesh, node)
    auditor = UsageAuditor(q, policy=POLICY, clock=Clock())  # in memory: judged at once
    verdicts = []
    for _ in range(45):
        for node, tokens in (("a", 30), ("b", 34), ("liar", 116)):
            verdicts.append(_answer(auditor, node, tokens))
    assert [v.node_id for v in verdicts if v is not None] == ["liar"]
    await auditor.settled()
    seen = q.view("liar", live=True)
    assert seen["quarantined"][0]["reason"].startswith("usage_audit: ")
    # it failed before: 1 ("canary probes: 0 passed, 1 failed" in llm-mesh node info)
    assert seen["canary_failed"] == 0 and seen["canary_last_probe"] is None
    assert q.held("liar")


async def test_the_registry_audits_on_its_stores_evidence(mesh: Harness) -> None:
    auditor = mesh.runtime.usage_audit
    assert auditor is not None and auditor.shared is not None  # failed before: in memory
    assert auditor.shared.store is mesh.runtime.store
    assert auditor.view()["evidence"] == "store"


async def test_a_verdict_on_the_stores_evidence_quarantines_and_holds(mesh: Harness) -> None:
    q = mesh.runtime.quality
    assert isinstance(q, Quality)
    for node in ("a", "b", "liar"):
        await register(mesh, node)
    auditor = UsageAuditor(q, policy=POLICY, clock=Clock(), store=mesh.runtime.store)  # type: ignore[arg-type]
    assert auditor.shared is not None
    _round(auditor, 45)
    assert [v.node_id for v in await auditor.shared.tick()] == ["liar"]  # as the loop runs
    await auditor.settled()
    assert q.quarantined("liar", MODEL) and q.held("liar")
    assert [v.model for v in auditor.verdicts] == [MODEL]
    assert q.view("liar")["canary_failed"] == 0
    await auditor.stop()


def test_a_verdict_keyed_by_context_quarantines_the_model() -> None:
    assert model_of("mistral-7b (context 32768)") == "mistral-7b"
    assert model_of("mistral-7b") == "mistral-7b"
