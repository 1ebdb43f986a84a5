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

from LLM_Mesh.core.usage_audit import AuditSample
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.usage_audit import UsageAuditor
from tests.registry.test_usage_audit_shared import MODEL, POLICY, T0, Clock, _round

W0 = int(T0 // 600)
SAMPLE = AuditSample(completion=30, completion_cap=116, prompt=50, prompt_cap=200)


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


class Slow(Clock):
    """This host's clock, moved on ``step`` seconds at each read (a slow round trip)."""

    def __init__(self, now: float, step: float) -> None:
        super().__init__(now)
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Server:
    """A store's ``usage_audit_now``: the database server's clock, as the test sets it."""

    def __init__(self, now: float) -> None:
        self.now = now

    async def __call__(self) -> float:
        return self.now


async def test_a_slow_or_broken_measure_keeps_the_offset_last_measured(tmp_path: Any) -> None:
    """Found 2026-12-06 (review33): the offset was taken from any answer, so a round trip
    of minutes (a pool full, a database stalled: the server's time read at its end, taken
    as its middle) moved every window of the replica by half of it, past the grace; a
    server clock read as NaN or infinite made every answer's window raise on the request
    path. Now a measure whose round trip exceeds ``clock_rtt_s``, or not finite, is not
    taken: the offset last measured stays."""
    async with SqlStore(f"sqlite:///{tmp_path / 'r.db'}") as store:
        clock = Slow(T0, 0.1)
        server = Server(T0 + 50)
        store.usage_audit_now = server  # type: ignore[method-assign]
        auditor = UsageAuditor(None, policy=POLICY, clock=clock, store=store, store_clock=True)
        sync = auditor.shared
        assert sync is not None
        await sync.sync_clock()
        first = sync.offset_s
        assert 49 < first < 50  # measured: a round trip of 0.1 s
        clock.step, server.now = 120.0, clock.now + 600  # a 2-minute round trip
        await sync.sync_clock()
        assert sync.offset_s == first  # before: 600 - 60 (half the round trip)
        clock.step = 0.1
        for broken in (float("nan"), float("inf")):
            server.now = broken
            await sync.sync_clock()
            assert sync.offset_s == first  # before: nan, inf
        sync.add(MODEL, "a", SAMPLE)  # before: ValueError (the window of NaN)
        assert sync.pending
