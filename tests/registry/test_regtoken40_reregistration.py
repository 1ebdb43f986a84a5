"""A node's beat token lets its re-registration past its id's spent count (regtoken40).

Past the counts of an address, a registration carrying the key this process holds for its
id (a re-registration, regs39) is verified, at most ``WRONG_REREGISTRATIONS_PER_ID_PER_MIN``
refused a minute per id. A stranger at the node's address who has its public key (its
receipts carry it) spent those and the node's own correctly signed re-registration was 429
for the rest of the minute (regs39's "what remains"). The node now sends its beat token
(``X-Mesh-Beat-Token``) with a registration; one whose token holds for its id is verified
past the id's spent count (its own count of refusals, apart), its signature still needed.
The real registry app with its real ``SignedNodeAuth``, clients on another machine (ASGI)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.core.beat_mac import BeatMac
from LLM_Mesh.core.identity import HDR_BEAT_TOKEN
from LLM_Mesh.registry.admin import WRONG_REREGISTRATIONS_PER_ID_PER_MIN
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Node, Wall, make_node, mesh, operator
from tests.registry.test_registration_signature_tries import (
    NEIGHBOUR,
    STRANGER,
    _fill,
    _forged,
    _from,
    verifies,
)

__all__ = ["verifies"]  # the fixture, imported for its name

PER_ID = WRONG_REREGISTRATIONS_PER_ID_PER_MIN


async def _register(
    app: object, node: Node, token: str | None = None, *, forged: bool = False
) -> httpx.Response:
    body = node.body(url=f"https://{node.node_id[-8:]}.example.org:8443", beat_tokens=True)
    headers = node.reg_headers(body)
    if forged:
        headers = _forged(headers)
    if token is not None:
        headers[HDR_BEAT_TOKEN] = token
    async with _from(app, NEIGHBOUR) as c:
        return await c.post("/mesh/nodes", content=body, headers=headers)


async def _spend_the_ids_count(app: object, node: Node) -> None:
    """The stranger at the node's address, its address's count already spent, sends the
    node's key with signatures that do not hold: the id's count of refusals spent."""
    body = node.body()
    bad = _forged(node.reg_headers(body))
    async with _from(app, STRANGER) as c:
        codes = [
            (await c.post("/mesh/nodes", content=body, headers=bad)).status_code
            for _ in range(PER_ID + 3)
        ]
    assert codes == [401] * PER_ID + [429] * 3


async def _setup(h: Any, node: Node, token_of_operator: str, wall: Wall) -> str:
    """The node registered from its NAT (its beat token kept), the address's and the id's
    counts spent by the stranger there: the node's token."""
    r = await _register(h.app, node)
    assert r.status_code == 200, r.text
    beat_token = r.json()["beat_token"]
    assert isinstance(beat_token, str) and beat_token
    await _fill(h, token_of_operator, wall)
    await _spend_the_ids_count(h.app, node)
    return beat_token


async def test_a_stranger_who_spent_the_ids_count_does_not_hold_back_its_token_sender(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    op = await operator(store)
    node = make_node(wall, op)
    async with await mesh(tmp_path, store, wall) as h:
        beat_token = await _setup(h, node, op, wall)
        before = len(verifies)
        # without its token, as before: 429, nothing verified
        r = await _register(h.app, node)
        assert r.status_code == 429, r.text
        assert len(verifies) == before
        # with it: verified and accepted (before the fix: 429), again and again
        for _ in range(3):
            r = await _register(h.app, node, beat_token)
            assert r.status_code == 200, r.text
            beat_token = r.json()["beat_token"]
        assert len(verifies) == before + 3


async def test_a_forged_expired_or_other_ids_token_does_not_exempt(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    op = await operator(store)
    node, other = make_node(wall, op), make_node(wall, op)
    async with await mesh(tmp_path, store, wall) as h:
        r = await _register(h.app, other)
        assert r.status_code == 200, r.text
        others = r.json()["beat_token"]
        beat_token = await _setup(h, node, op, wall)
        flip = "A" if beat_token[10] != "A" else "B"
        forged = beat_token[:10] + flip + beat_token[11:]  # the MAC's bytes changed
        stranger_made = BeatMac.random().make(node.node_id, wall() + 60)
        before = len(verifies)
        for token in (forged, stranger_made, others, "x" * 51, ""):
            r = await _register(h.app, node, token)
            assert r.status_code == 429, (token, r.text)
        assert len(verifies) == before  # none verified
        wall.now += 121  # the token expired (two heartbeat expiries); the minute not over
        r = await _register(h.app, node, beat_token)
        assert r.status_code == 429, r.text
        assert len(verifies) == before


async def test_the_signature_is_still_required_and_its_refusals_are_bounded(
    tmp_path: Path, verifies: list[int]
) -> None:
    """A token is no credential: a registration with it whose signature does not hold is
    401, and at most ``PER_ID`` of those are verified a minute per id (then 429)."""
    store, wall = MemoryStore(), Wall()
    op = await operator(store)
    node = make_node(wall, op)
    async with await mesh(tmp_path, store, wall) as h:
        beat_token = await _setup(h, node, op, wall)
        before = len(verifies)
        codes = [
            (await _register(h.app, node, beat_token, forged=True)).status_code
            for _ in range(PER_ID + 3)
        ]
        assert codes == [401] * PER_ID + [429] * 3
        assert len(verifies) - before == PER_ID


def _slow_body(app: Any) -> Any:
    """``app`` whose request bodies arrive as over a network: each read yields first."""

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        async def later() -> Any:
            await asyncio.sleep(0)
            return await receive()

        await app(scope, later, send)

    return slow


async def test_token_bearing_registrations_sent_at_once_are_counted_one_by_one(
    tmp_path: Path, verifies: list[int]
) -> None:
    """A registration awaits its body between the look at the count and the verify: sent
    at once, each found the count free. Counted as they start (given back when verified),
    at most ``PER_ID`` of them are verified however many are in flight."""
    store, wall = MemoryStore(), Wall()
    op = await operator(store)
    node = make_node(wall, op)
    async with await mesh(tmp_path, store, wall) as h:
        beat_token = await _setup(h, node, op, wall)
        before = len(verifies)
        app = _slow_body(h.app)
        sent = [_register(app, node, beat_token, forged=True) for _ in range(4 * PER_ID)]
        codes = [r.status_code for r in await asyncio.gather(*sent)]
        assert len(verifies) - before == PER_ID, len(verifies) - before
        assert codes.count(401) == PER_ID and codes.count(429) == 3 * PER_ID
