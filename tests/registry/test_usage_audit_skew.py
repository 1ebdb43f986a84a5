"""A replica whose clock is ahead of the others' by more than the grace (30 s).

Found 2026-12-05 (attack32c, written as what remains), closed 2026-12-06 (audit33): such a
replica put its answers in windows the others had not reached and folded a window closed
by its clock only, while the other replicas still wrote into it; their later answers went
to the next window (``open_bucket``), each node compared with its peers in a window not
its own. Now, on PostgreSQL (replicas on several hosts), every run measures this replica's
offset from the database server's clock (``usage_audit_now``) and the windows are cut on
that one clock, whatever each host's."""

from __future__ import annotations

from typing import Any

from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.usage_audit import UsageAuditor
from tests.registry.test_usage_audit_shared import MODEL, POLICY, T0, Clock, _round

W0 = int(T0 // 600)


def _server_at(store: SqlStore, now: float) -> None:
    async def usage_audit_now() -> float:
        return now  # the database server's clock, as the test sets it

    store.usage_audit_now = usage_audit_now  # type: ignore[method-assign]


async def test_a_replica_ahead_does_not_fold_a_window_the_others_write_into(
    pg_database_url: str,
) -> None:
    server = T0 + 590  # window 0, 10 s before its end
    async with SqlStore(pg_database_url) as s1, SqlStore(pg_database_url) as s2:
        _server_at(s1, server)
        _server_at(s2, server)
        on_time = UsageAuditor(None, policy=POLICY, clock=Clock(server), store=s1,
                               store_clock=True)  # fmt: skip
        ahead = UsageAuditor(None, policy=POLICY, clock=Clock(server + 100), store=s2,
                             store_clock=True)  # fmt: skip
        assert on_time.shared is not None and ahead.shared is not None
        for replica in (on_time, ahead):
            await replica.shared.run_once()  # each measures its offset (the loop's first)
        _round(on_time, 3)
        await on_time.shared.run_once()
        _round(ahead, 3)  # before: in window 1, its own clock's
        await ahead.shared.run_once()  # before: window 0 folded (closed + 30 s by its clock)
        _round(on_time, 2)
        await on_time.shared.run_once()  # before: to window 1, window 0 folded
        rows = await s1.usage_audit_rows(MODEL)
        assert rows.folded == -1  # before: W0
        got: dict[Any, int] = {(w.bucket, w.node_id): w.requests for w in rows.windows}
        assert got == {(W0, n): 8 for n in ("a", "b", "liar")}
        assert ahead.shared.offset_s == -100.0 and on_time.shared.offset_s == 0.0


async def test_the_offset_is_the_database_servers_clock_less_this_hosts(
    pg_database_url: str,
) -> None:
    async with SqlStore(pg_database_url) as store:
        now = await store.usage_audit_now()
        assert now is not None
        clock = Clock(now + 3600)  # this host an hour ahead
        auditor = UsageAuditor(None, policy=POLICY, clock=clock, store=store, store_clock=True)
        assert auditor.shared is not None
        await auditor.shared.run_once()
        assert -3600 - 60 < auditor.shared.offset_s < -3600 + 60  # (the call's time aside)


async def test_sqlite_and_an_injected_clock_have_no_offset(tmp_path: Any) -> None:
    async with SqlStore(f"sqlite:///{tmp_path / 'r.db'}") as store:
        assert await store.usage_audit_now() is None  # one host: its clock is the server's
        auditor = UsageAuditor(None, policy=POLICY, clock=Clock(), store=store, store_clock=True)
        assert auditor.shared is not None
        await auditor.shared.run_once()
        assert auditor.shared.offset_s == 0.0
