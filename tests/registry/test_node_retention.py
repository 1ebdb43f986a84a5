"""Quiet ``nodes`` rows leave the store (``registry/node_retention.py``; found 2026-12-06,
departed34: forgetting freed memory only, the store kept a row, and ``?all=true`` listed it,
for every id ever registered). Only the node row and its health check go: the key, its
revocation, quarantine and reward marks stay, so a revoked id stays revoked forever."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from LLM_Mesh.core.canary_departures import Evidence
from LLM_Mesh.core.canary_departures_step import Step
from LLM_Mesh.core.retention import DAY_S, node_cutoff
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_retention import (
    PRUNE_LOCK_KEY,
    NodeRowPruner,
    _Busy,
    prune_nodes,
    sql_prune,
)
from LLM_Mesh.registry.ports import SeqResult
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import ADMIN, make_settings, running
from tests.registry.node_auth_mesh import Wall, error, make_node, register
from tests.registry.test_store import node

NOW = datetime.now(timezone.utc)
OLD = NOW - timedelta(days=40)


async def _no_sleep(_s: float) -> None:
    return None


def pruner(engine: Any, keep_days: int = 30, **kw: Any) -> NodeRowPruner:
    async def get() -> Any:
        return engine

    return NodeRowPruner(
        sql_prune(get), keep_days=keep_days, forget_s=DAY_S, expiry_s=30.0, reward_period_s=3600,
        grace_s=10.0, sleep=_no_sleep, **kw,
    )  # fmt: skip


async def _age(engine: Any, node_id: str, at: datetime = OLD) -> None:
    """The row as if last registered, heard and changed at ``at``."""
    n = tables.nodes
    async with engine.begin() as conn:
        await conn.execute(
            update(n)
            .where(n.c.node_id == node_id)
            .values(registered_at=at, last_heartbeat_at=at, changed_at=at)
        )


async def _ids(engine: Any, table: Any) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(table.c.node_id))).scalars())


def test_the_cutoff_never_reaches_the_forget_bound_or_the_rewards_window() -> None:
    kw: dict[str, Any] = {"forget_s": DAY_S, "expiry_s": 30.0, "reward_period_s": 3600}
    assert node_cutoff(1e9, 0, grace_s=10.0, **kw) is None
    assert node_cutoff(1e9, 30, grace_s=10.0, **kw) == 1e9 - 30 * DAY_S
    # a day past the forget bound at least, however short the keep
    assert node_cutoff(1e9, 1, grace_s=10.0, **{**kw, "forget_s": 5 * DAY_S}) == 1e9 - 6 * DAY_S
    # the rewards' window: two periods, the grace and an hour
    week = {**kw, "reward_period_s": 7 * DAY_S}
    assert node_cutoff(1e9, 1, grace_s=10.0, **week) == 1e9 - (14 * DAY_S + 10.0 + 3600)
    with pytest.raises(ValueError):
        node_cutoff(1e9, -1, grace_s=10.0, **kw)


async def test_only_rows_quiet_past_the_cutoff_go_with_their_checks(store: SqlStore) -> None:
    """Rows registered, heard and changed before the cutoff go (and their ``node_checks``);
    a row heard or changed since stays; the key, revocation, quarantine and reward marks
    of a deleted id stay."""
    for i in range(5):
        await store.upsert_node(node(f"old{i}"))
        await _age(store.engine, f"old{i}")
    await store.upsert_node(node("heard"))
    await _age(store.engine, "heard")
    await store.touch_heartbeat("heard", NOW, "online")
    await store.upsert_node(node("changed"))
    await _age(store.engine, "changed")
    await store.set_node_state("changed", "offline")  # changed_at: now
    await store.claim_node_key("old0", "pk0", "alice", 1, OLD)
    await store.revoke_node("old0", OLD)  # (a change of the row, as in memory: aged again)
    await _age(store.engine, "old0")
    async with store.engine.begin() as conn:
        for node_id in ("old1", "heard"):
            await conn.execute(
                insert(tables.node_checks).values(node_id=node_id, holder="r", lease_until=OLD)
            )
        await conn.execute(
            insert(tables.canary_status).values(
                node_id="old2",
                model="m",
                passed=0,
                failed=1,
                quarantined_at=OLD,
                reason="canary",
                updated_at=OLD,
            )
        )
    assert await pruner(store.engine, batch=2).poll() == 5
    assert await _ids(store.engine, tables.nodes) == {"heard", "changed"}
    assert await _ids(store.engine, tables.node_checks) == {"heard"}
    assert await _ids(store.engine, tables.canary_status) == {"old2"}  # the quarantine stays
    key = await store.get_node_key("old0")
    assert key is not None and key.revoked_at is not None  # the revocation stays
    assert await pruner(store.engine).poll() == 0  # idempotent


async def test_a_revoked_id_aged_past_retention_stays_revoked(store: SqlStore) -> None:
    """Attack: an id revoked, its row aged past retention and pruned, then registered again
    with the same key: the store still refuses it (key claim and node row both)."""
    await store.claim_node_key("bad", "pk-bad", "alice", 1, OLD)
    await store.upsert_node(node("bad"))
    assert await store.revoke_node("bad", OLD)
    await _age(store.engine, "bad")
    assert await pruner(store.engine).poll() == 1
    assert await store.get_node("bad") is None
    assert await store.claim_node_key("bad", "pk-bad", "alice", 2, NOW) is SeqResult.REVOKED
    assert await store.upsert_node(node("bad", registered_at=NOW)) is False
    assert await store.get_node("bad") is None


async def test_prune_nodes_is_bounded_and_refuses_a_naive_time(store: SqlStore) -> None:
    for i in range(7):
        await store.upsert_node(node(f"n{i}"))
        await _age(store.engine, f"n{i}")
    cutoff = NOW - timedelta(days=30)
    assert [await prune_nodes(store.engine, cutoff, 3) for _ in range(4)] == [3, 3, 1, 0]
    with pytest.raises(ValueError):
        await prune_nodes(store.engine, cutoff, 0)
    with pytest.raises(ValueError):
        await prune_nodes(store.engine, datetime(2025, 1, 1), 1)


@pytest.mark.postgres
async def test_one_replica_prunes_at_a_time_on_postgresql(pg_database_url: str) -> None:
    """While one replica's statement holds the pruning lock, another's deletes nothing."""
    a, b = SqlStore(pg_database_url), SqlStore(pg_database_url)
    await a.open()
    await b.open()
    try:
        for i in range(3):
            await a.upsert_node(node(f"n{i}"))
            await _age(a.engine, f"n{i}")
        cutoff = NOW - timedelta(days=30)
        async with a.engine.connect() as conn, conn.begin():
            await conn.execute(select(func.pg_advisory_xact_lock(PRUNE_LOCK_KEY)))
            with pytest.raises(_Busy):
                await prune_nodes(b.engine, cutoff, 10)
            assert await pruner(b.engine).poll() == 0
        assert await prune_nodes(b.engine, cutoff, 10) == 3
    finally:
        await a.close()
        await b.close()


async def test_attack_revoked_key_re_registers_after_its_row_is_pruned(tmp_path: Path) -> None:
    """Attack through the registry: a signed node registers, is revoked, its row ages past
    retention and the app's pruner deletes it; the same key registering again is refused
    403 ``revoked``, and no row comes back. A kept node's own key brings it back."""
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    await store.open()
    try:
        token = await add_operator(store, "alice")
        assert token is not None
        wall = Wall()
        bad, good = make_node(wall, token), make_node(wall, token)
        async with running(tmp_path, store=store, signed=True, wall_clock=wall) as h:  # type: ignore[arg-type]
            for n in (bad, good):
                assert (await register(h, n)).status_code == 200
            assert await store.revoke_node(bad.node_id, NOW)
            for n in (bad, good):
                await _age(store.engine, n.node_id)
            assert await h.app.state.node_pruner.poll() == 2
            assert await store.get_node(bad.node_id) is None
            h.table.forget(bad.node_id)  # forgotten long before (a day quiet), as upkeep does
            h.table.forget(good.node_id)
            r = await h.client.get("/mesh/nodes?all=true", headers=ADMIN)
            assert r.status_code == 200 and r.json()["nodes"] == []
            error(await register(h, bad), 403, "revoked")
            assert await store.get_node(bad.node_id) is None
            assert (await register(h, good)).status_code == 200
            assert await store.get_node(good.node_id) is not None
    finally:
        await store.close()


