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
from LLM_Mesh.registry.admin import (
    WRONG_NODE_SIGNATURES_PER_MIN,
    WRONG_REREGISTRATIONS_PER_ID_PER_MIN,
    WRONG_REREGISTRATIONS_TOTAL_PER_MIN,
)
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.node_auth_mesh import Wall, make_node, mesh, operator

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
                for _ in range(
                    WRONG_NODE_SIGNATURES_PER_MIN + WRONG_REREGISTRATIONS_PER_ID_PER_MIN + 10
                )
            ]
        # the same bytes again: 401 replayed_message until the count is full, then (its key
        # known here: a re-registration's allowance, regs39) its id's count, then 429
        refused = WRONG_NODE_SIGNATURES_PER_MIN + WRONG_REREGISTRATIONS_PER_ID_PER_MIN
        assert codes[:refused] == [401] * refused
        assert set(codes[refused:]) == {429}
        assert len(verifies) == 1 + refused


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


async def _fill(h: Any, token: str, wall: Wall, *, tokens: bool = False) -> None:
    """A stranger at the shared address spends its count: forged registrations of keys of
    its own (``tokens``: signed ones with a made-up operator token instead)."""
    async with _from(h.app, STRANGER) as c:
        for _ in range(WRONG_NODE_SIGNATURES_PER_MIN):
            own = make_node(wall, "lmo_made_up" if tokens else token)
            body = own.body()
            sent = own.reg_headers(body)
            r = await c.post("/mesh/nodes", content=body, headers=sent if tokens else _forged(sent))
            assert r.status_code == 401, r.text
        own = make_node(wall, token)  # a key new here, however signed: 429 from now on
        body = own.body(url="https://new.example.org:8443")
        r = await c.post("/mesh/nodes", content=body, headers=own.reg_headers(body))
        assert r.status_code == 429, r.text


@pytest.mark.parametrize("tokens", [False, True], ids=["signatures", "operator-tokens"])
async def test_a_stranger_at_the_nodes_address_does_not_hold_back_its_re_registration(
    tmp_path: Path, verifies: list[int], tokens: bool
) -> None:
    """Session 38's note: a node told to register again (a 404 after a replica restart, a
    beat token refused, a failover) from an address whose count of refused registrations a
    stranger there had spent heard 429 before its registration was read, for as long as the
    stranger kept it full (its backoff, then 429 again). A known key's re-registration is
    verified now; a key new here still 429."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    node = make_node(wall, token)
    async with await mesh(tmp_path, store, wall) as h:
        async with _from(h.app, NEIGHBOUR) as c:
            body = node.body()
            r = await c.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
            assert r.status_code == 200, r.text
        await _fill(h, token, wall, tokens=tokens)
        async with _from(h.app, NEIGHBOUR) as c:
            for _ in range(3):  # each 404 "register again" is one (before: 429, 429, 429)
                body = node.body()
                r = await c.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
                assert r.status_code == 200, r.text


async def test_after_a_registry_restart_its_nodes_register_again_through_the_flood(
    tmp_path: Path, verifies: list[int]
) -> None:
    """A restarted registry (the same store, a fresh process: its counts, homes and beat
    tokens gone, its nodes' keys loaded from the store) whose nodes behind one NAT register
    again while a stranger there fills the address's count: all of them 200."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    fleet = [make_node(wall, token) for _ in range(5)]
    async with await mesh(tmp_path, store, wall) as h:
        for i, node in enumerate(fleet):
            assert (await register_at(h, node, i)).status_code == 200
    async with await mesh(tmp_path, store, wall) as h:  # the restart
        await _fill(h, token, wall)
        for i, node in enumerate(fleet):
            r = await register_at(h, node, i)
            assert r.status_code == 200, r.text  # (before: 429)


async def test_forged_re_registrations_of_known_keys_are_bounded_per_id_and_in_all(
    tmp_path: Path, verifies: list[int]
) -> None:
    """What the exemption costs: past the address's count, registrations carrying a known
    node's key whose signature does not hold are verified at most
    ``WRONG_REREGISTRATIONS_PER_ID_PER_MIN`` a minute per id (then 429, that node's own too:
    what remains, docs/security.md) and ``WRONG_REREGISTRATIONS_TOTAL_PER_MIN`` in all."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    per_id, total = WRONG_REREGISTRATIONS_PER_ID_PER_MIN, WRONG_REREGISTRATIONS_TOTAL_PER_MIN
    fleet = [make_node(wall, token) for _ in range(total // per_id + 3)]
    async with await mesh(tmp_path, store, wall) as h:
        for i, node in enumerate(fleet):
            assert (await register_at(h, node, i)).status_code == 200
        await _fill(h, token, wall)
        before = len(verifies)
        codes: list[int] = []
        async with _from(h.app, STRANGER) as c:
            for node in fleet:
                body = node.body()
                bad = _forged(node.reg_headers(body))
                for _ in range(per_id + 5):
                    codes.append(
                        (await c.post("/mesh/nodes", content=body, headers=bad)).status_code
                    )
        assert len(verifies) - before == total, len(verifies) - before
        assert codes.count(401) == total and codes.count(429) == len(codes) - total
        assert codes[: per_id + 5] == [401] * per_id + [429] * 5  # per id
        async with _from(h.app, NEIGHBOUR) as c:  # the first node's own: its id's count spent
            body = fleet[0].body(url="https://n0.example.org:8443")
            r = await c.post("/mesh/nodes", content=body, headers=fleet[0].reg_headers(body))
            assert r.status_code == 429, r.text


async def register_at(h: Any, node: Any, i: int) -> httpx.Response:
    async with _from(h.app, NEIGHBOUR) as c:
        body = node.body(url=f"https://n{i}.example.org:8443")
        return await c.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
