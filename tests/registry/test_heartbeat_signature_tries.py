"""Heartbeats and goodbyes whose signature does not hold, for a known node id: bounded per
address and in all, the node's own beats still verified (found open 2026-12-06, trust36;
closed 2026-12-06, trust37).

A registered node's id is public (``GET /mesh/nodes``) and its key is in memory, so
``POST /mesh/nodes/<id>/heartbeat`` (or ``DELETE /mesh/nodes/<id>``) with that id and any
signature made the registry spend an Ed25519 verify on each, with no bound (measured by
trust36: 1,000 of 1,000 verified). Here the real registry app with its real
``SignedNodeAuth`` (heartbeats through its hot route, goodbyes through FastAPI), clients on
other machines (ASGI, no sockets), each Ed25519 verify counted (the ``verifies`` fixture of
``test_registration_signature_tries.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.registry.admin import (
    WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN,
    WRONG_BEAT_SIGNATURES_PER_MIN,
    WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN,
)
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Node, Wall, make_node, mesh, operator
from tests.registry.test_registration_signature_tries import _forged, _from, verifies

__all__ = ["verifies"]  # the fixture, imported for its name

HOME = ("192.0.2.10", 40000)  # the node's own address
STRANGER = ("203.0.113.5", 40000)


async def _register(app: object, node: Node, peer: tuple[str, int]) -> None:
    body = node.body()
    async with _from(app, peer) as c:
        r = await c.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
    assert r.status_code == 200, r.text


def _beat_body() -> bytes:
    return json.dumps({"in_flight": 0}).encode()


async def _honest_beat(c: httpx.AsyncClient, node: Node) -> int:
    body = _beat_body()
    headers = node.headers(MessageKind.HEARTBEAT, body)
    return (
        await c.post(f"/mesh/nodes/{node.node_id}/heartbeat", content=body, headers=headers)
    ).status_code


async def _forged_send(c: httpx.AsyncClient, node: Node, i: int) -> int:
    """A heartbeat (even ``i``) or a goodbye (odd) for ``node``'s id, its signature broken."""
    if i % 2:
        headers = _forged(node.headers(MessageKind.DEREGISTER, b""))
        return (await c.delete(f"/mesh/nodes/{node.node_id}", headers=headers)).status_code
    body = _beat_body()
    headers = _forged(node.headers(MessageKind.HEARTBEAT, body))
    return (
        await c.post(f"/mesh/nodes/{node.node_id}/heartbeat", content=body, headers=headers)
    ).status_code


async def test_forged_beats_from_one_address_are_bounded(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        await _register(h.app, node, HOME)
        before = len(verifies)
        async with _from(h.app, STRANGER) as c:
            codes = [await _forged_send(c, node, i) for i in range(200)]
        # before the fix: 200 verifies, 200 answers of 401
        assert len(verifies) - before == WRONG_BEAT_SIGNATURES_PER_MIN
        assert codes[:WRONG_BEAT_SIGNATURES_PER_MIN] == [401] * WRONG_BEAT_SIGNATURES_PER_MIN
        # past the count, from elsewhere than the node's home: "register again" (review38)
        assert set(codes[WRONG_BEAT_SIGNATURES_PER_MIN:]) == {404}
        async with _from(h.app, STRANGER) as c:
            r = await c.post(
                f"/mesh/nodes/{node.node_id}/heartbeat",
                content=b"{}",
                headers=_forged(node.headers(MessageKind.HEARTBEAT, b"{}")),
            )
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_node"
        # the node's own beats, from its address: verified and answered
        async with _from(h.app, HOME) as c:
            assert [await _honest_beat(c, node) for _ in range(5)] == [200] * 5
        # loopback is neither counted nor refused
        for i in range(WRONG_BEAT_SIGNATURES_PER_MIN + 5):
            assert await _forged_send(h.client, node, i) == 401


async def test_forged_beats_from_many_addresses_are_bounded_in_all_and_the_node_beats_on(
    tmp_path: Path, verifies: list[int]
) -> None:
    """Each address within its own count, together past the total: past it only the
    node's own address (where its last verified message came from) is verified."""
    store, wall = MemoryStore(), Wall()
    node, other = (
        make_node(wall, await operator(store)),
        make_node(wall, await operator(store, "bob")),
    )
    other_home = ("198.51.100.20", 1)
    async with await mesh(tmp_path, store, wall) as h:
        await _register(h.app, node, HOME)
        await _register(h.app, other, other_home)
        before = len(verifies)
        per = WRONG_BEAT_SIGNATURES_PER_MIN - 5  # each address stays within its own count
        addresses = WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN // per + 10
        codes, honest = [], []
        async with _from(h.app, HOME) as home, _from(h.app, other_home) as home2:
            for a in range(addresses):
                async with _from(h.app, (f"10.{a // 250}.{a % 250}.1", 1)) as c:
                    # 10/8 is no global address, yet a client's: counted as one
                    for i in range(per):
                        codes.append(await _forged_send(c, node if i % 3 else other, i))
                honest.append(await _honest_beat(home, node))
                honest.append(await _honest_beat(home2, other))
        forged = len(verifies) - before - len(honest)
        # before the fix: every one verified (22 addresses × 25: 550)
        assert forged == WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN, forged
        assert codes.count(401) == WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN
        assert codes.count(404) == len(codes) - WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN
        assert honest == [200] * len(honest)  # both nodes beat all through
        # a node beating from elsewhere than it last verified from registers again
        # (review38: a 429 left it waiting; test_review38_beat_homes.py)
        async with _from(h.app, ("198.51.100.99", 1)) as moved:
            assert await _honest_beat(moved, node) == 404


async def test_a_stranger_at_the_nodes_own_address_is_bounded_too(
    tmp_path: Path, verifies: list[int]
) -> None:
    """Past the address's count, beats from the node's own address are still verified, at
    most ``WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN`` failing a minute per node id: a stranger
    sharing its address (a NAT, a /64) can then make its beats 429 (the trade-off,
    docs/security.md); a node at another address is not touched."""
    store, wall = MemoryStore(), Wall()
    node, other = (
        make_node(wall, await operator(store)),
        make_node(wall, await operator(store, "bob")),
    )
    async with await mesh(tmp_path, store, wall) as h:
        await _register(h.app, node, HOME)
        await _register(h.app, other, STRANGER)
        before = len(verifies)
        neighbour = (HOME[0], HOME[1] + 1)
        async with _from(h.app, neighbour) as c:
            codes = [await _forged_send(c, node, i) for i in range(200)]
        bound = WRONG_BEAT_SIGNATURES_PER_MIN + WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN
        assert len(verifies) - before == bound
        assert codes[:bound] == [401] * bound and set(codes[bound:]) == {429}
        async with _from(h.app, HOME) as c:
            r = await c.post(
                f"/mesh/nodes/{node.node_id}/heartbeat",
                content=_beat_body(),
                headers=node.headers(MessageKind.HEARTBEAT, _beat_body()),
            )
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # the trade-off
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        async with _from(h.app, STRANGER) as c:
            assert await _honest_beat(c, other) == 200
