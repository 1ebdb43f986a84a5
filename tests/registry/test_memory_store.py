"""MemoryStore behaves like the Store protocol says."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from LLM_Mesh.core.store_heard import HeardRows
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import NodeRecord, RequestRecord, Store


def node(node_id: str = "a") -> NodeRecord:
    now = datetime.now(timezone.utc)
    return NodeRecord(
        node_id=node_id,
        url="http://a",
        region=None,
        models=[{"id": "m"}],
        hardware={},
        max_concurrency=1,
        max_queue=8,
        version="0",
        state="online",
        registered_at=now,
        last_heartbeat_at=now,
    )


async def test_roundtrip() -> None:
    store: Store = MemoryStore()
    await store.open()
    await store.upsert_node(node())
    got = await store.get_node("a")
    assert got is not None and got.url == "http://a"
    assert await store.touch_heartbeat("a", datetime.now(timezone.utc), "draining")
    assert not await store.touch_heartbeat("b", datetime.now(timezone.utc), "online")
    assert await store.set_node_state("a", "offline")
    assert not await store.set_node_state("b", "offline")
    assert [n.state for n in await store.list_nodes()] == ["offline"]
    assert await store.get_node("b") is None
    now = datetime.now(timezone.utc)
    await store.record_requests(
        [
            RequestRecord("r1", "a", "m", False, "ok", None, 3, 4, 1.0, 0.5, 0.1, now),
            RequestRecord(
                "r2", "a", "m", True, "error", "upstream_error", 0, 0, 1.0, None, 0.0, now
            ),
            RequestRecord(
                "r3", None, "m", False, "error", "model_unavailable", 0, 0, None, None, 0.0, now
            ),
        ]
    )
    assert len(store.requests) == 3
    await store.close()


async def test_a_heartbeat_does_not_bring_back_a_node_that_said_goodbye() -> None:
    """A heartbeat written after the goodbye (batched behind its answer) leaves the node
    OFFLINE, as the SQL store does; registering again brings it back."""
    store = MemoryStore()
    await store.upsert_node(node())
    assert await store.set_node_state("a", "offline")
    later = datetime.now(timezone.utc)
    assert not await store.touch_heartbeat("a", later, "online")
    await store.touch_heartbeats([("a", later, "online", 0)])
    got = await store.get_node("a")
    assert got is not None and got.state == "offline" and got.last_heartbeat_at != later
    await store.upsert_node(node())
    assert await store.touch_heartbeat("a", later, "online")


async def test_record_requests_bumps_the_node_counters_as_the_sql_store_does() -> None:
    """The counters a restart reads (``snapshot.load_nodes``) grow as requests are
    recorded, and pruning the log leaves them alone (no scan of the log anywhere)."""
    store = MemoryStore()
    await store.upsert_node(node("a"))
    await store.upsert_node(node("b"))
    at = datetime(2025, 3, 1, tzinfo=timezone.utc)

    def rec(i: int, node_id: str | None, outcome: str = "ok", tokens: int = 5) -> RequestRecord:
        return RequestRecord(
            f"r{i}", node_id, "m", False, outcome, None, 1, tokens, 1.0, 0.5, 1, at
        )

    await store.record_requests(
        [
            rec(1, "a"),
            rec(2, "a", "error", 0),
            rec(3, "a", "cancelled", 2),  # the client went away: not the node's failure
            rec(4, "b", tokens=100),
            rec(5, None, "error", 0),  # no node could take it
            rec(6, "gone"),  # a node with no record: the log only
        ]
    )
    counters = {
        n.node_id: (n.requests, n.failures, n.tokens_generated) for n in await store.list_nodes()
    }
    assert counters == {"a": (3, 1, 7), "b": (1, 0, 100)}
    assert await store.prune_requests(datetime(2026, 1, 1, tzinfo=timezone.utc), 100) == 6
    again = {
        n.node_id: (n.requests, n.failures, n.tokens_generated) for n in await store.list_nodes()
    }
    assert again == counters


async def test_the_address_check_reads_only_the_nodes_at_that_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found open 2026-12-05: each registration with ``address_live_since`` parsed every
    stored node's URL (O(fleet), as the SQL store before migration 0023's index). Now an
    index by address: a registration among 2,000 nodes parses a few URLs, and the check
    still holds: a live node's address is taken, a moved node's old one is free."""
    from LLM_Mesh.registry import memory_store
    from LLM_Mesh.registry.ports import AddressTaken

    store = MemoryStore()
    now = datetime.now(timezone.utc)
    since = now - timedelta(seconds=30)
    for i in range(2000):
        rec = node(f"n{i}")
        rec.url = f"http://host{i}.example:8801"
        await store.upsert_node(rec, address_live_since=since)
    parsed = 0
    real = memory_store.node_address

    def counting(url: str) -> tuple[str, int] | None:
        nonlocal parsed
        parsed += 1
        return real(url)

    monkeypatch.setattr(memory_store, "node_address", counting)
    new = node("new")
    new.url = "http://fresh.example:8801"
    assert await store.upsert_node(new, address_live_since=since)
    assert parsed <= 4, parsed  # before: 2,001
    evil = node("evil")
    evil.url = "http://HOST7.example:8801/v1"
    with pytest.raises(AddressTaken) as err:
        await store.upsert_node(evil, address_live_since=since)
    assert err.value.holder == "n7"
    moved = node("n7")
    moved.url = "http://elsewhere.example:8801"
    assert await store.upsert_node(moved, address_live_since=since)
    assert await store.upsert_node(evil, address_live_since=since)  # its old address: free
    again = node("n8")
    again.url = "http://host8.example:8801"  # the same node at its own address
    assert await store.upsert_node(again, address_live_since=since)


async def test_a_heartbeats_keyed_time_is_read_back_as_the_sql_store_does() -> None:
    """``keyed_at`` (the node's last keyed request as its heartbeat said) comes back with
    ``heartbeats_since``, one at a time or in batches; a heartbeat without it clears it."""
    store = MemoryStore()
    await store.upsert_node(node())
    beat = datetime.now(timezone.utc)
    keyed = beat - timedelta(seconds=4)
    assert await store.touch_heartbeat("a", beat, "online", keyed_at=keyed)
    assert _plain(await store.heartbeats_since(beat)) == [("a", "online", beat, keyed)]
    later = beat + timedelta(seconds=1)
    await store.touch_heartbeats([("a", later, "online", 0)], "r1", keyed={"a": beat})
    assert _plain(await store.heartbeats_since(later)) == [("a", "online", later, beat)]
    latest = later + timedelta(seconds=1)
    await store.touch_heartbeats([("a", latest, "online", 0)], "r1")
    assert _plain(await store.heartbeats_since(latest)) == [("a", "online", latest, None)]


def _plain(heard: HeardRows) -> list[tuple[str, str, datetime, datetime | None]]:
    """``heartbeats_since``'s rows as ``(node_id, state, at, keyed_at)``."""
    return [(r.node_id, r.state, r.at, r.keyed_at) for r in heard.rows]
