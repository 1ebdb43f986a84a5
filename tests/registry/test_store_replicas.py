"""The SQL store's replica state (``store_replicas.py``) on SQLite and PostgreSQL, and
migrations when several replicas start at once on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, update

from LLM_Mesh.core.check_state import MAX_WHY, CheckState
from LLM_Mesh.core.store_heard import HeardRows
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.heartbeat_writes import HeartbeatWriter, SeqBatcher
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_sync import StoreHealthLeases
from LLM_Mesh.registry.ports import (
    CheckRecord,
    IdempotencyRecord,
    NodeRecord,
    ReplicaRecord,
    SeqResult,
)
from LLM_Mesh.registry.store import SqlStore
from LLM_Mesh.registry.store_migrate import alembic_config

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _node(node_id: str) -> NodeRecord:
    return NodeRecord(
        node_id, f"http://{node_id}:8801", None, [{"id": "gemma-3-270m"}], {}, 1, 8, "0.1",
        "online", T0, T0,
    )  # fmt: skip


async def test_claims_are_taken_once_and_expire(store: SqlStore) -> None:
    until = T0 + timedelta(seconds=60)
    assert sorted(await store.claim_health_checks(["a", "b"], "r1", T0, until)) == ["a", "b"]
    assert await store.claim_health_checks(["a", "b", "c"], "r2", T0, until) == ["c"]
    assert sorted(await store.claim_health_checks(["a"], "r1", T0, until)) == ["a"]  # renewed
    later = until + timedelta(seconds=1)
    assert await store.claim_health_checks(["a"], "r2", later, later + timedelta(seconds=9)) == [
        "a"
    ]
    await store.record_health_checks(
        [CheckRecord("a", False, later), CheckRecord("c", True, later)]
    )
    got = sorted((r.node_id, r.ok) for r in await store.health_checks_since(later))
    assert got == [("a", False), ("c", True)]
    assert await store.health_checks_since(later + timedelta(seconds=1)) == []


@pytest.mark.parametrize("kind", ["sql", "memory"])
async def test_a_lease_whose_holder_stopped_beating_is_free(store: SqlStore, kind: str) -> None:
    # found 2026-12-03: a killed replica's leases kept its nodes unchecked until they ran out
    s: Any = store if kind == "sql" else MemoryStore()
    until = T0 + timedelta(minutes=4)
    alive_since = T0 - timedelta(seconds=6)
    await s.beat_replica(ReplicaRecord("live", T0, T0, "0.1", {}))
    await s.beat_replica(ReplicaRecord("quiet", T0, T0 - timedelta(seconds=7), "0.1", {}))
    for holder, node in (("live", "a"), ("quiet", "b"), ("killed", "c")):
        assert await s.claim_health_checks([node], holder, T0, until) == [node]
    got = await s.claim_health_checks(["a", "b", "c"], "r2", T0, until, alive_since=alive_since)
    assert sorted(got) == ["b", "c"]  # the live replica's lease holds; the others are free
    assert await s.claim_health_checks(["b"], "r3", T0, until) == []  # r2's now, as before


@pytest.mark.parametrize("kind", ["sql", "memory"])
async def test_check_results_carry_since_when_and_why(store: SqlStore, kind: str) -> None:
    """What replicas tell a node of its checks is shared with the result (migration 0016):
    ``since`` stays while the result holds, whichever replica checks; ``why`` is the last
    failure's, bounded and printable; a passing result has none. The memory store agrees."""
    s: Any = store if kind == "sql" else MemoryStore()
    t = [T0 + timedelta(seconds=i) for i in range(6)]
    assert await s.claim_health_checks(["a", "b"], "r1", T0, T0 + timedelta(seconds=60))
    await s.record_health_checks([CheckRecord("a", False, t[1], since=t[1], why="HTTP 503")])
    assert await s.health_checks_since(t[1]) == [CheckRecord("a", False, t[1], t[1], "HTTP 503")]
    # another replica finds it failing too, for another reason, and thinks it just turned
    # (it had not applied the first row yet): the first check's since stays
    forged = "ConnectError: refused\nFORGED LINE\x1b[31m" + "x" * 1000
    await s.record_health_checks([CheckRecord("a", False, t[2], since=t[2], why=forged)])
    (row,) = await s.health_checks_since(t[2])
    assert (row.ok, row.checked_at, row.since) == (False, t[2], t[1])
    assert row.why is not None and len(row.why) == MAX_WHY and row.why.isprintable()
    assert row.why.startswith("ConnectError: refused FORGED LINE")
    # it passes: since when it passes, and no reason (a reason given is not kept)
    await s.record_health_checks([CheckRecord("a", True, t[4], since=t[3], why="stale")])
    assert await s.health_checks_since(t[4]) == [CheckRecord("a", True, t[4], t[3], None)]
    # no since given: the check's own time
    await s.record_health_checks([CheckRecord("b", False, t[5], why="HTTP 500")])
    assert await s.health_checks_since(t[5]) == [CheckRecord("b", False, t[5], t[5], "HTTP 500")]


