"""Loading stored nodes at start (``snapshot.load_nodes``): the counters come from the
``nodes`` rows only, equal before and after a restart, and survive the log's pruning."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.snapshot import load_nodes
from LLM_Mesh.registry.store import SqlStore
from tests.registry.test_store import T0, node, request

# the rows are plain-http nodes at http://NODE.example: a registry that allows them
LAB = NodeTransport(allow_plain_http=True)


class _Spy:
    """A store that notes which of its methods are looked up."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)
        return getattr(self._store, name)


def _counters(table: NodeTable) -> dict[str, tuple[int, int, int]]:
    return {e.node_id: (e.requests, e.failures, e.tokens_generated) for e in table.entries()}


async def test_load_nodes_reads_the_nodes_rows_and_never_the_request_log() -> None:
    """A start costs one read of the nodes, whatever the log's size: the counters are the
    rows' (the memory store keeps them as it records, as the SQL store does)."""
    store = MemoryStore()
    await store.upsert_node(node("n1", requests=40, failures=3, tokens_generated=900))
    await store.upsert_node(node("n2"))
    await store.record_requests([request(1, "n1"), request(2, "n2", outcome="error")])
    spy = _Spy(store)
    table = NodeTable(expiry_s=30.0)
    assert await load_nodes(table, spy, transport=LAB) == 2  # type: ignore[arg-type]
    assert spy.used == ["list_nodes"]
    assert _counters(table) == {"n1": (41, 3, 905), "n2": (1, 1, 0)}


async def test_counters_after_a_restart_equal_those_before_and_survive_pruning(
    database_url: str,
) -> None:
    first = SqlStore(database_url)
    await first.open()
    await first.upsert_node(node("n1"))
    await first.upsert_node(node("n2", state="paused"))
    await first.record_requests(
        [request(i, "n1") for i in range(4)]
        + [request(10, "n1", outcome="error"), request(11, "n2", completion_tokens=70)]
    )
    before = NodeTable(expiry_s=30.0)
    await load_nodes(before, first, transport=LAB)
    await first.close()
    assert _counters(before) == {"n1": (5, 1, 20), "n2": (1, 0, 70)}

    second = SqlStore(database_url)
    await second.open()
    try:
        after = NodeTable(expiry_s=30.0)
        await load_nodes(after, second, transport=LAB)
        assert _counters(after) == _counters(before)
        assert await second.prune_requests(T0 + timedelta(days=1), 1000) == 6  # all of it
    finally:
        await second.close()

    third = SqlStore(database_url)
    await third.open()
    try:
        pruned = NodeTable(expiry_s=30.0)
        await load_nodes(pruned, third, transport=LAB)
        assert _counters(pruned) == _counters(before)
    finally:
        await third.close()


async def test_a_stale_row_at_the_same_url_does_not_pin_its_old_certificate() -> None:
    """Review 14: a node reinstalled at the same https URL (a new key, so a new node id,
    and a new self-signed certificate) leaves its old row (offline, or expired) with the
    old pin. ``load_nodes`` pinned every row in node-id order, so a restarted replica
    pinned whichever came last: the old certificate, and every request it sent the live
    node failed its TLS check (its heartbeats were taken: never asked to re-register)."""
    from LLM_Mesh.registry.address_pins import AddressPins

    url, old, new = "https://gpu.example:8801", "ab" * 32, "cd" * 32
    store = MemoryStore()
    later = T0 + timedelta(days=3)
    await store.upsert_node(node("a-new", url=url, tls_fingerprint=new, last_heartbeat_at=later))
    await store.upsert_node(node("z-old", url=url, tls_fingerprint=old, state="offline"))
    # died without a goodbye: still "online" in its row, last heard days before
    await store.upsert_node(node("y-old", url=url, tls_fingerprint=old, last_heartbeat_at=T0))
    pins = AddressPins()
    await load_nodes(NodeTable(expiry_s=30.0), store, pins, transport=LAB)
    assert pins.fingerprint(url) == new
