"""A registration's Ed25519 verify: bounded per address (found 2026-12-06, trust36).

``POST /mesh/nodes`` verifies the signature of whatever key the request carries (a key is
anyone's to make) before anything is read: a stranger sending registrations whose signature
does not verify (or is stale, replayed, or for another id) made the registry verify one each,
at line rate, with no bound per address (unknown operator tokens were bounded since
attack35b; a bad signature never reached that count). Here the real registry app with its
real ``SignedNodeAuth``, a client on another machine (ASGI, no sockets), each Ed25519 verify
counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.identity import HDR_SIGNATURE
from LLM_Mesh.registry import node_auth
from LLM_Mesh.registry.admin import WRONG_NODE_SIGNATURES_PER_MIN
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.test_node_auth import Wall, make_node, mesh, operator

STRANGER = ("203.0.113.5", 40000)
NEIGHBOUR = ("203.0.113.5", 40001)  # the stranger's NAT: the same address
ELSEWHERE = ("198.51.100.7", 1)


def _from(app: object, peer: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://mesh")


@pytest.fixture
def verifies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every Ed25519 verify of a registration, counted."""
    count: list[int] = []
    real = node_auth.verify_signed

    def counting(*args: Any, **kwargs: Any) -> None:
        count.append(1)
        real(*args, **kwargs)

    monkeypatch.setattr(node_auth, "verify_signed", counting)
    return count


def _forged(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the signature's first byte changed: it verifies no more."""
    sig = headers[HDR_SIGNATURE]
    return {**headers, HDR_SIGNATURE: ("B" if sig[0] != "B" else "C") + sig[1:]}


async def test_registrations_that_do_not_verify_are_bounded_per_address(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    node = make_node(wall, token)
    body = node.body()
    bad = _forged(node.reg_headers(body))
    async with await mesh(tmp_path, store, wall) as h:
        async with _from(h.app, STRANGER) as c:
            codes = [
                (await c.post("/mesh/nodes", content=body, headers=bad)).status_code
                for _ in range(200)
            ]
        # before the fix: 200 verifies, 200 answers of 401
        assert len(verifies) == WRONG_NODE_SIGNATURES_PER_MIN, len(verifies)
        assert codes[:WRONG_NODE_SIGNATURES_PER_MIN] == [401] * WRONG_NODE_SIGNATURES_PER_MIN
        assert set(codes[WRONG_NODE_SIGNATURES_PER_MIN:]) == {429}
        async with _from(h.app, STRANGER) as c:
            r = await c.post("/mesh/nodes", content=body, headers=bad)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        assert len(verifies) == WRONG_NODE_SIGNATURES_PER_MIN  # the 429 verified nothing
        # another address has its own count; loopback none
        async with _from(h.app, ELSEWHERE) as other:
            assert (await other.post("/mesh/nodes", content=body, headers=bad)).status_code == 401
        for _ in range(WRONG_NODE_SIGNATURES_PER_MIN + 5):
            assert (
                await h.client.post("/mesh/nodes", content=body, headers=bad)
            ).status_code == 401


async def test_stale_and_replayed_registrations_are_counted_too(
    tmp_path: Path, verifies: list[int]
) -> None:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        body = node.body()
        sent = node.reg_headers(body)
        async with _from(h.app, STRANGER) as c:
            assert (await c.post("/mesh/nodes", content=body, headers=sent)).status_code == 200
            codes = [
                (await c.post("/mesh/nodes", content=body, headers=sent)).status_code
                for _ in range(WRONG_NODE_SIGNATURES_PER_MIN + 10)
            ]
        # the same bytes again: 401 replayed_message until the count is full, then 429
        assert codes[:WRONG_NODE_SIGNATURES_PER_MIN] == [401] * WRONG_NODE_SIGNATURES_PER_MIN
        assert set(codes[WRONG_NODE_SIGNATURES_PER_MIN:]) == {429}
        assert len(verifies) == 1 + WRONG_NODE_SIGNATURES_PER_MIN


async def test_an_honest_fleet_behind_one_address_is_never_counted(
    tmp_path: Path, verifies: list[int]
) -> None:
    """Registrations that verify (every restart of every node of a NAT) spend nothing."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    async with await mesh(tmp_path, store, wall) as h:
        async with _from(h.app, NEIGHBOUR) as c:
            for i in range(WRONG_NODE_SIGNATURES_PER_MIN + 10):
                node = make_node(wall, token)
                body = node.body(url=f"https://n{i}.example.org:8443")
                r = await c.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
                assert r.status_code == 200, r.text
                body = node.body(url=f"https://n{i}.example.org:8443")  # a restart
                r = await c.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
                assert r.status_code == 200, r.text
        assert len(verifies) == 2 * (WRONG_NODE_SIGNATURES_PER_MIN + 10)
        assert json.loads(r.text)["node_id"] == node.node_id