@pytest.mark.parametrize("kind", ["sql", "memory"])
async def test_a_slow_passs_older_result_does_not_overwrite_a_newer_one(
    store: SqlStore, kind: str
) -> None:
    """Found 2026-12-03: results were stamped when written (after the whole pass), so a
    replica whose pass outlived its lease overwrote another replica's newer result with its
    older one stamped newer. Now a row is stamped when its check was made and written only
    over an older one (SQLite, PostgreSQL, memory)."""
    s: Any = store if kind == "sql" else MemoryStore()
    t = [T0.timestamp() + i for i in range(4)]
    assert await s.claim_health_checks(["a"], "slow", T0, T0 + timedelta(seconds=1)) == ["a"]
    # "slow" checks at t[0] (failed) but writes only at t[3]; "fast" took the lease after it
    # ran out, checked at t[1] (passed) and wrote at t[2]
    later = T0 + timedelta(seconds=1)
    assert await s.claim_health_checks(["a"], "fast", later, later + timedelta(seconds=9))
    fast = StoreHealthLeases(s, "fast", wall_clock=lambda: t[2])
    await fast.record([("a", CheckState(ok=True, checked_at=t[1]))])
    slow = StoreHealthLeases(s, "slow", wall_clock=lambda: t[3])
    await slow.record([("a", CheckState(ok=False, checked_at=t[0], why="HTTP 503"))])
    (row,) = await s.health_checks_since(T0)
    assert (row.ok, row.checked_at.timestamp(), row.why) == (True, t[1], None)
    # a newer result is written, stamped with its check's time, not the write's
    await slow.record([("a", CheckState(ok=False, checked_at=t[2], why="HTTP 503"))])
    (row,) = await s.health_checks_since(T0)
    assert (row.ok, row.checked_at.timestamp(), row.why) == (False, t[2], "HTTP 503")


async def test_request_keys(store: SqlStore) -> None:
    exp = T0 + timedelta(seconds=30)
    assert await store.claim_request_key("k", "r1", False, T0, exp) is None
    held = await store.claim_request_key("k", "r2", True, T0, exp)
    assert held is not None and (held.owner, held.state, held.stream) == ("r1", "running", False)
    body = b'{"ok": true}' * 100
    rec = IdempotencyRecord(
        "k", "r1", False, "done", T0, exp, 200, body, [["content-type", "application/json"]],
        "application/json",
    )  # fmt: skip
    assert not await store.finish_request_key(IdempotencyRecord("k", "r2", False, "done", T0, exp))
    assert await store.finish_request_key(rec)
    got = await store.get_request_key("k")
    assert got is not None and got.state == "done" and got.body == body and got.status == 200
    assert got.headers == [["content-type", "application/json"]]
    await store.release_request_key("k", "r1")  # done rows are not released
    assert await store.get_request_key("k") is not None
    assert await store.claim_request_key("j", "r1", False, T0, exp) is None
    await store.release_request_key("j", "r1")
    assert await store.get_request_key("j") is None
    assert await store.purge_request_keys(exp) == 1
    assert await store.get_request_key("k") is None


