"""Beat tokens: a stranger at a node's own address can no longer lock it out (found open
2026-12-06, trust37's trade-off; closed 2026-12-06, beattoken38).

Past the counts of forged heartbeats and goodbyes, a message from a node's home address
was verified within the id's ``WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN``: a stranger sharing
the address (NAT, /64) spent those and the node's own beats were 429. The registry now
answers each verified registration and heartbeat with a beat token the node sends back
(``X-Mesh-Beat-Token``, ``registry/beat_tokens.py``). The real registry app and
``SignedNodeAuth`` (heartbeats through the hot route, goodbyes through FastAPI), clients on
other machines, each Ed25519 verify counted (``verifies``), as trust37's tests."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.core.beat_mac import TOKEN_CHARS
from LLM_Mesh.core.identity import HDR_BEAT_TOKEN, MessageKind
from LLM_Mesh.registry.admin import (
    WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN,
    WRONG_BEAT_SIGNATURES_PER_MIN,
    WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN,
)
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Node, Wall, make_node, mesh, operator
from tests.registry.test_heartbeat_signature_tries import HOME, _beat_body, _forged_send
from tests.registry.test_registration_signature_tries import _forged, _from, verifies

__all__ = ["verifies"]  # the fixture, imported for its name

NEIGHBOUR = (HOME[0], HOME[1] + 1)  # a stranger behind the node's NAT


class TokenNode:
    """A node as its agent acts: keeps the last ``beat_token`` answered and sends it back
    (an older registry answers none: nothing sent)."""

    def __init__(self, node: Node) -> None:
        self.node, self.token = node, ""

    def _heard(self, r: httpx.Response) -> None:
        if r.status_code == 200:
            self.token = r.json().get("beat_token") or self.token

    def headers(self, kind: MessageKind, body: bytes, token: str | None = None) -> dict[str, Any]:
        headers = self.node.headers(kind, body)
        token = self.token if token is None else token
        return {**headers, HDR_BEAT_TOKEN: token} if token else headers

    async def register(self, app: object, declare: bool = True) -> None:
        """Registers from its home; ``declare``: says it sends tokens back (its agent's
        ``beat_tokens``, signed), else it starts to once it has one (an older agent)."""
        body = self.node.body(beat_tokens=True) if declare else self.node.body()
        async with _from(app, HOME) as c:
            r = await c.post("/mesh/nodes", content=body, headers=self.node.reg_headers(body))
        assert r.status_code == 200, r.text
        self._heard(r)

    async def beat(
        self, c: httpx.AsyncClient, token: str | None = None, forged: bool = False
    ) -> int:
        body = _beat_body()
        headers = self.headers(MessageKind.HEARTBEAT, body, token)
        if forged:
            headers = _forged(headers)
        r = await c.post(
            f"/mesh/nodes/{self.node.node_id}/heartbeat", content=body, headers=headers
        )
        self._heard(r)
        return r.status_code


async def _fill_the_total(app: object, node: Node) -> list[int]:
    """Forged beats and goodbyes from many addresses, each within its own count, past the
    total of every address: from now on only a message the node's id still allows is
    verified."""
    per = WRONG_BEAT_SIGNATURES_PER_MIN - 1
    codes: list[int] = []
    for a in range(WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN // per + 1):
        async with _from(app, (f"10.9.{a}.1", 1)) as c:
            codes += [await _forged_send(c, node, i) for i in range(per)]
    assert codes.count(401) == WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN
    return codes


async def test_a_stranger_at_the_nodes_address_no_longer_locks_out_a_token_sending_node(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    node = TokenNode(make_node(wall, await operator(store)))
    async with await mesh(tmp_path, store, wall) as h:
        await node.register(h.app)  # says it sends tokens back: no beat needed before
        before = len(verifies)
        async with _from(h.app, NEIGHBOUR) as c:
            codes = [await _forged_send(c, node.node, i) for i in range(200)]
        # the address's own count, then nothing verified: the node's allowance untouched
        # (before: 60 verified, then 429)
        assert len(verifies) - before == WRONG_BEAT_SIGNATURES_PER_MIN
        assert codes[:WRONG_BEAT_SIGNATURES_PER_MIN] == [401] * WRONG_BEAT_SIGNATURES_PER_MIN
        assert set(codes[WRONG_BEAT_SIGNATURES_PER_MIN:]) == {404}
        # the node's own beats, with its token, among the stranger's (before: 429 each)
        honest = []
        async with _from(h.app, HOME) as home, _from(h.app, NEIGHBOUR) as c:
            for i in range(5):
                assert await _forged_send(c, node.node, i) == 404
                honest.append(await node.beat(home))
        assert honest == [200] * 5
        # its goodbye too carries it
        async with _from(h.app, HOME) as home:
            headers = node.headers(MessageKind.DEREGISTER, b"")
            r = await home.delete(f"/mesh/nodes/{node.node.node_id}", headers=headers)
        assert r.status_code == 204, r.text


async def test_the_verify_bound_holds_with_tokens(tmp_path: Path, verifies: list[int]) -> None:
    """Past the counts a message with the node's token is verified, at most
    ``WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN`` failing a minute per id, as from its home
    before: the token chooses which messages use them, never more. Even a holder of the
    token (stolen, say) sending forged beats from anywhere gets exactly that many."""
    store, wall = MemoryStore(), Wall()
    node = TokenNode(make_node(wall, await operator(store)))
    async with await mesh(tmp_path, store, wall) as h:
        await node.register(h.app)
        async with _from(h.app, HOME) as home:
            assert await node.beat(home) == 200
        before = len(verifies)
        await _fill_the_total(h.app, node.node)
        async with _from(h.app, ("198.51.100.7", 1)) as thief:
            codes = [await node.beat(thief, forged=True) for _ in range(100)]
        forged = len(verifies) - before
        bound = WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN + WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN
        assert forged == bound, forged
        at_home = WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN
        assert codes[:at_home] == [401] * at_home and set(codes[at_home:]) == {429}
        # those were the id's minute: its own beat waits too (only a token holder spends it)
        async with _from(h.app, HOME) as home:
            assert await node.beat(home) == 429
        assert len(verifies) - before == bound


async def test_a_wrong_or_old_token_gives_no_verify(tmp_path: Path, verifies: list[int]) -> None:
    store, wall = MemoryStore(), Wall()
    node = TokenNode(make_node(wall, await operator(store)))
    async with await mesh(tmp_path, store, wall) as h:
        await node.register(h.app, declare=False)  # known by the token it sends back
        old = node.token
        wall.now += h.app.state.runtime.beat_tokens.lifetime_s  # ``old`` expired (beatkey39)
        async with _from(h.app, HOME) as home:
            assert await node.beat(home) == 200  # no flood yet: no token needed
            assert await node.beat(home) == 200
        assert node.token != old
        await _fill_the_total(h.app, node.node)
        before = len(verifies)
        wrong = ["", "x" * 22, "x" * TOKEN_CHARS, secrets.token_urlsafe(16), old, "y" * 5000]
        async with _from(h.app, HOME) as home, _from(h.app, NEIGHBOUR) as c:
            for token in wrong:  # "": none
                assert await node.beat(c, token=token, forged=True) == 404
                # its own signature without its token: register again, nothing verified
                assert await node.beat(home, token=token) == 404
        assert len(verifies) == before
        # the token before the current one is still taken (its answer may have been lost;
        # since beatkey39 any of its tokens until it expires)
        async with _from(h.app, HOME) as home:
            previous = node.token
            assert await node.beat(home) == 200
            assert await node.beat(home, token=previous) == 200
            assert await node.beat(home) == 200


async def test_a_node_that_sends_no_token_keeps_the_address_rule(
    tmp_path: Path, verifies: list[int]
) -> None:
    """An older node (it ignores ``beat_token``): past the counts, its home still verified
    within the id's allowance, a stranger there can spend it (trust37's trade-off)."""
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        await TokenNode(node).register(h.app, declare=False)
        async with _from(h.app, HOME) as home:
            body = _beat_body()
            r = await home.post(
                f"/mesh/nodes/{node.node_id}/heartbeat",
                content=body,
                headers=node.headers(MessageKind.HEARTBEAT, body),
            )
        assert r.status_code == 200 and r.json()["beat_token"]
        before = len(verifies)
        async with _from(h.app, NEIGHBOUR) as c:
            codes = [await _forged_send(c, node, i) for i in range(200)]
        bound = WRONG_BEAT_SIGNATURES_PER_MIN + WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN
        assert len(verifies) - before == bound
        assert codes[:bound] == [401] * bound and set(codes[bound:]) == {429}
        async with _from(h.app, HOME) as home:
            body = _beat_body()
            r = await home.post(
                f"/mesh/nodes/{node.node_id}/heartbeat",
                content=body,
                headers=node.headers(MessageKind.HEARTBEAT, body),
            )
        assert r.status_code == 429


async def test_the_node_agent_beats_on_through_a_stranger_at_its_address(
    tmp_path: Path, verifies: list[int]
) -> None:
    """The real ``NodeAgent`` (its signer, its token kept and sent) against the real app:
    a stranger behind its NAT floods forged beats between its steps; each step beats."""
    from LLM_Mesh.core.schemas import Heartbeat, NodeRegistration
    from LLM_Mesh.node.agent import NodeAgent
    from tests.registry.helpers import registration

    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h, _from(h.app, HOME) as client:
        agent = NodeAgent(
            client=client,
            registry_url="http://mesh",
            node_id=node.node_id,
            registration=lambda: NodeRegistration(**registration(node.node_id)),
            heartbeat=lambda: Heartbeat(in_flight=0),
            signer=node.signer,
            operator_token=node.token,
        )
        await agent.step()  # registers
        assert agent.registered and agent.beat_token.get("http://mesh")
        before = len(verifies)
        async with _from(h.app, NEIGHBOUR) as c:
            for step in range(6):
                for i in range(40):
                    await _forged_send(c, node, i)
                await agent.step()
                assert agent.registered and agent.heartbeats_sent == step + 1, agent.last_error
        assert agent.registrations == 1
        # the neighbour's address's own count, and the agent's 6 beats: nothing more
        assert len(verifies) - before == WRONG_BEAT_SIGNATURES_PER_MIN + 6