async def test_the_pruner_runs_with_the_app_unless_zero(tmp_path: Path) -> None:
    """With a memory store too (failed before: none ran, every departed id's row kept)."""
    sql = SqlStore(f"sqlite:///{tmp_path / 'r.db'}")
    app = create_registry_app(make_settings(tmp_path / "on"), store=sql)
    assert isinstance(app.state.node_pruner, NodeRowPruner)
    assert app.state.node_pruner.keep_days == 30
    off = create_registry_app(make_settings(tmp_path / "off", node_keep_days=0), store=sql)
    assert off.state.node_pruner is None
    mem_store = MemoryStore()
    mem = create_registry_app(make_settings(tmp_path / "mem"), store=mem_store)
    assert isinstance(mem.state.node_pruner, NodeRowPruner)
    await mem_store.upsert_node(node("gone"))
    await mem_store.upsert_node(node("here"))
    _age_memory(mem_store, "gone")
    assert await mem.state.node_pruner.poll() == 1  # the app's own, on its own settings
    assert set(mem_store.nodes) == {"here"}
    mem_off = create_registry_app(make_settings(tmp_path / "m0", node_keep_days=0), store=mem_store)
    assert mem_off.state.node_pruner is None
    await asyncio.sleep(0)


def _age_memory(store: MemoryStore, node_id: str, at: datetime = OLD) -> None:
    """:func:`_age` for the memory store."""
    rec = store.nodes[node_id]
    rec.registered_at = rec.last_heartbeat_at = at
    store.changed_at[node_id] = at


