"""Operators, node keys and the admin key in the store (SQLite, PostgreSQL, and the memory
store, which must behave the same): one-step sequence checks, revocation, hashes only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from LLM_Mesh.registry import tables
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import NodeRecord, SeqResult
from LLM_Mesh.registry.store import SqlStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _node(node_id: str) -> NodeRecord:
    return NodeRecord(
        node_id=node_id, url=f"http://{node_id}:1", region=None, models=[{"id": "m"}],
        hardware={}, max_concurrency=1, max_queue=1, version="1", state="online",
        registered_at=T0, last_heartbeat_at=T0,
    )  # fmt: skip


async def check_operators_add_list_revoke(s: Any) -> None:
    assert await s.add_operator("alice", "h1", T0)
    assert not await s.add_operator("alice", "h2", T0)  # taken
    assert await s.add_operator("bob", "h3", T0)
    assert (await s.operator_by_token("h1")).name == "alice"
    assert await s.operator_by_token("nope") is None
    assert await s.claim_node_key("n1", "pk1", "alice", 5, T0) is SeqResult.OK
    await s.upsert_node(_node("n1"))
    ops = await s.list_operators()
    assert [(o.name, o.nodes, o.revoked_at) for o in ops] == [
        ("alice", ["n1"], None),
        ("bob", [], None),
    ]
    assert await s.revoke_operator("alice", T0) == ["n1"]
    assert await s.revoke_operator("carol", T0) is None
    assert (await s.operator_by_token("h1")).revoked_at is not None
    assert (await s.get_node_key("n1")).revoked_at is not None
    assert (await s.get_node("n1")).state == "offline"
    assert await s.advance_node_seq("n1", 6) is SeqResult.REVOKED
    # a new token for the name; its revoked node keys stay revoked
    assert await s.add_operator("alice", "h9", T0, replace=True)
    assert (await s.operator_by_token("h9")).revoked_at is None
    assert await s.claim_node_key("n1", "pk1", "alice", 7, T0) is SeqResult.REVOKED


async def check_sequence_numbers_only_grow(s: Any) -> None:
    assert await s.advance_node_seq("n1", 1) is SeqResult.UNKNOWN
    assert await s.claim_node_key("n1", "pk1", "alice", 10, T0) is SeqResult.OK
    assert await s.claim_node_key("n1", "pk1", "alice", 10, T0) is SeqResult.STALE
    assert await s.claim_node_key("n1", "pk2", "alice", 11, T0) is SeqResult.KEY_MISMATCH
    assert await s.advance_node_seq("n1", 10) is SeqResult.STALE
    assert await s.advance_node_seq("n1", 9) is SeqResult.STALE
    assert await s.advance_node_seq("n1", 11) is SeqResult.OK
    # a key is its first operator's: another operator's claim is refused, nothing moves
    # (found 2026-12-02: the key, its node's earnings and quarantine went to bob)
    assert await s.claim_node_key("n1", "pk1", "bob", 12, T0) is SeqResult.OTHER_OPERATOR
    key = await s.get_node_key("n1")
    assert (key.last_seq, key.operator, key.public_key) == (11, "alice", "pk1")
    assert await s.claim_node_key("n1", "pk1", "alice", 12, T0) is SeqResult.OK


async def check_revoke_node_and_revoked_since(s: Any) -> None:
    await s.claim_node_key("n1", "pk1", "alice", 1, T0)
    await s.claim_node_key("n2", "pk2", "alice", 1, T0)
    assert not await s.revoke_node("ghost", T0)
    assert await s.revoke_node("n1", T0 + timedelta(seconds=10))
    assert await s.revoked_nodes_since(T0) == ["n1"]
    assert await s.revoked_nodes_since(T0 + timedelta(seconds=11)) == []
    assert await s.advance_node_seq("n1", 2) is SeqResult.REVOKED
    assert await s.advance_node_seq("n2", 2) is SeqResult.OK


async def check_admin_key_hash(s: Any) -> None:
    assert await s.get_admin_key_hash() is None
    assert await s.set_admin_key_hash("a" * 64, T0, replace=False)
    assert not await s.set_admin_key_hash("b" * 64, T0, replace=False)
    assert await s.get_admin_key_hash() == "a" * 64
    assert await s.set_admin_key_hash("c" * 64, T0, replace=True)
    assert await s.get_admin_key_hash() == "c" * 64


CHECKS = [
    check_operators_add_list_revoke,
    check_sequence_numbers_only_grow,
    check_revoke_node_and_revoked_since,
    check_admin_key_hash,
]


@pytest.mark.parametrize("check", CHECKS)
async def test_sql_store(store: SqlStore, check: Callable[[Any], Awaitable[None]]) -> None:
    await check(store)


@pytest.mark.parametrize("check", CHECKS)
async def test_memory_store_behaves_the_same(check: Callable[[Any], Awaitable[None]]) -> None:
    await check(MemoryStore())


async def test_concurrent_replays_accept_one(store: SqlStore) -> None:
    """Two registries racing with the same message: exactly one accepts it."""
    await store.claim_node_key("n1", "pk1", "alice", 1, T0)
    results = await asyncio.gather(*(store.advance_node_seq("n1", 2) for _ in range(8)))
    assert results.count(SeqResult.OK) == 1
    assert set(results) == {SeqResult.OK, SeqResult.STALE}


async def test_only_the_token_hash_is_stored(store: SqlStore) -> None:
    from LLM_Mesh.registry.admin import add_operator

    token = await add_operator(store, "alice")
    assert token is not None
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(tables.operators))).all()
    assert len(rows) == 1 and token not in " ".join(str(v) for v in rows[0])


async def test_a_key_claimed_as_its_operator_is_revoked_is_refused(database_url: str) -> None:
    # a registration at one replica read its operator (not revoked) and then checked the
    # node's address (a DNS answer the operator controls can take seconds); the admin
    # revoked the operator meanwhile, from the CLI or another replica. Found 2026-12-03:
    # the claim then took the new key for the revoked operator, unrevoked: a node of a
    # revoked operator, registered and routed everywhere, heartbeating for ever.
    from LLM_Mesh.core.identity import NodeSigner, hash_secret
    from LLM_Mesh.errors import Revoked
    from LLM_Mesh.registry.node_auth import SignedNodeAuth, VerifiedRegistration

    replica, cli = SqlStore(database_url), SqlStore(database_url)
    await replica.open()
    await cli.open()
    try:
        assert await cli.add_operator("mallory", hash_secret("lmo-token"), T0)
        assert await replica.claim_node_key("n-old", "pk-old", "mallory", 1, T0) is SeqResult.OK
        signer = NodeSigner(Ed25519PrivateKey.generate(), lambda: 0.0)
        reg = VerifiedRegistration(signer.node_id, signer.public_key, 1, "lmo-token")

        async def address_check() -> None:  # the admin revokes while it runs
            assert await cli.revoke_operator("mallory", T0) == ["n-old"]

        with pytest.raises(Revoked):
            await SignedNodeAuth(replica).admit_registration(reg, address_check)
        key = await cli.get_node_key(signer.node_id)
        assert key is None or key.revoked_at is not None  # before: unrevoked
    finally:
        await replica.close()
        await cli.close()


@pytest.mark.postgres
async def test_a_key_claim_waits_for_a_revocation_in_flight(pg_database_url: str) -> None:
    # the claim's transaction reads the operator under a share lock: a revocation that has
    # written the operator row but not committed is waited for, then seen (READ COMMITTED
    # alone let the claim read the row as it was and commit the key unrevoked, while the
    # revocation's own read of the operator's keys missed it)
    replica, cli = SqlStore(pg_database_url), SqlStore(pg_database_url)
    await replica.open()
    await cli.open()
    try:
        assert await cli.add_operator("mallory", "h", T0)
        o = tables.operators
        async with cli.engine.begin() as conn:  # revoke_operator's first write, uncommitted
            await conn.execute(o.update().where(o.c.name == "mallory").values(revoked_at=T0))
            claim = asyncio.create_task(replica.claim_node_key("n-new", "pk", "mallory", 1, T0))
            await asyncio.sleep(0.5)
            assert not claim.done()  # before: committed the key at once
        assert await claim is SeqResult.REVOKED
        assert await cli.get_node_key("n-new") is None
    finally:
        await replica.close()
        await cli.close()


async def test_the_memory_store_refuses_a_key_of_an_operator_revoked_since_it_was_read() -> None:
    s = MemoryStore()
    assert await s.add_operator("mallory", "h", T0)
    assert (await s.operator_by_token("h")).revoked_at is None  # type: ignore[union-attr]
    await s.revoke_operator("mallory", T0)  # while the registration checks the address
    assert await s.claim_node_key("n-new", "pk", "mallory", 1, T0) is SeqResult.REVOKED
    assert await s.get_node_key("n-new") is None


@pytest.mark.parametrize("kind", ["sql", "memory"])
async def test_a_nodes_row_written_after_its_keys_revocation_is_refused(
    store: SqlStore, kind: str
) -> None:
    # a registration claimed its key, then the key (or its operator) was revoked by the
    # CLI or another replica before the registration wrote its ``nodes`` row. Found
    # 2026-12-03: the row was written ``online`` after the revocation took it offline, and
    # other replicas' node polls put the node back in routing until their revocation
    # watchers took it out again. Now nothing is written (and the store says so).
    s: Any = store if kind == "sql" else MemoryStore()
    for n in ("n-old", "n-new"):
        assert await s.claim_node_key(n, f"pk-{n}", "mallory", 1, T0) is SeqResult.OK
    assert await s.upsert_node(_node("n-old")) is True
    assert await s.revoke_node("n-old", T0) and await s.revoke_node("n-new", T0)
    assert await s.upsert_node(_node("n-old")) is False
    assert await s.upsert_node(_node("n-new")) is False
    old = await s.get_node("n-old")
    assert old is not None and old.state == "offline"  # before: online again
    assert await s.get_node("n-new") is None
    assert await s.claim_node_key("n-ok", "pk-ok", "alice", 1, T0) is SeqResult.OK
    assert await s.upsert_node(_node("n-ok")) is True  # an unrevoked key: as before
    assert await s.upsert_node(_node("n-keyless")) is True  # no key row: as before


@pytest.mark.postgres
async def test_a_nodes_row_write_waits_for_a_revocation_in_flight(pg_database_url: str) -> None:
    # the row's write reads the node's key under a share lock: a revocation that has
    # written the key but not committed is waited for, then seen
    replica, cli = SqlStore(pg_database_url), SqlStore(pg_database_url)
    await replica.open()
    await cli.open()
    try:
        assert await cli.claim_node_key("n1", "pk", "mallory", 1, T0) is SeqResult.OK
        k = tables.node_keys
        async with cli.engine.begin() as conn:  # revoke_node's first write, uncommitted
            await conn.execute(k.update().where(k.c.node_id == "n1").values(revoked_at=T0))
            write = asyncio.create_task(replica.upsert_node(_node("n1")))
            await asyncio.sleep(0.5)
            assert not write.done()  # before: committed the row at once
        assert await write is False
        assert await cli.get_node("n1") is None
    finally:
        await replica.close()
        await cli.close()


async def test_an_operators_nodes_are_its_own_keys_alone(store: SqlStore) -> None:
    """``operator_node_keys`` (attack44: ``GET /v1/earnings`` read every operator and key):
    the operator's node ids, revoked ones too, sorted; none of another's; none unknown; each
    with whether it is revoked (words44)."""
    now = datetime.now(timezone.utc)
    for s in (store, MemoryStore()):
        for node_id, op in (("a2", "alice"), ("a1", "alice"), ("b1", "bob"), ("a3", "alice")):
            await s.claim_node_key(node_id, f"key-{node_id}", op, 1, now)
        await s.revoke_node("a3", now)
        assert list(await s.operator_node_keys("alice")) == ["a1", "a2", "a3"]
        assert list(await s.operator_node_keys("bob")) == ["b1"]
        assert list(await s.operator_node_keys("carol")) == []
        assert await s.operator_node_keys("alice") == {"a1": False, "a2": False, "a3": True}
        assert list(await s.operator_node_keys("alice")) == ["a1", "a2", "a3"]
        assert await s.operator_node_keys("bob") == {"b1": False}
        assert await s.operator_node_keys("carol") == {}
        by_list = {o.name: o.nodes for o in await s.list_operators()}
        assert by_list.get("alice", ["a1", "a2", "a3"]) == ["a1", "a2", "a3"]
