"""Beat tokens hold at every replica of one registry (found open 2026-12-06, beattoken38's
"what remains"; closed 2026-12-06, beatkey39).

A beat token was a random secret of the process that answered it. Replicas of one
registry sit behind one load balancer (issue 11), so a node's next beat may reach another
replica than the one whose token it holds: past the counts of forged beats there it was
404 ``unknown_node`` ("register again"), and a balancer that alternates replicas made an
honest node register again on every beat for as long as the flood lasted. A token is now
an HMAC under a key derived from ``registry.key``, which every replica holds
(``core/beat_mac.py``). Two (three) real registry apps on one store, with the real
``SignedNodeAuth``, clients on other machines, each Ed25519 verify counted (``verifies``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import Harness, running
from tests.registry.node_auth_mesh import Wall, make_node, operator
from tests.registry.test_beattoken38_tokens import TokenNode, _fill_the_total
from tests.registry.test_heartbeat_signature_tries import HOME
from tests.registry.test_registration_signature_tries import _from, verifies

__all__ = ["verifies"]  # the fixture, imported for its name


@contextlib.asynccontextmanager
async def replicas(
    tmp_path: Path, store: MemoryStore, wall: Wall, *keys: Ed25519PrivateKey
) -> AsyncIterator[list[Harness]]:
    """A registry app per key, all on ``store``: replicas of one registry where the keys
    are one."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                running(
                    tmp_path / f"r{i}", store=store, signed=True, wall_clock=wall, gateway_key=key
                )
            )
            for i, key in enumerate(keys)
        ]


class CountingNode(TokenNode):
    """A node as its agent acts on a heartbeat's status: on 404 it registers again (at
    the replica that answered) and beats on; counts its registrations."""

    registrations = 0

    async def register(self, app: object, declare: bool = True) -> None:
        await super().register(app, declare)
        self.registrations += 1

    async def beat_as_agent(self, app: object) -> int:
        async with _from(app, HOME) as c:
            code = await self.beat(c)
        if code == 404:
            await self.register(app)
            async with _from(app, HOME) as c:
                code = await self.beat(c)
        return code


async def test_a_token_from_one_replica_is_taken_at_another(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall, key = MemoryStore(), Wall(), Ed25519PrivateKey.generate()
    node = CountingNode(make_node(wall, await operator(store)))
    async with replicas(tmp_path, store, wall, key, key) as (a, b):
        await node.register(a.app)
        await _fill_the_total(b.app, node.node)  # strangers' forged beats at B
        before = len(verifies)
        async with _from(b.app, HOME) as c:
            # A's token, at B: verified (before: 404, "register again")
            assert await node.beat(c) == 200
        assert node.registrations == 1 and len(verifies) - before == 1
        # a balancer alternating replicas, both flooded: every beat taken, none registers
        # again (before: a registration on every beat)
        await _fill_the_total(a.app, node.node)
        before = len(verifies)
        seen = [await node.beat_as_agent(app) for app in [a.app, b.app] * 3]
        assert seen == [200] * 6 and node.registrations == 1, (seen, node.registrations)
        assert len(verifies) - before == 6


async def test_a_token_is_for_its_own_node_only(tmp_path: Path, verifies: list[int]) -> None:
    store, wall, key = MemoryStore(), Wall(), Ed25519PrivateKey.generate()
    token = await operator(store)
    x, y = TokenNode(make_node(wall, token)), TokenNode(make_node(wall, token))
    async with replicas(tmp_path, store, wall, key, key) as (a, b):
        await x.register(a.app)
        await y.register(a.app)
        await _fill_the_total(b.app, y.node)
        before = len(verifies)
        async with _from(b.app, HOME) as c:
            # Y's own signature, X's token: nothing verified
            assert await y.beat(c, token=x.token) == 404
            assert len(verifies) == before
            assert await y.beat(c) == 200  # its own


async def test_an_expired_token_is_refused(tmp_path: Path, verifies: list[int]) -> None:
    store, wall, key = MemoryStore(), Wall(), Ed25519PrivateKey.generate()
    node = TokenNode(make_node(wall, await operator(store)))
    async with replicas(tmp_path, store, wall, key, key) as (a, b):
        lifetime = b.app.state.runtime.beat_tokens.lifetime_s
        assert lifetime > 0
        await node.register(a.app)
        first = node.token
        await _fill_the_total(b.app, node.node)
        async with _from(b.app, HOME) as c:
            wall.now += lifetime - 1
            assert await node.beat(c, token=first) == 200  # still good
            wall.now += 2
            before = len(verifies)
            assert await node.beat(c, token=first) == 404  # expired: nothing verified
            assert len(verifies) == before
            assert await node.beat(c) == 200  # the one B answered


async def test_a_token_from_a_registry_with_another_key_is_refused(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    node = TokenNode(make_node(wall, await operator(store)))
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    async with replicas(tmp_path, store, wall, key, other) as (a, c_):
        await node.register(a.app)
        await _fill_the_total(c_.app, node.node)
        before = len(verifies)
        async with _from(c_.app, HOME) as c:
            assert await node.beat(c) == 404  # not its key's: register again
        assert len(verifies) == before


async def test_a_revoked_nodes_token_ends_at_the_store(tmp_path: Path, verifies: list[int]) -> None:
    """Revocation is as before: a token only lets the message reach the verify and the
    store's sequence step, which refuses a revoked key (403 ``revoked``, signed)."""
    store, wall, key = MemoryStore(), Wall(), Ed25519PrivateKey.generate()
    node = TokenNode(make_node(wall, await operator(store)))
    async with replicas(tmp_path, store, wall, key, key) as (a, b):
        await node.register(a.app)
        await _fill_the_total(b.app, node.node)
        await store.revoke_node(node.node.node_id, datetime.now(timezone.utc))
        async with _from(b.app, HOME) as c:
            r = await _beat(c, node)
        assert r.status_code == 403 and r.json()["error"]["code"] == "revoked", r.text


async def _beat(c: httpx.AsyncClient, node: TokenNode) -> httpx.Response:
    from LLM_Mesh.core.identity import MessageKind
    from tests.registry.test_heartbeat_signature_tries import _beat_body

    body = _beat_body()
    headers = node.headers(MessageKind.HEARTBEAT, body)
    return await c.post(f"/mesh/nodes/{node.node.node_id}/heartbeat", content=body, headers=headers)