def memory_pruner(store: MemoryStore, keep_days: int = 30, **kw: Any) -> NodeRowPruner:
    return NodeRowPruner(
        store.prune_nodes, keep_days=keep_days, forget_s=DAY_S, expiry_s=30.0,
        reward_period_s=3600, grace_s=10.0, sleep=_no_sleep, **kw,
    )  # fmt: skip


async def test_the_memory_store_prunes_by_the_same_rule() -> None:
    """Failed before (no ``MemoryStore.prune_nodes``: nothing pruned, ever). As the SQL
    test above: rows registered, heard and changed before the cutoff go with their health
    check, in batches; one heard or changed since stays; the key and revocation stay."""
    store = MemoryStore()
    for i in range(5):
        await store.upsert_node(node(f"old{i}"))
    await store.claim_node_key("old0", "pk0", "alice", 1, OLD)
    await store.revoke_node("old0", OLD)  # (here a change of the row: before its aging)
    for i in range(5):
        _age_memory(store, f"old{i}")
    await store.upsert_node(node("heard"))
    _age_memory(store, "heard")
    await store.touch_heartbeat("heard", NOW, "online")
    await store.upsert_node(node("changed"))
    _age_memory(store, "changed")
    await store.set_node_state("changed", "offline")  # changed_at: now
    for node_id in ("old1", "heard"):
        assert await store.claim_health_checks([node_id], "r", OLD, OLD + timedelta(hours=1))
    assert await memory_pruner(store, batch=2).poll() == 5
    assert set(store.nodes) == {"heard", "changed"}
    assert set(store.checks) == {"heard"}
    assert not {"old0", "old1"} & (set(store.changed_at) | set(store.keyed_at))
    key = await store.get_node_key("old0")
    assert key is not None and key.revoked_at is not None  # the revocation stays
    assert await memory_pruner(store).poll() == 0  # idempotent
    assert await memory_pruner(store, keep_days=0).poll() == 0  # 0: forever


async def test_memory_prune_is_bounded_and_refuses_what_sql_refuses() -> None:
    store = MemoryStore()
    for i in range(7):
        await store.upsert_node(node(f"n{i}"))
        _age_memory(store, f"n{i}")
    cutoff = NOW - timedelta(days=30)
    assert [await store.prune_nodes(cutoff, 3) for _ in range(4)] == [3, 3, 1, 0]
    with pytest.raises(ValueError):
        await store.prune_nodes(cutoff, 0)
    with pytest.raises(ValueError):
        await store.prune_nodes(datetime(2025, 1, 1), 1)


