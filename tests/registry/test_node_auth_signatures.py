"""Signed node requests the registry refuses: a replayed heartbeat or registration, a sequence
number not greater, a timestamp outside 120 s, a wrong key, an altered body, another node's id,
an unsigned or mis-signed deregistration, header garbage; a revoked node leaves routing and an
unknown one registers again."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

from LLM_Mesh.core.identity import (
    HDR_NODE,
    HDR_PUBLIC_KEY,
    HDR_SEQ,
    HDR_SIGNATURE,
    HDR_TIME,
    MessageKind,
)
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.revocations import RevocationWatcher
from tests.registry.helpers import Harness
from tests.registry.node_auth_mesh import (
    NOW,
    Node,
    Wall,
    beat,
    error,
    make_node,
    mesh,
    operator,
    register,
    snapshot,
)


@contextlib.asynccontextmanager
async def alice_node(
    tmp_path: Path, *, registered: bool = True
) -> AsyncIterator[tuple[Harness, Node]]:
    """The registry (signed, on a fresh ``MemoryStore``, a :class:`Wall` at ``NOW``) and a
    node of operator ``alice``'s, registered unless ``registered`` is False."""
    store, wall = MemoryStore(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        if registered:
            await register(h, node)
        yield h, node


async def test_replayed_heartbeat_is_401(tmp_path: Path) -> None:
    async with alice_node(tmp_path) as (h, node):
        body = json.dumps({"in_flight": 1}).encode()
        headers = node.headers(MessageKind.HEARTBEAT, body)
        url = f"/mesh/nodes/{node.node_id}/heartbeat"
        assert (await h.client.post(url, content=body, headers=headers)).status_code == 200
        await h.runtime.heartbeats.flush()  # type: ignore[union-attr]  # written behind
        before = snapshot(h)
        error(await h.client.post(url, content=body, headers=headers), 401, "replayed_message")
        assert snapshot(h) == before


async def test_replayed_registration_is_401(tmp_path: Path) -> None:
    async with alice_node(tmp_path, registered=False) as (h, node):
        body = node.body()
        headers = node.reg_headers(body)
        assert (
            await h.client.post("/mesh/nodes", content=body, headers=headers)
        ).status_code == 200
        before = snapshot(h)
        r = await h.client.post("/mesh/nodes", content=body, headers=headers)
        error(r, 401, "replayed_message")
        assert snapshot(h) == before


async def test_sequence_number_not_greater_is_401(tmp_path: Path) -> None:
    async with alice_node(tmp_path) as (h, node):
        assert (await beat(h, node)).status_code == 200
        await h.runtime.heartbeats.flush()  # type: ignore[union-attr]  # written behind
        before = snapshot(h)
        node.signer.last_seq -= 10  # a freshly signed message, older sequence number
        node.signer.wall_clock = lambda: NOW - 60  # (µs-clock seq would else jump ahead)
        error(await beat(h, node), 401, "replayed_message")
        assert snapshot(h) == before


async def test_timestamp_outside_120_s_is_401(tmp_path: Path) -> None:
    async with alice_node(tmp_path) as (h, node):
        before = snapshot(h)
        for skew in (-121.0, 121.0):
            node.signer.wall_clock = lambda skew=skew: NOW + skew  # type: ignore[misc]
            error(await beat(h, node), 401, "stale_message")
        node.signer.wall_clock = lambda: NOW + 119
        assert (await beat(h, node)).status_code == 200  # just inside the window
        assert snapshot(h) != before
        # a stale registration too
        late = make_node(Wall(), node.token)
        late.signer.wall_clock = lambda: NOW - 500
        error(await register(h, late), 401, "stale_message")


async def test_wrong_key_is_401(tmp_path: Path) -> None:
    async with alice_node(tmp_path) as (h, node):
        other = make_node(node.signer.wall_clock, node.token)
        before = snapshot(h)
        body = b'{"in_flight":5}'
        headers = other.headers(MessageKind.HEARTBEAT, body, target=node.node_id)
        headers[HDR_NODE] = node.node_id  # claims to be the node; signed by another key
        r = await h.client.post(
            f"/mesh/nodes/{node.node_id}/heartbeat", content=body, headers=headers
        )
        error(r, 401, "invalid_signature")
        assert snapshot(h) == before


async def test_body_altered_after_signing_is_401(tmp_path: Path) -> None:
    async with alice_node(tmp_path) as (h, node):
        before = snapshot(h)
        signed = b'{"in_flight":1,"state":"online"}'
        headers = node.headers(MessageKind.HEARTBEAT, signed)
        altered = b'{"in_flight":1,"state":"draining"}'
        r = await h.client.post(
            f"/mesh/nodes/{node.node_id}/heartbeat", content=altered, headers=headers
        )
        error(r, 401, "invalid_signature")
        # an altered registration (another URL) too
        body = node.body()
        headers = node.reg_headers(body)
        evil = node.body(url="http://169.254.169.254:80")
        error(
            await h.client.post("/mesh/nodes", content=evil, headers=headers),
            401,
            "invalid_signature",
        )
        assert snapshot(h) == before


async def test_another_nodes_id_is_403(tmp_path: Path) -> None:
    """A registered node heartbeats, pauses or deregisters another node: 403."""
    async with alice_node(tmp_path) as (h, victim):
        attacker = make_node(victim.signer.wall_clock, victim.token)
        await register(h, attacker)
        before = snapshot(h)
        body = b'{"state":"draining"}'
        r = await h.client.post(
            f"/mesh/nodes/{victim.node_id}/heartbeat",
            content=body,
            headers=attacker.headers(MessageKind.HEARTBEAT, body, target=victim.node_id),
        )
        error(r, 403, "node_id_mismatch")
        r = await h.client.delete(
            f"/mesh/nodes/{victim.node_id}",
            headers=attacker.headers(MessageKind.DEREGISTER, b"", target=victim.node_id),
        )
        error(r, 403, "node_id_mismatch")
        assert snapshot(h) == before
        assert h.table.get(victim.node_id).state.value == "online"  # type: ignore[union-attr]


async def test_unsigned_deregistration_of_another_node_is_401(tmp_path: Path) -> None:
    async with alice_node(tmp_path) as (h, node):
        before = snapshot(h)
        error(await h.client.delete(f"/mesh/nodes/{node.node_id}"), 401, "invalid_signature")
        error(
            await h.client.post(f"/mesh/nodes/{node.node_id}/heartbeat", json={}),
            401,
            "invalid_signature",
        )
        assert snapshot(h) == before


async def test_heartbeat_signed_as_deregistration_is_401(tmp_path: Path) -> None:
    """Domain separation: a signature for one kind of message is no good for another."""
    async with alice_node(tmp_path) as (h, node):
        before = snapshot(h)
        headers = node.headers(MessageKind.HEARTBEAT, b"")
        r = await h.client.delete(f"/mesh/nodes/{node.node_id}", headers=headers)
        error(r, 401, "invalid_signature")
        assert snapshot(h) == before


async def test_revoked_node_leaves_routing_and_is_refused(tmp_path: Path) -> None:
    async with alice_node(tmp_path) as (h, node):
        assert h.runtime.routing.router.node(node.node_id) is not None
        # the admin CLI writes the store only; this process learns it from the store
        await h.store.revoke_node(node.node_id, datetime.now(timezone.utc))
        watcher = RevocationWatcher(h.store, h.table, h.runtime.routing)
        assert await watcher.poll() == [node.node_id]
        assert h.runtime.routing.router.node(node.node_id) is None
        assert h.table.get(node.node_id).state.value == "offline"  # type: ignore[union-attr]
        error(await beat(h, node), 403, "revoked")
        error(await register(h, node), 403, "revoked")
        assert await watcher.poll() == []  # already out


async def test_revoked_operator_takes_its_nodes_out(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    other = make_node(wall, await operator(store, "bob"))
    node = make_node(wall, token)
    async with await mesh(tmp_path, store, wall) as h:
        await register(h, node)
        await register(h, other)
        assert await store.revoke_operator("alice", datetime.now(timezone.utc)) == [node.node_id]
        # a heartbeat is refused even before any poll (the store is read on every message)
        error(await beat(h, node), 403, "revoked")
        assert (await beat(h, other)).status_code == 200
        fresh = make_node(wall, token)
        error(await register(h, fresh), 403, "revoked")


async def test_unknown_node_heartbeat_is_404_so_it_registers_again(tmp_path: Path) -> None:
    async with alice_node(tmp_path, registered=False) as (h, node):
        r = await beat(h, node)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_node"


async def test_registration_header_garbage_is_401(tmp_path: Path) -> None:
    async with alice_node(tmp_path, registered=False) as (h, node):
        body = node.body()
        for name, value in (
            (HDR_SEQ, "-1"),
            (HDR_TIME, "soon"),
            (HDR_SIGNATURE, "%%%"),
            (HDR_PUBLIC_KEY, "AAAA"),
            # latin-1 "²" / "³¹": str.isdigit(), refused by int() (found 2026-12-02: a 500)
            (HDR_SEQ, b"\xb2"),
            (HDR_TIME, b"\xb3\xb9"),
        ):
            headers = node.reg_headers(body)
            headers[name] = value
            r = await h.client.post("/mesh/nodes", content=body, headers=headers)
            error(r, 401, "invalid_signature")
        assert snapshot(h) == ({}, {}, {})
