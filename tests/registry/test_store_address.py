"""``nodes.address`` (migration 0023): registration reads only the rows at its address,
and those with none (NULL: written before 0023, or a URL an older replica changed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ports import AddressTaken
from LLM_Mesh.registry.store import SqlStore
from tests.registry.test_store import T0, node

SINCE = T0 - timedelta(seconds=30)
SHARED = "https://shared.example:8801"


async def _address(store: SqlStore, node_id: str) -> str | None:
    async with store.engine.connect() as conn:
        stmt = select(tables.nodes.c.address).where(tables.nodes.c.node_id == node_id)
        value = (await conn.execute(stmt)).scalar_one()
    assert value is None or isinstance(value, str)
    return value


async def test_each_registration_writes_its_address(store: SqlStore) -> None:
    await store.upsert_node(node("n1", url="https://Shared.Example:8801/v1", last_heartbeat_at=T0))
    assert await _address(store, "n1") == "shared.example:8801"
    await store.upsert_node(node("n1", url="http://other.example:9000", last_heartbeat_at=T0))
    assert await _address(store, "n1") == "other.example:9000"


async def test_a_row_with_no_address_at_the_same_address_still_blocks(store: SqlStore) -> None:
    """A row of an older replica (no address written) is compared by its URL."""
    await store.upsert_node(node("old", url=SHARED, last_heartbeat_at=T0))
    async with store.engine.begin() as conn:
        n = tables.nodes
        await conn.execute(update(n).where(n.c.node_id == "old").values(address=None))
    with pytest.raises(AddressTaken) as err:
        await store.upsert_node(
            node("evil", url=SHARED, last_heartbeat_at=T0), address_live_since=SINCE
        )
    assert err.value.holder == "old"
    assert await store.get_node("evil") is None


async def test_a_url_an_older_replica_moved_does_not_keep_its_old_address(store: SqlStore) -> None:
    """A 0022 replica re-registering a node at a new URL writes no address: the old one
    would hide the node from a check at the new address (the trigger clears it)."""
    await store.upsert_node(node("n1", url="https://before.example:8801", last_heartbeat_at=T0))
    async with store.engine.begin() as conn:  # the older replica's write: url, no address
        n = tables.nodes
        await conn.execute(update(n).where(n.c.node_id == "n1").values(url=SHARED))
    assert await _address(store, "n1") is None
    with pytest.raises(AddressTaken):
        await store.upsert_node(
            node("evil", url=SHARED, last_heartbeat_at=T0), address_live_since=SINCE
        )
    await store.upsert_node(node("n1", url=SHARED, last_heartbeat_at=T0))  # its next one
    assert await _address(store, "n1") == "shared.example:8801"


async def test_nodes_elsewhere_do_not_block(store: SqlStore) -> None:
    for i in range(3):
        await store.upsert_node(node(f"n{i}", last_heartbeat_at=T0))
    assert await store.upsert_node(
        node("new", url=SHARED, last_heartbeat_at=T0), address_live_since=SINCE
    )
