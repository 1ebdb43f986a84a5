"""limits45: a node's VALID registrations had no bound (limits44 counted its heartbeats and
goodbyes; the failing counts only refused ones): a node key's holder registering in a loop
cost a verify, the operator token's read, the key's claim, the address check and the row's
write each, without end. Now at most ``valid_rates.registrations_per_min(interval)`` a
minute per node id, counted as the signature holds, then 429 with ``Retry-After`` before
the verify; the honest agent's re-registrations never reach it. The real app, the real
``SignedNodeAuth`` and ``NodeAgent``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from LLM_Mesh.core.schemas import Heartbeat, NodeRegistration, NodeState
from LLM_Mesh.node.agent import NodeAgent
from LLM_Mesh.node.agent_wire import registration_body
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.valid_rates import (
    MIN_REGISTRATIONS_PER_MIN,
    VALID_REGISTRATIONS_PER_INTERVAL,
    registrations_per_min,
)
from tests.registry.helpers import registration
from tests.registry.node_auth_mesh import Wall, beat, make_node, mesh, operator, register
from tests.registry.test_registration_signature_tries import STRANGER, _forged, _from, verifies

__all__ = ["verifies"]  # the fixture, imported for its name

BOUND = registrations_per_min(10.0)  # the tests' registry beats every 10 s (the default)


def test_the_bound_is_two_registrations_an_interval_and_six_a_minute_at_least() -> None:
    assert BOUND == 12 == 60 * VALID_REGISTRATIONS_PER_INTERVAL // 10
    assert registrations_per_min(1.0) == 120
    assert registrations_per_min(3600.0) == MIN_REGISTRATIONS_PER_MIN == 6
    assert registrations_per_min(float("nan")) == BOUND == registrations_per_min(-1.0)


async def test_attack_a_node_registering_in_a_loop_is_bounded_before_the_verify(
    tmp_path: Path, verifies: list[int]
) -> None:
    """40 valid registrations of one node one by one, then 40 at once a minute later: at
    most the bound verified and taken, the rest 429 ``rate_limit_exceeded`` with
    ``Retry-After``, nothing verified; another node registers all along. Failed before:
    40 verified, 40 x 200."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        token = await operator(store)
        looper, other = make_node(wall, token), make_node(wall, token)
        before = len(verifies)
        codes = [(await register(h, looper)).status_code for _ in range(40)]
        assert codes == [200] * BOUND + [429] * (40 - BOUND)
        assert len(verifies) - before == BOUND
        r = await register(h, looper)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(r.headers["retry-after"]) <= 5  # one registration's refill: 5 s
        assert "registrations of this node" in r.json()["error"]["message"]
        assert (await register(h, other)).status_code == 200
        h.clock.advance(5.0)
        assert (await register(h, looper)).status_code == 200  # its refill, not more
        assert (await register(h, looper)).status_code == 429
        h.clock.advance(60.0)
        before = len(verifies)
        answers = await asyncio.gather(*(register(h, looper) for _ in range(40)))
        assert len(verifies) - before <= BOUND
        assert sum(a.status_code == 429 for a in answers) >= 40 - BOUND
        assert sum(a.status_code == 200 for a in answers) >= 1


async def test_forged_or_replayed_registrations_spend_nothing_of_the_nodes_bound(
    tmp_path: Path,
) -> None:
    """A stranger's forged registrations naming the node (401) and its own registration
    sent again (401 ``replayed_message``): given back, the node still registers the whole
    bound."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, await operator(store))
        body = node.body()
        sent = node.reg_headers(body)
        assert (await h.client.post("/mesh/nodes", content=body, headers=sent)).status_code == 200
        async with _from(h.app, STRANGER) as c:
            for _ in range(20):
                forged = _forged(node.reg_headers(body))
                assert (
                    await c.post("/mesh/nodes", content=body, headers=forged)
                ).status_code == 401
            for _ in range(5):
                r = await c.post("/mesh/nodes", content=body, headers=sent)
                assert r.status_code == 401, r.text
                assert r.json()["error"]["code"] == "replayed_message"
        codes = [(await register(h, node)).status_code for _ in range(BOUND)]
        assert codes == [200] * (BOUND - 1) + [429]  # the first above was one of them


async def test_a_registration_relayed_with_another_token_spends_nothing(tmp_path: Path) -> None:
    """attack32b's relay (the node's registration with another operator's token, 401): the
    node's own copy of that very message still registers it."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        node = make_node(wall, await operator(store))
        thief = await operator(store, "mallory")
        reg = NodeRegistration.model_validate(registration(node.node_id))
        body = registration_body(reg, node.token)  # the token's SHA-256 signed in
        sent = node.reg_headers(body)
        relayed = {**sent, "X-Mesh-Operator-Token": thief}
        for _ in range(BOUND):
            r = await h.client.post("/mesh/nodes", content=body, headers=relayed)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credential"
        assert (await h.client.post("/mesh/nodes", content=body, headers=sent)).status_code == 200


async def test_the_honest_agent_never_reaches_the_bound(tmp_path: Path) -> None:
    """The real ``NodeAgent``, told it is unknown (404) at every heartbeat for ten minutes
    (a registry that forgets it each interval: what makes an honest agent register the
    most, once a step), and woken at once every other interval (its operator pausing and
    resuming it): every registration 200, never 429."""
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        agent = NodeAgent(
            client=h.client,
            registry_url="http://testserver",
            node_id=node.node_id,
            registration=lambda: NodeRegistration(**registration(node.node_id)),
            heartbeat=lambda: Heartbeat(in_flight=0),
            signer=node.signer,
            operator_token=node.token,
            sleep=_no_sleep,
            clock=h.clock,
        )
        assert await agent.step() == 10.0 and agent.registered
        for i in range(60):
            steps = 2 if i % 2 else 1
            h.clock.advance(10.0)
            wall.now += 10.0
            for _ in range(steps):
                h.runtime.table.set_state(node.node_id, NodeState.OFFLINE)  # forgotten
                assert await agent.step() == 10.0, agent.last_error
                assert agent.registered, agent.last_error
        assert agent.registrations == 1 + 90  # once a step: 9 a minute, under 12
        assert agent.heartbeats_sent == 0
        assert (await beat(h, node)).status_code == 200


async def _no_sleep(_: float) -> None:
    return None