@pytest.mark.parametrize("kind", ["sql", "memory"])
async def test_a_claims_token_names_its_row(store: SqlStore, kind: str) -> None:
    """Found 2026-12-03: a release matched the row's owner (the replica) only, so one that
    reached the store late deleted the same replica's later claim of the id. Now a release,
    an end and a push match the claim's token (migration 0019)."""
    s: Any = store if kind == "sql" else MemoryStore()
    exp = T0 + timedelta(seconds=30)
    assert await s.claim_request_key("k", "r1", True, T0, exp, claim="t1") is None
    await s.release_request_key("k", "r1", "t1")
    assert await s.claim_request_key("k", "r1", True, T0, exp, claim="t2") is None  # again
    await s.release_request_key("k", "r1", "t1")  # the first claim's release, late
    row = await s.get_request_key("k")
    assert row is not None and row.claim == "t2" and row.state == "running"
    assert not await s.finish_request_key(
        IdempotencyRecord("k", "r1", True, "done", T0, exp, claim="t1")
    )
    later = exp + timedelta(seconds=60)  # an open stream's row pushed back by its claim only
    assert not await s.extend_request_key("k", "t1", later)
    assert await s.extend_request_key("k", "t2", later)
    assert await s.claim_request_key("k", "r2", True, exp, exp) is not None  # still held
    done = IdempotencyRecord("k", "r1", True, "done", T0, later, claim="t2")
    assert await s.finish_request_key(done)
    assert not await s.extend_request_key("k", "t2", later)  # a done row is not pushed


async def test_node_changes_and_heartbeats_since(store: SqlStore) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    await store.upsert_node(_node("n1"))
    assert [r.node_id for r in await store.nodes_changed_since(before)] == ["n1"]
    assert await store.nodes_changed_since(datetime.now(timezone.utc) + timedelta(seconds=1)) == []
    beat = T0 + timedelta(seconds=5)
    assert await store.touch_heartbeat("n1", beat, "online")
    assert _plain(await store.heartbeats_since(beat)) == [("n1", "online", beat, None)]
    assert _plain(await store.heartbeats_since(beat + timedelta(microseconds=1))) == []
    # the node's last keyed request as its heartbeat said, read back by every replica; a
    # heartbeat that does not say it (an older node) clears it
    keyed = beat - timedelta(seconds=3)
    beat = beat + timedelta(seconds=1)
    assert await store.touch_heartbeat("n1", beat, "online", keyed_at=keyed)
    assert _plain(await store.heartbeats_since(beat)) == [("n1", "online", beat, keyed)]
    beat = beat + timedelta(seconds=1)
    assert await store.touch_heartbeat("n1", beat, "online")
    assert _plain(await store.heartbeats_since(beat)) == [("n1", "online", beat, None)]
    mark = datetime.now(timezone.utc) - timedelta(milliseconds=1)
    assert await store.set_node_state("n1", "offline")
    assert [r.state for r in await store.nodes_changed_since(mark)] == ["offline"]


async def test_a_node_s_tls_pin_is_stored_with_its_registration(store: SqlStore) -> None:
    """Every replica must call an https node with its certificate's pin, and most replicas
    never see its registration (a node registers and beats at one): the pin is stored with
    the registration (migration 0017); ``""`` is an https node pinned by no fingerprint
    (CA-verified), ``None`` one whose pin the row does not tell."""
    fp = "ab" * 32
    rec = replace(_node("n1"), url="https://n1:8801", tls_fingerprint=fp)
    await store.upsert_node(rec)
    assert (await store.get_node("n1")).tls_fingerprint == fp  # type: ignore[union-attr]
    assert [r.tls_fingerprint for r in await store.nodes_changed_since(T0)] == [fp]
    await store.upsert_node(replace(rec, tls_fingerprint=""))  # re-registered, CA-verified
    assert [r.tls_fingerprint for r in await store.list_nodes()] == [""]
    await store.upsert_node(replace(rec, tls_fingerprint=fp))
    # a replica of the previous version re-registers it: its statement does not know the
    # column, which keeps the old pin; that pin is not told any more
    old = update(tables.nodes).where(tables.nodes.c.node_id == "n1")
    async with store.engine.begin() as conn:
        await conn.execute(old.values(version="0.0.9", changed_at=datetime.now(timezone.utc)))
    assert (await store.get_node("n1")).tls_fingerprint is None  # type: ignore[union-attr]


