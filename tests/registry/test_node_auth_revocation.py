"""The registry signs every 403 ``revoked`` it answers a node's message with (a revoked node
key, a revoked operator, a key revoked while it registered), with the key nodes pin, over
that very message (``node_auth.revocation_signed``, ``core/revocation_proof.py``): the node
honours no other (``node/agent.py``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import httpx

from LLM_Mesh.core.identity import MessageKind
from LLM_Mesh.core.revocation_proof import check_revocation, revoked_request
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import Harness
from tests.registry.node_auth_mesh import (
    Node,
    RevokedMeanwhile,
    Wall,
    beat,
    error,
    make_node,
    mesh,
    operator,
)


def _proven(h: Harness, r: httpx.Response, kind: MessageKind, sent: dict[str, str]) -> None:
    """``r`` is a 403 ``revoked`` the registry key signed for the message sent with ``sent``
    (and for no other)."""
    error(r, 403, "revoked")
    key = h.runtime.signer.public_key  # what a registration's answer gives the node to pin
    request = revoked_request(kind, sent)
    assert request is not None
    assert check_revocation(key, request, r.json()) is None, r.text
    later = revoked_request(kind, {**sent, "X-Mesh-Seq": str(request.seq + 1)})
    assert later is not None and check_revocation(key, later, r.json()) is not None


async def _register(h: Harness, node: Node) -> tuple[httpx.Response, dict[str, str]]:
    body = node.body()
    headers = node.reg_headers(body)
    return await h.client.post("/mesh/nodes", content=body, headers=headers), headers


async def test_a_revoked_nodes_heartbeat_registration_and_goodbye(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        r, _ = await _register(h, node)
        assert r.json()["registry_public_key"] == h.runtime.signer.public_key
        await store.revoke_node(node.node_id, datetime.now(timezone.utc))
        body = json.dumps({"in_flight": 1}).encode()
        sent = node.headers(MessageKind.HEARTBEAT, body)
        r = await h.client.post(f"/mesh/nodes/{node.node_id}/heartbeat", content=body,
                                headers=sent)  # fmt: skip
        _proven(h, r, MessageKind.HEARTBEAT, sent)
        r, sent = await _register(h, node)
        _proven(h, r, MessageKind.REGISTER, sent)
        sent = node.headers(MessageKind.DEREGISTER, b"")
        r = await h.client.delete(f"/mesh/nodes/{node.node_id}", headers=sent)
        _proven(h, r, MessageKind.DEREGISTER, sent)


async def test_a_revoked_operators_registration_binds_its_token(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    await store.revoke_operator("alice", datetime.now(timezone.utc))
    node = make_node(wall, token)
    async with await mesh(tmp_path, store, wall) as h:
        r, sent = await _register(h, node)
        _proven(h, r, MessageKind.REGISTER, sent)
        assert r.json()["error"]["message"] == "operator alice is revoked"
        # the same answer for the same message carrying another token does not verify
        other = revoked_request(MessageKind.REGISTER, {**sent, "X-Mesh-Operator-Token": "x"})
        assert other is not None
        assert check_revocation(h.runtime.signer.public_key, other, r.json()) is not None


async def test_a_key_revoked_while_it_registers(tmp_path: Path) -> None:
    store, wall = RevokedMeanwhile(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        r, sent = await _register(h, node)
        _proven(h, r, MessageKind.REGISTER, sent)


async def test_the_hot_heartbeat_route_and_the_fastapi_route_both_sign_it(
    tmp_path: Path,
) -> None:
    """``registry/hot_heartbeat.py`` serves heartbeats ahead of FastAPI with the same
    function (``api.absorb_heartbeat``): its 403 carries the signature as the route's does."""
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        await _register(h, node)
        await store.revoke_node(node.node_id, datetime.now(timezone.utc))
        for hot in (True, False):
            h.app.hot_heartbeat = hot  # type: ignore[attr-defined]
            r = await beat(h, node)
            error(r, 403, "revoked")
            assert "revocation" in r.json()["error"], hot


async def test_a_rotated_registrys_revocations_carry_its_chain(tmp_path: Path) -> None:
    """Found 2026-12-05: after a rotation of ``registry.key`` the 403 was signed by the new
    key alone, and a node that pinned the old one (revoked: it never hears the registration
    answer that moves its pin) ignored it and heartbeated on forever. Every signed 403 (the
    hot heartbeat route and FastAPI's, a registration, a goodbye) carries the chain of
    rotation statements a registration answer carries, leading from the old key."""
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        r, _ = await _register(h, node)
        pinned = r.json()["registry_public_key"]
    (tmp_path / "registry.key").replace(tmp_path / "registry.key.previous")  # the rotation
    async with await mesh(tmp_path, store, wall) as h:
        assert h.runtime.signer.public_key != pinned and h.runtime.key_rotations
        await store.revoke_node(node.node_id, datetime.now(timezone.utc))

        def followed(r: httpx.Response, kind: MessageKind, sent: dict[str, str]) -> None:
            _proven(h, r, kind, sent)  # the new key's signature, as before
            said = r.json()["error"]
            assert said["key_rotations"] == h.runtime.key_rotations, kind
            assert said["key_rotation"] == h.runtime.key_rotations[-1]
            request = revoked_request(kind, sent)
            assert request is not None
            assert check_revocation(pinned, request, r.json(), follow_rotations=True) is None
            assert check_revocation(pinned, request, r.json()) is not None  # node.toml's pin

        for hot in (True, False):
            h.app.hot_heartbeat = hot  # type: ignore[attr-defined]
            body = json.dumps({"in_flight": 1}).encode()
            sent = node.headers(MessageKind.HEARTBEAT, body)
            r = await h.client.post(f"/mesh/nodes/{node.node_id}/heartbeat", content=body,
                                    headers=sent)  # fmt: skip
            followed(r, MessageKind.HEARTBEAT, sent)
        r, sent = await _register(h, node)
        followed(r, MessageKind.REGISTER, sent)
        sent = node.headers(MessageKind.DEREGISTER, b"")
        r = await h.client.delete(f"/mesh/nodes/{node.node_id}", headers=sent)
        followed(r, MessageKind.DEREGISTER, sent)
