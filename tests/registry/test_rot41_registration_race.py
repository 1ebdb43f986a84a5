"""Registrations sent at once are counted one by one (found 2026-12-07, rot41).

A registration awaits its body between the look at its address's counts (refused
signatures, unknown operator tokens: trust36, attack35b) and the verify and the store's
read, and was counted only after them: sent at once, each found the counts free, so one
address's 120 forged registrations in flight cost 120 verifies where the bound says 30,
and again each time a token refilled (every 2 s): the per-address bound, the registry's
CPU bound against signature floods, was no bound. Each is now counted as it starts and
given back when it was not refused for that reason (regtoken40 did so for the token-bearing
ones). The real app and ``SignedNodeAuth``, a client on another machine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from LLM_Mesh.registry.admin import WRONG_NODE_SIGNATURES_PER_MIN, WRONG_OPERATOR_TOKENS_PER_MIN
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Wall, make_node, mesh, operator
from tests.registry.test_registration_signature_tries import STRANGER, _forged, _from, verifies
from tests.registry.test_regtoken40_reregistration import _slow_body

__all__ = ["verifies"]  # the fixture, imported for its name


async def _send(app: object, node: object, *, forged: bool) -> httpx.Response:
    body = node.body()  # type: ignore[attr-defined]
    headers = node.reg_headers(body)  # type: ignore[attr-defined]
    async with _from(app, STRANGER) as c:
        return await c.post(
            "/mesh/nodes", content=body, headers=_forged(headers) if forged else headers
        )


async def test_forged_registrations_sent_at_once_are_bounded(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    async with await mesh(tmp_path, store, wall) as h:
        app = _slow_body(h.app)
        nodes = [make_node(wall, token) for _ in range(4 * WRONG_NODE_SIGNATURES_PER_MIN)]
        codes = [
            r.status_code
            for r in await asyncio.gather(*(_send(app, n, forged=True) for n in nodes))
        ]
        # before: 120 verified, 120 answers of 401
        assert len(verifies) == WRONG_NODE_SIGNATURES_PER_MIN, len(verifies)
        assert codes.count(401) == WRONG_NODE_SIGNATURES_PER_MIN and codes.count(429) == 90


async def test_made_up_operator_tokens_sent_at_once_are_bounded(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    await operator(store)
    async with await mesh(tmp_path, store, wall) as h:
        app = _slow_body(h.app)
        nodes = [make_node(wall, "lmo_made_up") for _ in range(4 * WRONG_OPERATOR_TOKENS_PER_MIN)]
        codes = [
            r.status_code
            for r in await asyncio.gather(*(_send(app, n, forged=False) for n in nodes))
        ]
        # before: 120 verified (and 120 reads of the store), 120 answers of 401
        assert len(verifies) == WRONG_OPERATOR_TOKENS_PER_MIN, len(verifies)
        assert codes.count(401) == WRONG_OPERATOR_TOKENS_PER_MIN and codes.count(429) == 90


async def test_an_honest_fleet_registering_again_at_once_is_never_counted(
    tmp_path: Path, verifies: list[int]
) -> None:
    """100 nodes of one address, registered, all register again at once (a registry
    restarted, a 404 to each): taken as each begins, given back when it registered, so
    the address's count is full while they are in flight and its known keys go on
    through regs39's count (300 in flight a minute per process): all register, and the
    address's counts are whole afterwards. (100 keys new here sent at once would find the
    address's 30 taken by those in flight: 429 past them, each retried after its backoff.)"""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    async with await mesh(tmp_path, store, wall) as h:
        nodes = [make_node(wall, token) for _ in range(100)]
        first = [(await _send(h.app, n, forged=False)).status_code for n in nodes]
        assert first == [200] * 100
        app = _slow_body(h.app)
        sent = await asyncio.gather(*(_send(app, n, forged=False) for n in nodes))
        assert [r.status_code for r in sent] == [200] * 100
        again = [make_node(wall, token) for _ in range(WRONG_NODE_SIGNATURES_PER_MIN)]
        late = [(await _send(h.app, n, forged=True)).status_code for n in again]
        assert late == [401] * WRONG_NODE_SIGNATURES_PER_MIN  # the whole count left