async def test_replica_beats(store: SqlStore) -> None:
    await store.beat_replica(ReplicaRecord("r1", T0, T0, "0.1", {"in_flight": {"m": 1}}))
    await store.beat_replica(ReplicaRecord("r2", T0, T0 + timedelta(seconds=9), "0.1", {}))
    later = T0 + timedelta(seconds=10)
    await store.beat_replica(ReplicaRecord("r1", later, later, "0.1", {"in_flight": {"m": 2}}))
    live = await store.live_replicas(T0 + timedelta(seconds=5))
    assert [(r.replica_id, r.started_at, r.demand) for r in live] == [
        ("r1", T0, {"in_flight": {"m": 2}}),
        ("r2", T0, {}),
    ]
    assert await store.drop_replicas_before(later) == 1
    assert [r.replica_id for r in await store.live_replicas(T0)] == ["r1"]


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


@pytest.mark.postgres
async def test_several_replicas_starting_at_once_migrate_once(pg_database_url: str) -> None:
    """Six stores (six connections) open one empty database at the same moment: the
    advisory lock makes them migrate one after another; every one ends on head."""
    (head,) = ScriptDirectory.from_config(alembic_config()).get_heads()
    stores = [SqlStore(pg_database_url) for _ in range(6)]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.open() for s in stores)), 90)
        for s in stores:
            async with s.engine.connect() as conn:
                assert await conn.run_sync(_revision) == head
        await stores[0].upsert_node(_node("n1"))
        assert [n.node_id for n in await stores[5].list_nodes()] == ["n1"]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


_OPEN = """
import asyncio, sys, time
from LLM_Mesh.registry.store import SqlStore
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
async def main():
    async with SqlStore(sys.argv[1]) as s:
        await s.list_nodes()
asyncio.run(main())
print("OPEN-OK")
"""


@pytest.mark.postgres
def test_several_registry_processes_starting_at_once(pg_database_url: str) -> None:
    """Four processes, released at one instant, open (and so migrate) one empty database."""
    start = time.time() + 3.0  # time for every interpreter to import first
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, pg_database_url, repr(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ),
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert all("OPEN-OK" in o for o in outs), outs


async def test_sequence_numbers_and_heartbeats_in_batches(store: SqlStore) -> None:
    for n in ("n1", "n2", "n3"):
        assert await store.claim_node_key(n, f"key-{n}", "op", 10, T0) is SeqResult.OK
        await store.upsert_node(_node(n))
    await store.revoke_node("n3", T0)
    got = await store.advance_node_seqs([("n1", 11), ("n2", 5), ("n3", 99), ("ghost", 1)])
    assert got == {"n1": "ok", "n2": "stale", "n3": "revoked", "ghost": "unknown"}
    key = await store.get_node_key("n1")
    assert key is not None and key.last_seq == 11
    keys = await store.get_node_keys(["n1", "n3", "ghost"])
    assert sorted(keys) == ["n1", "n3"] and keys["n3"].revoked_at is not None
    beat = T0 + timedelta(seconds=7)
    keyed = beat - timedelta(seconds=2)
    await store.touch_heartbeats(
        [("n1", beat, "draining", 0), ("n2", beat, "online", 30_000)], keyed={"n2": keyed}
    )
    assert sorted(_plain(await store.heartbeats_since(beat))) == [
        ("n1", "draining", beat, None),
        ("n2", "online", beat, keyed),
    ]
    # the uptime credit (rewards): the time since the last beat, up to the limit, only
    # for a node that was online, as ``touch_heartbeat`` computes it
    before = {n: (await store.get_node(n)).healthy_ms for n in ("n1", "n2")}  # type: ignore[union-attr]
    later = beat + timedelta(seconds=5)
    await store.touch_heartbeats([("n1", later, "online", 30_000), ("n2", later, "online", 30_000)])
    after = {n: (await store.get_node(n)).healthy_ms for n in ("n1", "n2")}  # type: ignore[union-attr]
    assert after["n1"] - before["n1"] == 0  # it was draining
    assert after["n2"] - before["n2"] == 5_000
    much_later = later + timedelta(seconds=100)
    await store.touch_heartbeats([("n2", much_later, "online", 30_000)])
    assert (await store.get_node("n2")).healthy_ms - after["n2"] == 30_000  # type: ignore[union-attr]


