"""A heartbeat or goodbye from a node id this replica holds no key for costs the store a
read: bounded per address (found 2026-12-06, attack35b).

``SignedNodeAuth.check_message`` looks the signer's key up in the store when it is not in
memory (a node registered at another replica), before any signature is checked: a stranger's
``POST /mesh/nodes/<id>/heartbeat`` (or ``DELETE /mesh/nodes/<id>``) with a made-up id, any
signature and no key at all cost the store one read per request, without end (on
PostgreSQL a pooled connection, the pool the heartbeats' writes share); the sender paid
nothing. Here the real registry app with its real ``SignedNodeAuth`` (the heartbeat served
by its hot path, ``registry/hot_heartbeat.py``), a client on another machine (ASGI, no
sockets), the store's key reads counted."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from LLM_Mesh.core.identity import HDR_NODE, HDR_SEQ, HDR_SIGNATURE, HDR_TIME
from LLM_Mesh.registry.admin import UNKNOWN_NODE_IDS_PER_MIN
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import NodeKeyRecord
from tests.registry.node_auth_mesh import NOW, Wall, beat, make_node, mesh, operator, register

STRANGER = ("203.0.113.5", 40000)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.key_reads = 0

    async def get_node_key(self, node_id: str) -> NodeKeyRecord | None:
        self.key_reads += 1
        return await super().get_node_key(node_id)


def _from(app: object, peer: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://mesh")


def _made_up() -> tuple[str, dict[str, str]]:
    node_id = "node-" + secrets.token_hex(13)
    headers = {HDR_NODE: node_id, HDR_SEQ: "1", HDR_TIME: str(int(NOW * 1000)),
               HDR_SIGNATURE: "AAAA", "content-type": "application/json"}  # fmt: skip
    return node_id, headers


async def test_made_up_node_ids_read_the_store_a_bounded_number_of_times(tmp_path: Path) -> None:
    store, wall = CountingStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        before = store.key_reads
        codes = []
        async with _from(h.app, STRANGER) as c:
            for i in range(200):
                node_id, headers = _made_up()
                if i % 2:
                    r = await c.post(f"/mesh/nodes/{node_id}/heartbeat", content=b"{}",
                                     headers=headers)  # fmt: skip
                else:
                    r = await c.delete(f"/mesh/nodes/{node_id}", headers=headers)
                codes.append(r.status_code)
        reads = store.key_reads - before
        # before the fix: 200 reads, 200 answers of 404 unknown_node
        assert reads == UNKNOWN_NODE_IDS_PER_MIN, reads
        assert codes[:UNKNOWN_NODE_IDS_PER_MIN] == [404] * UNKNOWN_NODE_IDS_PER_MIN
        assert set(codes[UNKNOWN_NODE_IDS_PER_MIN:]) == {429}
        # another address has its own count; loopback none
        async with _from(h.app, ("198.51.100.7", 1)) as other:
            node_id, headers = _made_up()
            r = await other.post(f"/mesh/nodes/{node_id}/heartbeat", content=b"{}", headers=headers)
        assert r.status_code == 404
        for _ in range(UNKNOWN_NODE_IDS_PER_MIN + 5):
            node_id, headers = _made_up()
            r = await h.client.post(f"/mesh/nodes/{node_id}/heartbeat", content=b"{}",
                                    headers=headers)  # fmt: skip
            assert r.status_code == 404, r.text


async def test_a_known_node_behind_a_full_address_still_beats(tmp_path: Path) -> None:
    """Its key in memory, no read and no count: strangers sharing its address (a NAT)
    spending the count do not stop its heartbeats."""
    store, wall = CountingStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        assert (await register(h, node)).status_code == 200
        async with _from(h.app, STRANGER) as c:
            for _ in range(UNKNOWN_NODE_IDS_PER_MIN + 5):
                node_id, headers = _made_up()
                await c.post(f"/mesh/nodes/{node_id}/heartbeat", content=b"{}", headers=headers)
        h.client._transport = httpx.ASGITransport(app=h.app, client=STRANGER)  # type: ignore[attr-defined]
        r = await beat(h, node)
        assert r.status_code == 200, r.text
