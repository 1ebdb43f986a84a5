"""limits44: a node's own VALID heartbeats (and goodbyes) had no bound: each an Ed25519
verify (~0.7 ms), a node flooding them spent the registry's CPU without end (attack44's
"Next"). Now at most ``valid_rates.beats_per_min(interval)`` a minute per node id, counted
as each began and given back when refused for its signature (since limits45: counted as its
signature holds, ``test_limits45_in_flight_beats.py``), then 429 with ``Retry-After``
before the verify (``registry/valid_rates.py``). The real app and ``SignedNodeAuth``, each
verify counted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.valid_rates import VALID_BEATS_PER_INTERVAL, beats_per_min
from tests.registry.helpers import Harness
from tests.registry.node_auth_mesh import Node, Wall, beat, make_node, mesh, operator, register
from tests.registry.test_registration_signature_tries import _forged, verifies

__all__ = ["verifies"]  # the fixture, imported for its name

BOUND = beats_per_min(10.0)  # the tests' registry beats every 10 s (the default)


def test_the_bound_is_a_few_beats_per_interval() -> None:
    assert BOUND == 24 == 60 * VALID_BEATS_PER_INTERVAL // 10
    assert beats_per_min(1.0) == 240 and beats_per_min(3600.0) == VALID_BEATS_PER_INTERVAL
    assert beats_per_min(float("nan")) == BOUND and beats_per_min(0.0) == BOUND


async def test_a_flood_of_one_nodes_valid_heartbeats_is_bounded_before_the_verify(
    tmp_path: Path, verifies: list[int]
) -> None:
    """200 valid heartbeats of one node, one by one and then at once: at most the bound
    verified, the rest 429 ``rate_limit_exceeded`` with ``Retry-After`` and nothing verified;
    another node's beats go through all along. Failed before: all 200 verified, 200."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        assert h.settings.heartbeat_interval_s == 10.0
        token = await operator(store)
        flooder, other = make_node(wall, token), make_node(wall, token)
        for n in (flooder, other):
            assert (await register(h, n)).status_code == 200
        before = len(verifies)
        codes = [(await beat(h, flooder)).status_code for _ in range(200)]
        assert codes == [200] * BOUND + [429] * (200 - BOUND)
        assert len(verifies) - before == BOUND
        r = await beat(h, flooder)
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert 1 <= int(r.headers["retry-after"]) <= 3  # one beat's refill: 2.5 s
        assert (await beat(h, other)).status_code == 200  # the other node unaffected
        # a minute later, at once: still the bound (tries in flight counted one by one)
        h.clock.advance(60.0)
        before = len(verifies)
        answers = await asyncio.gather(*(beat(h, flooder) for _ in range(200)), beat(h, other))
        assert answers[-1].status_code == 200
        assert len(verifies) - before <= BOUND + 1
        assert sum(a.status_code == 429 for a in answers) >= 200 - BOUND


async def test_an_honest_nodes_beats_always_go_through(tmp_path: Path) -> None:
    """Once an interval for ten minutes, with a beat at once after each of its operator's
    pauses, resumes or drains (every other interval here), and a retry after an error:
    never 429."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, await operator(store))
        assert (await register(h, node)).status_code == 200
        for i in range(60):
            h.clock.advance(10.0)
            wall.now += 10.0
            assert (await beat(h, node)).status_code == 200
            if i % 2:
                assert (await beat(h, node, {"in_flight": 0, "state": "paused"})).status_code == 200
                assert (await beat(h, node)).status_code == 200


async def test_forged_or_replayed_beats_spend_nothing_of_the_nodes_bound(
    tmp_path: Path, verifies: list[int]
) -> None:
    """A stranger's forged signatures and a replayed valid beat of the node (401: the failing
    counts', admin.py) are given back: the node's own beats still get the whole bound."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, await operator(store))
        assert (await register(h, node)).status_code == 200
        body = json.dumps({"in_flight": 1}).encode()
        path = f"/mesh/nodes/{node.node_id}/heartbeat"
        for _ in range(20):
            forged = _forged(node.headers(MessageKind.HEARTBEAT, body))
            assert (await h.client.post(path, content=body, headers=forged)).status_code == 401
        sent = node.headers(MessageKind.HEARTBEAT, body)
        assert (await h.client.post(path, content=body, headers=sent)).status_code == 200
        for _ in range(5):  # the same message again: replayed
            r = await h.client.post(path, content=body, headers=sent)
            assert r.status_code == 401 and r.json()["error"]["code"] == "replayed_message"
        codes = [(await beat(h, node)).status_code for _ in range(BOUND)]
        assert codes == [200] * (BOUND - 1) + [429]  # the first beat above was one of them


async def test_a_goodbye_counts_as_a_heartbeat(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, await operator(store))
        assert (await register(h, node)).status_code == 200
        for _ in range(BOUND):
            assert (await beat(h, node)).status_code == 200
        assert (await _goodbye(h, node)).status_code == 429
        h.clock.advance(3.0)  # one beat's refill
        assert (await _goodbye(h, node)).status_code == 204


async def _goodbye(h: Harness, node: Node) -> httpx.Response:
    return await h.client.request(
        "DELETE", f"/mesh/nodes/{node.node_id}", content=b"",
        headers=node.headers(MessageKind.DEREGISTER, b""),
    )  # fmt: skip