async def test_seq_batcher_answers_each_message_as_one_at_a_time_would() -> None:
    mem = MemoryStore()
    await mem.claim_node_key("n1", "k", "op", 10, T0)
    await mem.claim_node_key("n2", "k2", "op", 10, T0)
    batcher = SeqBatcher(mem)
    got = await asyncio.gather(
        batcher.advance_node_seq("n1", 12),
        batcher.advance_node_seq("n1", 11),  # same batch, lower: stale, as it would be after 12
        batcher.advance_node_seq("n2", 9),
        batcher.advance_node_seq("nx", 50),
    )
    assert got == [SeqResult.OK, SeqResult.STALE, SeqResult.STALE, SeqResult.UNKNOWN]
    k1, kx = await asyncio.gather(batcher.get_node_key("n1"), batcher.get_node_key("nx"))
    assert k1 is not None and k1.last_seq == 12 and kx is None
    writer = HeartbeatWriter(mem)
    await mem.upsert_node(_node("n1"))
    writer.touch("n1", T0 + timedelta(seconds=1), "online")
    writer.touch("n1", T0 + timedelta(seconds=2), "paused")
    await writer.flush()
    assert mem.nodes["n1"].state == "paused"
    assert mem.nodes["n1"].last_heartbeat_at == T0 + timedelta(seconds=2)


async def test_seq_batcher_takes_one_copy_of_a_message_sent_at_once() -> None:
    """The same message three times in one batch (a replay sent at once): the first taken,
    the copies stale, as one after the other would be; a revoked node's copies all hear
    it. Failed before (limits45): ``[OK, OK, OK]``."""
    mem = MemoryStore()
    await mem.claim_node_key("n1", "k", "op", 10, T0)
    await mem.claim_node_key("n2", "k2", "op", 10, T0)
    await mem.revoke_node("n2", T0)
    batcher = SeqBatcher(mem)
    got = await asyncio.gather(*(batcher.advance_node_seq("n1", 11) for _ in range(3)))
    assert got == [SeqResult.OK, SeqResult.STALE, SeqResult.STALE]
    got = await asyncio.gather(*(batcher.advance_node_seq("n2", 11) for _ in range(2)))
    assert got == [SeqResult.REVOKED] * 2