async def test_attack_a_revoked_id_pruned_from_memory_stays_revoked() -> None:
    """Attack: as on SQL, an id revoked and pruned registers again with its key: refused,
    and no row comes back; its address is free for another node."""
    store = MemoryStore()
    await store.claim_node_key("bad", "pk-bad", "alice", 1, OLD)
    await store.upsert_node(node("bad"))
    assert await store.revoke_node("bad", OLD)
    _age_memory(store, "bad")
    assert await memory_pruner(store).poll() == 1
    assert await store.get_node("bad") is None and store._at_address == {}
    assert await store.claim_node_key("bad", "pk-bad", "alice", 2, NOW) is SeqResult.REVOKED
    assert await store.upsert_node(node("bad", registered_at=NOW)) is False
    assert await store.get_node("bad") is None


async def test_a_departed_nodes_canary_tallies_go_with_its_row(store: SqlStore) -> None:
    """The canary's tallies across sampled probes (``canary_departures``, migration 0030)
    of a node whose row is pruned go with it (canarystore35: bounded by the departed nodes
    too); a live node's stay."""
    for node_id in ("gone", "live"):
        await store.upsert_node(node(node_id, registered_at=NOW))
        step = Step()
        step.add(Evidence(4.0, 1, 0))
        await store.add_canary_departures({(node_id, "m", "", ""): step}, [], 1.0)
    await _age(store.engine, "gone")
    assert await prune_nodes(store.engine, NOW - timedelta(days=30), 10) == 1
    assert await _ids(store.engine, tables.canary_departures) == {"live"}


async def test_a_departed_nodes_canary_tallies_go_with_its_row_in_memory() -> None:
    """As the SQL test above, on the memory store (tidy35's pruning and canarystore35's
    tallies merged: the tallies of a pruned node were kept)."""
    store = MemoryStore()
    for node_id in ("gone", "live"):
        await store.upsert_node(node(node_id, registered_at=NOW))
        step = Step()
        step.add(Evidence(4.0, 1, 0))
        await store.add_canary_departures({(node_id, "m", "", ""): step}, [], 1.0)
    _age_memory(store, "gone")
    assert await memory_pruner(store).poll() == 1
    assert {k[0] for k in store.canary_departures} == {"live"}


async def test_a_revoked_rows_retention_counts_from_its_revocation(store: SqlStore) -> None:
    """A row quiet for 40 days, then revoked (the node, or its operator): its retention
    counts from the revocation on SQL as in memory (the next test), so it stays at least
    as long as an unrevoked row (found 2026-12-06, small35: the SQL store's revocation
    left ``changed_at`` alone, so the pruner deleted the row at once; failed before)."""
    await store.add_operator("bob", "h", OLD)
    for node_id, operator in (("one", "alice"), ("both", "bob")):
        await store.claim_node_key(node_id, f"pk-{node_id}", operator, 1, OLD)
        await store.upsert_node(node(node_id))
        await _age(store.engine, node_id)
    since = datetime.now(timezone.utc)
    assert await store.revoke_node("one", since)
    assert await store.revoke_operator("bob", since) == ["both"]
    assert await pruner(store.engine).poll() == 0
    assert await _ids(store.engine, tables.nodes) == {"one", "both"}
    # and a replica polling for changed rows hears of both (their state: offline)
    changed = {r.node_id: r.state for r in await store.nodes_changed_since(since)}
    assert changed == {"one": "offline", "both": "offline"}


async def test_a_revoked_rows_retention_counts_from_its_revocation_in_memory() -> None:
    """The memory store's rule, as the SQL test above."""
    store = MemoryStore()
    await store.add_operator("bob", "h", OLD)
    for node_id, operator in (("one", "alice"), ("both", "bob")):
        await store.claim_node_key(node_id, f"pk-{node_id}", operator, 1, OLD)
        await store.upsert_node(node(node_id))
        _age_memory(store, node_id)
    assert await store.revoke_node("one", NOW)
    assert await store.revoke_operator("bob", NOW) == ["both"]
    assert await memory_pruner(store).poll() == 0
    assert set(store.nodes) == {"one", "both"}
