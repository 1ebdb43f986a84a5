"""Forged heartbeats past their counts must not strand an honest node the replica has no
home for (found 2026-12-06, review38; the counts: trust37).

Past ``WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN`` forged heartbeats a minute in all (ten IPv4
addresses, or ten /64s of one IPv6 /48, suffice), a registry verifies only messages from
the address its node's last verified message came from *in this process*
(``admin.NodeHomes``). A restarted replica, a new ``--workers`` worker or another replica
behind the load balancer knows no such address; nor does one after the node's address
changed. Its heartbeats were then 429, and a node answers 429 by waiting (only a 404
``unknown_node`` makes it register again, ``node/agent.py``): with the attack kept up,
every node stayed out of routing. Past the counts such a beat is now answered 404
``unknown_node`` (still with nothing verified), so the node registers again, which is
verified per address only and makes its address its home. The real registry app, clients
on other machines (ASGI), the node's side as ``NodeAgent`` acts on each status."""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.registry.admin import (
    WRONG_BEAT_SIGNATURES_PER_MIN,
    WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN,
)
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Node, Wall, make_node, mesh, operator
from tests.registry.test_heartbeat_signature_tries import (
    HOME,
    _forged_send,
    _honest_beat,
    _register,
)
from tests.registry.test_registration_signature_tries import _forged, _from, verifies

__all__ = ["verifies"]  # the fixture, imported for its name


async def _flood(app: object, node: Node) -> list[int]:
    """Forged beats and goodbyes for ``node``'s id, each address within its own count,
    together past the total."""
    per = WRONG_BEAT_SIGNATURES_PER_MIN - 1
    codes = []
    for a in range(WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN // per + 2):
        async with _from(app, (f"2001:db8:0:{a:x}::7", 1)) as c:  # a /64 each, one /48
            codes += [await _forged_send(c, node, i) for i in range(per)]
    return codes


async def _beat_as_agent(app: object, node: Node, peer: tuple[str, int]) -> list[int]:
    """What the node's agent sees over a few heartbeat intervals: a heartbeat; on 404 it
    registers again and beats on; on anything else it waits for its next beat."""
    seen = []
    async with _from(app, peer) as c:
        for _ in range(3):
            code = await _honest_beat(c, node)
            seen.append(code)
            if code == 404:
                await _register(app, node, peer)
    return seen


async def test_a_restarted_replica_under_forged_beats_lets_its_nodes_back(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as first:
        await _register(first.app, node, HOME)
        async with _from(first.app, HOME) as c:
            assert await _honest_beat(c, node) == 200
    # the replica restarts (a new process on the same store): the node's key is read from
    # the store, its address here is not known
    async with await mesh(tmp_path / "again", store, wall) as h:
        before = len(verifies)
        codes = await _flood(h.app, node)
        forged = len(verifies) - before
        assert forged == WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN  # the bound holds still
        assert codes.count(401) == forged and set(codes[forged:]) == {404}, codes
        seen = await _beat_as_agent(h.app, node, HOME)
        # before the fix: [429, 429, 429], for as long as the attack lasted
        assert seen[0] == 404 and seen[1:] == [200, 200], seen
        assert len(verifies) - before == forged + 3  # its registration and two beats


async def test_a_node_whose_address_changed_under_forged_beats_gets_back(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        await _register(h.app, node, HOME)
        await _flood(h.app, node)
        moved = ("198.51.100.99", 1)  # its ISP gave it another address
        seen = await _beat_as_agent(h.app, node, moved)
        assert seen[0] == 404 and seen[1:] == [200, 200], seen  # before the fix: all 429
        async with _from(h.app, HOME) as c:  # its old address is no more its home
            assert await _honest_beat(c, node) == 404


async def test_a_forwarded_for_header_does_not_borrow_the_nodes_home(
    tmp_path: Path, verifies: list[int]
) -> None:
    """The address counted is the connection's (uvicorn rewrites it from
    ``X-Forwarded-For`` for ``--trusted-proxies`` only, ``core/trusted_proxies.py``); the
    app reads no such header itself, so a stranger naming the node's address in one is
    not verified past the counts."""
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        await _register(h.app, node, HOME)
        await _flood(h.app, node)
        before = len(verifies)
        body = b'{"in_flight": 0}'
        spoofed = {
            **_forged(node.headers(MessageKind.HEARTBEAT, body)),
            "X-Forwarded-For": HOME[0],
            "X-Real-IP": HOME[0],
            "Forwarded": f"for={HOME[0]}",
        }
        async with _from(h.app, ("203.0.113.77", 1)) as c:
            r = await c.post(f"/mesh/nodes/{node.node_id}/heartbeat", content=body, headers=spoofed)
        assert r.status_code == 404 and len(verifies) == before  # nothing verified
        async with _from(h.app, HOME) as c:
            assert await _honest_beat(c, node) == 200