async def test_a_seq_batch_run_again_after_its_answer_was_lost_takes_its_own_numbers(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """found 2026-12-03: ``_batched`` runs a batch once more when its connection was
    killed, but on PostgreSQL the first run's autocommit ``UPDATE`` may have committed
    before the answer was lost: the second run found its own numbers taken and the honest
    nodes' heartbeats were refused as replays. The batch's token (migration 0020) makes
    the second run take them again; the same numbers sent by another batch stay stale."""
    for n in ("n1", "n2"):
        assert await store.claim_node_key(n, f"key-{n}", "op", 10, T0) is SeqResult.OK
    real = store._batched

    async def answer_lost(work: Any) -> Any:
        await real(work)  # committed; its answer never came back
        return await real(work)  # what ``_batched`` does after a killed connection

    monkeypatch.setattr(store, "_batched", answer_lost)
    assert await store.advance_node_seqs([("n1", 11), ("n2", 10)]) == {
        "n1": "ok",
        "n2": "stale",
    }
    monkeypatch.undo()
    assert await store.advance_node_seqs([("n1", 11)]) == {"n1": "stale"}  # a replay
    key = await store.get_node_key("n1")
    assert key is not None and key.last_seq == 11


async def test_a_seq_batch_whose_connection_died_after_commit_is_answered_ok(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through ``_batched``'s own retry on PostgreSQL: the connection is reported
    invalidated after the autocommit ``UPDATE`` ran (the commit's answer lost)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the autocommit batch (and its lost answer) is PostgreSQL's")
    from sqlalchemy.exc import DBAPIError

    s = SqlStore(database_url)
    await s.open()
    try:
        assert await s.claim_node_key("n1", "key-n1", "op", 10, T0) is SeqResult.OK
        real = SqlStore._batched
        runs = 0

        async def killed_after_commit(self: SqlStore, work: Any) -> Any:
            async def once(conn: Any) -> Any:
                nonlocal runs
                runs += 1
                out = await work(conn)
                if runs == 1:
                    raise DBAPIError(
                        "COMMIT", None, ConnectionError("lost"), connection_invalidated=True
                    )
                return out

            return await real(self, once)

        monkeypatch.setattr(SqlStore, "_batched", killed_after_commit)
        assert await s.advance_node_seqs([("n1", 11)]) == {"n1": "ok"}
        assert runs == 2
        monkeypatch.undo()
        assert await s.advance_node_seqs([("n1", 11)]) == {"n1": "stale"}
    finally:
        await s.close()


async def test_a_node_s_keeps_no_prompts_is_stored_with_its_registration(store: SqlStore) -> None:
    """Every replica routes to a node as it declared (``core/prompt_keeping.py``), and most
    never see its registration: the signed ``keeps_no_prompts`` is stored with it (migration
    0029), ``None`` when it declared nothing or the row does not tell; a state change keeps
    it told (found 2026-12-06, keepstore33)."""
    await store.upsert_node(replace(_node("n1"), keeps_no_prompts=False))
    assert (await store.get_node("n1")).keeps_no_prompts is False  # type: ignore[union-attr]
    assert [r.keeps_no_prompts for r in await store.nodes_changed_since(T0)] == [False]
    await store.set_node_state("n1", "draining")  # moves changed_at, not the declaration
    assert [r.keeps_no_prompts for r in await store.list_nodes()] == [False]
    await store.upsert_node(replace(_node("n1"), keeps_no_prompts=True))  # declared again
    assert (await store.get_node("n1")).keeps_no_prompts is True  # type: ignore[union-attr]
    await store.upsert_node(_node("n1"))  # an older node: declares nothing
    assert (await store.get_node("n1")).keeps_no_prompts is None  # type: ignore[union-attr]
    await store.upsert_node(replace(_node("n1"), keeps_no_prompts=False))
    # a replica of the previous version (0028) re-registers it: its statement moves tls_at
    # and changed_at and keeps the old declaration, which is not told any more
    now = datetime.now(timezone.utc)
    old = update(tables.nodes).where(tables.nodes.c.node_id == "n1")
    async with store.engine.begin() as conn:
        await conn.execute(old.values(version="0.0.9", changed_at=now, tls_at=now))
    assert (await store.get_node("n1")).keeps_no_prompts is None  # type: ignore[union-attr]


def _plain(heard: HeardRows) -> list[tuple[str, str, datetime, datetime | None]]:
    """``heartbeats_since``'s rows as ``(node_id, state, at, keyed_at)``."""
    return [(r.node_id, r.state, r.at, r.keyed_at) for r in heard.rows]
