"""A registration's operator token costs the store a read per try: bounded per address
(found 2026-12-06, attack35b).

``SignedNodeAuth.admit_registration`` reads the token's hash from the store for every
registration whose signature verifies. The signature is no price: a node key is anyone's to
make, and nothing stops one signed registration being sent again unchanged within the
clock window (±``MAX_CLOCK_SKEW_S``; a refused one claims no sequence number), so one
signature bought a store read (on PostgreSQL a pooled connection, the pool heartbeats
share), an Ed25519 verify and a signed refusal per request, without end, while guessing
the same tokens at ``GET /v1/earnings`` was bounded (``admin.WRONG_OPERATOR_TOKENS``).
Here the real registry app with its real ``SignedNodeAuth``, a client on another machine
(ASGI, no sockets), the store's token reads counted."""

from __future__ import annotations

from pathlib import Path

import httpx

from LLM_Mesh.registry.admin import WRONG_OPERATOR_TOKENS_PER_MIN
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import OperatorRecord
from tests.registry.node_auth_mesh import Wall, make_node, mesh, operator

STRANGER = ("203.0.113.5", 40000)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.token_reads = 0

    async def operator_by_token(self, token_hash: str) -> OperatorRecord | None:
        self.token_reads += 1
        return await super().operator_by_token(token_hash)


def _from(app: object, peer: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://mesh")


async def test_one_signed_registration_replayed_reads_the_store_a_bounded_number_of_times(
    tmp_path: Path,
) -> None:
    store, wall = CountingStore(), Wall()
    await operator(store)
    node = make_node(wall, "lmo_guess")
    body = node.body()
    sent = node.reg_headers(body)  # one signature, sent 200 times unchanged
    async with await mesh(tmp_path, store, wall) as h:
        async with _from(h.app, STRANGER) as c:
            codes = [
                (await c.post("/mesh/nodes", content=body, headers=sent)).status_code
                for _ in range(200)
            ]
        # before the fix: 200 reads, 200 answers of 401 (each signed by the registry)
        assert store.token_reads == WRONG_OPERATOR_TOKENS_PER_MIN, store.token_reads
        assert codes[:WRONG_OPERATOR_TOKENS_PER_MIN] == [401] * WRONG_OPERATOR_TOKENS_PER_MIN
        assert set(codes[WRONG_OPERATOR_TOKENS_PER_MIN:]) == {429}
        async with _from(h.app, STRANGER) as c:
            r = await c.post("/mesh/nodes", content=body, headers=sent)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        # the same count as GET /v1/earnings: guessing there is refused too, no read
        async with _from(h.app, STRANGER) as c:
            r = await c.get("/v1/earnings", headers={"Authorization": "Bearer lmo_guess"})
        assert r.status_code == 429 and store.token_reads == WRONG_OPERATOR_TOKENS_PER_MIN
        # another address has its own count; loopback (a node on the registry's machine)
        # none: neither counted nor refused
        async with _from(h.app, ("198.51.100.7", 1)) as other:
            r = await other.post("/mesh/nodes", content=body, headers=sent)
        assert r.status_code == 401
        for _ in range(WRONG_OPERATOR_TOKENS_PER_MIN + 5):
            r = await h.client.post("/mesh/nodes", content=body, headers=sent)
            assert r.status_code == 401, r.text


async def test_a_nodes_own_token_is_never_counted(tmp_path: Path) -> None:
    """Registering again and again with the right token spends nothing of the count (three
    nodes of the token in turn: each node's own registrations are bounded, 12 a minute at
    the tests' interval, ``valid_rates.registrations_per_min``, limits45)."""
    store, wall = CountingStore(), Wall()
    token = await operator(store)
    nodes = [make_node(wall, token) for _ in range(3)]
    async with await mesh(tmp_path, store, wall) as h:
        async with _from(h.app, STRANGER) as c:
            for i in range(WRONG_OPERATOR_TOKENS_PER_MIN + 5):
                node = nodes[i % len(nodes)]
                body = node.body()
                r = await c.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
                assert r.status_code == 200, r.text
        assert store.token_reads == WRONG_OPERATOR_TOKENS_PER_MIN + 5
