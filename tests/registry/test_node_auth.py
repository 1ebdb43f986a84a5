"""Node identity at the registry (``registry/node_auth.py`` + ``api.py``): every attack of
docs/security.md's table is refused with its 401/403 and changes nothing.

Each test runs the registry's real ``SignedNodeAuth`` on a ``MemoryStore``; nodes are
``core.identity.NodeSigner``s on a wall clock the test drives.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import (
    HDR_NODE,
    HDR_OPERATOR_TOKEN,
    HDR_PUBLIC_KEY,
    HDR_SEQ,
    HDR_SIGNATURE,
    HDR_TIME,
    MessageKind,
    NodeSigner,
)
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_auth import SignedNodeAuth
from LLM_Mesh.registry.ports import SeqResult
from LLM_Mesh.registry.revocations import RevocationWatcher
from tests.keyed import held_account, operator_account
from tests.registry.helpers import ADMIN, Harness, registration, running

NOW = 1_800_000_000.0


class Wall:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Node:
    signer: NodeSigner
    token: str | None

    @property
    def node_id(self) -> str:
        return self.signer.node_id

    def body(self, **extra: Any) -> bytes:
        reg = registration(self.node_id, **extra)
        return json.dumps(reg).encode()

    def reg_headers(self, body: bytes) -> dict[str, str]:
        h = self.signer.headers(MessageKind.REGISTER, body)
        if self.token:
            h[HDR_OPERATOR_TOKEN] = self.token
        h["content-type"] = "application/json"
        return h

    def headers(self, kind: MessageKind, body: bytes, target: str | None = None) -> dict[str, str]:
        h = self.signer.headers(kind, body, target=target or self.node_id)
        h["content-type"] = "application/json"
        return h


class RevokedMeanwhile(MemoryStore):
    """A store whose node's key is revoked as the registration writes the node's row."""

    async def upsert_node(self, rec: Any, **kw: Any) -> bool:
        await self.revoke_node(rec.node_id, datetime.now(timezone.utc))
        return await super().upsert_node(rec, **kw)


def make_node(wall: Callable[[], float], token: str | None) -> Node:
    return Node(NodeSigner(Ed25519PrivateKey.generate(), wall), token)


async def register(h: Harness, node: Node, **extra: Any) -> httpx.Response:
    body = node.body(**extra)
    return await h.client.post("/mesh/nodes", content=body, headers=node.reg_headers(body))


async def beat(h: Harness, node: Node, hb: dict[str, Any] | None = None) -> httpx.Response:
    body = json.dumps(hb or {"in_flight": 1}).encode()
    return await h.client.post(
        f"/mesh/nodes/{node.node_id}/heartbeat",
        content=body,
        headers=node.headers(MessageKind.HEARTBEAT, body),
    )


def error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert set(err) >= {"message", "type", "param", "code"}
    assert err["type"] == ("authentication_error" if status == 401 else "permission_error")


async def mesh(tmp_path: Path, store: MemoryStore, wall: Wall) -> Any:
    return running(tmp_path, store=store, signed=True, wall_clock=wall)


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


async def operator(store: MemoryStore, name: str = "alice") -> str:
    token = await add_operator(store, name)
    assert token is not None
    return token


def snapshot(h: Harness) -> Any:
    """Everything a refused message must leave as it was."""
    entries = {
        e.node_id: (e.state, e.url, e.reported_in_flight, e.reported_queued)
        for e in h.table.entries()
    }
    keys = {k: (v.last_seq, v.revoked_at, v.operator) for k, v in h.store.node_keys.items()}
    nodes = {k: (v.state, v.url, v.last_heartbeat_at) for k, v in h.store.nodes.items()}
    return entries, keys, nodes


# --- the happy path --------------------------------------------------------------------------


async def test_signed_register_heartbeat_deregister(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    node = make_node(wall, token)
    async with await mesh(tmp_path, store, wall) as h:
        r = await register(h, node)
        assert r.status_code == 200, r.text
        acc = r.json()
        assert acc["node_id"] == node.node_id and acc["operator"] == "alice"
        assert acc["seq"] == node.signer.last_seq and acc["max_clock_skew_s"] == 120
        assert acc["registry_time"] == NOW
        assert store.node_keys[node.node_id].public_key == node.signer.public_key
        wall.now += 1
        assert (await beat(h, node)).status_code == 200
        assert h.table.get(node.node_id).reported_in_flight == 1  # type: ignore[union-attr]
        r = await h.client.delete(
            f"/mesh/nodes/{node.node_id}", headers=node.headers(MessageKind.DEREGISTER, b"")
        )
        assert r.status_code == 204
        assert store.nodes[node.node_id].state == "offline"


# --- the attacks ---------------------------------------------------------------------------


async def test_unsigned_registration_is_401(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    await operator(store)
    async with await mesh(tmp_path, store, wall) as h:
        r = await h.client.post("/mesh/nodes", json=registration("node-a"))
        error(r, 401, "invalid_signature")
        assert snapshot(h) == ({}, {}, {})


async def test_registration_without_operator_token_is_401(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        error(await register(h, make_node(wall, None)), 401, "invalid_credential")
        error(await register(h, make_node(wall, "lmo_made-up")), 401, "invalid_credential")
        assert snapshot(h) == ({}, {}, {})


async def test_an_unknown_token_is_told_where_tokens_come_from(tmp_path: Path) -> None:
    """Found 2026-12-05 (newuser32): a node started with a mistyped token, or one of
    another registry's (another home's), logged only ``unknown operator token`` at every
    try: nothing said whose tokens count or how an operator gets one."""
    store, wall = MemoryStore(), Wall()
    async with await mesh(tmp_path, store, wall) as h:
        r = await register(h, make_node(wall, "lmo_made-up"))
    error(r, 401, "invalid_credential")
    message = r.json()["error"]["message"]
    assert message.startswith("unknown operator token"), message
    assert "this registry" in message and "llm-mesh registry operators add NAME" in message
    assert "lmo_made-up" not in message  # the token is never said back


async def test_a_stranger_hears_of_its_token_before_the_transport_rule(tmp_path: Path) -> None:
    """Without a valid operator token, a plain-http URL on another machine is refused for the
    token (401), not with the registry's transport policy (403 ``plain_http_remote``): the
    token first, then the address."""
    store, wall = MemoryStore(), Wall()
    async with running(
        tmp_path, store=store, signed=True, wall_clock=wall, allow_plain_http_nodes=False
    ) as h:
        for token in (None, "lmo_made-up"):
            r = await register(h, make_node(wall, token), url="http://203.0.113.7:8801")
            error(r, 401, "invalid_credential")
        token = await operator(store)
        r = await register(h, make_node(wall, token), url="http://203.0.113.7:8801")
        assert r.status_code == 403, r.text
        assert r.json()["error"]["reason"] == "plain_http_remote"
        assert snapshot(h)[0] == {}


async def test_registration_with_revoked_operator_is_403(tmp_path: Path) -> None:
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    await store.revoke_operator("alice", datetime.now(timezone.utc))
    async with await mesh(tmp_path, store, wall) as h:
        error(await register(h, make_node(wall, token)), 403, "revoked")
        assert snapshot(h) == ({}, {}, {})


async def test_claiming_an_id_with_another_key_is_403(tmp_path: Path) -> None:
    """Take-over: register the victim's id (in the body or the header) with one's own key."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    victim, thief = make_node(wall, token), make_node(wall, token)
    async with await mesh(tmp_path, store, wall) as h:
        assert (await register(h, victim)).status_code == 200
        before = snapshot(h)
        # the body names the victim, the signature is the thief's
        body = json.dumps(registration(victim.node_id, url="http://evil:8801")).encode()
        error(
            await h.client.post("/mesh/nodes", content=body, headers=thief.reg_headers(body)),
            403,
            "node_id_mismatch",
        )
        # the thief signs as the victim's id with its own key
        headers = thief.reg_headers(body)
        headers[HDR_NODE] = victim.node_id
        r = await h.client.post("/mesh/nodes", content=body, headers=headers)
        assert r.status_code == 401  # the signature covers the signer's id
        # ... and re-signed properly with that id claimed
        forged = NodeSigner.__new__(NodeSigner)
        forged.__dict__.update(thief.signer.__dict__)
        forged.node_id = victim.node_id
        headers = forged.headers(MessageKind.REGISTER, body)
        headers[HDR_OPERATOR_TOKEN] = token
        error(
            await h.client.post("/mesh/nodes", content=body, headers=headers),
            403,
            "node_id_mismatch",
        )
        assert snapshot(h) == before
        assert h.table.get(victim.node_id).url == f"http://{victim.node_id}:8801"  # type: ignore[union-attr]


async def test_a_registration_refused_for_its_address_leaves_the_node_its_operator(
    tmp_path: Path,
) -> None:
    """Found 2026-12-02 (a second node started from the same ``$LLM_MESH_HOME``, so with
    the same key, under another operator's token, at a loopback URL): the registration was
    refused 403 ``node_address_refused``, yet the node's key had already been claimed for
    the new operator in the store and the settlement paid that operator for everything the
    running node answered after. A refused registration changes nothing. (A key can no
    longer move to another operator at all, below: here the same operator's token.)"""
    store, wall = MemoryStore(), Wall()
    alice = await operator(store)
    node = make_node(wall, alice)
    async with await mesh(tmp_path, store, wall) as h:
        assert (await register(h, node)).status_code == 200
        settlement = h.runtime.settlement
        assert settlement is not None
        assert settlement.payee(node.node_id) == operator_account("alice")
        before = snapshot(h)
        moved = Node(node.signer, alice)
        body = moved.body(url="http://127.0.0.1:8802")
        r = await h.client.post("/mesh/nodes", content=body, headers=moved.reg_headers(body))
        error(r, 403, "node_address_refused")
        assert snapshot(h) == before  # before the fix: the key's operator was bob, seq taken
        assert store.node_keys[node.node_id].operator == "alice"
        assert settlement.payee(node.node_id) == operator_account("alice")
        assert not h.runtime.pins.admitted("http://127.0.0.1:8802")


async def test_a_node_key_cannot_move_to_another_operator(tmp_path: Path) -> None:
    """A quarantined node (its operator registers no new key, its earnings held) is
    re-registered with its own key under a second operator's token: the claim moved the
    key to the second operator, which freed the first of the quarantine rule and had the
    held balance released to the second (found 2026-12-02, third pass). A key stays with
    its first operator: 403 ``forbidden``, reason ``node_key_other_operator``, nothing
    stored or moved (key, sequence number, payee, the first operator's block), and the
    store refuses the claim itself (another replica's race)."""
    store, wall = MemoryStore(), Wall()
    alice, bob = await operator(store), await operator(store, "bob")
    liar, fresh = make_node(wall, alice), make_node(wall, alice)
    async with await mesh(tmp_path, store, wall) as h:
        assert (await register(h, liar)).status_code == 200
        now = datetime.now(timezone.utc)
        await store.record_canary(liar.node_id, "gemma-3-270m", ok=False, reason="canary", at=now)
        assert h.runtime.quality is not None
        await h.runtime.quality.load()
        settlement = h.runtime.settlement
        assert settlement is not None
        assert settlement.payee(liar.node_id) == held_account(liar.node_id)
        before = snapshot(h)
        r = await register(h, Node(liar.signer, bob))
        error(r, 403, "forbidden")
        assert r.json()["error"]["reason"] == "node_key_other_operator"
        assert "revoke" in r.json()["error"]["message"]
        assert snapshot(h) == before
        assert store.node_keys[liar.node_id].operator == "alice"
        assert settlement.payee(liar.node_id) == held_account(liar.node_id)
        assert await store.quarantined_nodes_of("alice") == [liar.node_id]
        assert (await register(h, fresh)).json()["error"]["reason"] == "operator_quarantined"
        # the store's claim alone (a registry that checked before the key was claimed)
        got = await store.claim_node_key(
            liar.node_id, store.node_keys[liar.node_id].public_key, "bob", 10**9, now
        )
        assert got is SeqResult.OTHER_OPERATOR
        assert snapshot(h) == before


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


async def test_health_check_needs_the_admin_key(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        error(await h.client.post("/mesh/health-check"), 401, "invalid_credential")
        r = await h.client.post("/mesh/health-check", headers={"Authorization": "Bearer nope"})
        error(r, 401, "invalid_credential")
        assert (await h.client.post("/mesh/health-check", headers=ADMIN)).status_code == 200


async def test_a_real_node_service_signs_what_it_sends(tmp_path: Path) -> None:
    """NodeService + NodeAgent against the real registry app: register, state change, goodbye."""
    from LLM_Mesh.config import Settings
    from LLM_Mesh.core.schemas import Hardware
    from LLM_Mesh.node.config import NodeConfig
    from LLM_Mesh.node.engines.sim import SimEngine
    from LLM_Mesh.node.service import NodeService
    from tests.node.conftest import wait_until

    store = MemoryStore()
    token = await operator(store)
    async with running(tmp_path / "reg", store=store, signed=True, allow_private_nodes=True) as h:
        svc = NodeService(
            NodeConfig(engine="sim", models=["gemma-3-270m"], register=True, operator_token=token),
            Settings(home=tmp_path / "node", registry_url="http://mesh", allow_http_first_use=True),
            engine=SimEngine(["gemma-3-270m"]),
            http_client=h.client,
            hardware=Hardware(),
        )
        await svc.start()
        agent = svc.agent
        assert agent is not None
        await wait_until(lambda: agent.registered)
        assert store.node_keys[svc.node_id].operator == "alice"
        svc.pause()  # a signed heartbeat carries the new state
        await wait_until(lambda: h.table.get(svc.node_id).state.value == "paused")  # type: ignore[union-attr]
        await svc.stop()
        assert store.nodes[svc.node_id].state == "offline"
        assert agent.last_error is None


async def test_a_node_without_operator_token_says_why(tmp_path: Path) -> None:
    from LLM_Mesh.config import Settings
    from LLM_Mesh.core.schemas import Hardware
    from LLM_Mesh.node.config import NodeConfig
    from LLM_Mesh.node.engines.sim import SimEngine
    from LLM_Mesh.node.service import NodeService

    async with running(tmp_path / "reg", signed=True) as h:
        svc = NodeService(
            NodeConfig(engine="sim", models=["gemma-3-270m"], register=True),
            Settings(home=tmp_path / "node", registry_url="http://mesh", allow_http_first_use=True),
            engine=SimEngine(["gemma-3-270m"]),
            http_client=h.client,
            hardware=Hardware(),
        )
        await svc.prepare()
        svc.started = True
        from LLM_Mesh.node.agent import NodeAgent

        agent = NodeAgent(
            client=h.client,
            registry_url="http://mesh",
            node_id=svc.node_id,
            registration=svc.registration,
            heartbeat=svc.heartbeat,
            signer=svc.signer,
        )
        assert not await agent.register()
        assert agent.last_error is not None and "401" in agent.last_error
        assert "operator token" in agent.last_error
        await svc.stop()


async def test_keys_of_stored_nodes_are_read_at_start_up(tmp_path: Path, monkeypatch: Any) -> None:
    """A restarted registry reads every stored node's key at start-up (one batch), so no
    heartbeat waits on a look-up; the checks are unchanged: a revoked key is refused."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    nodes = [make_node(wall, token) for _ in range(3)]
    async with await mesh(tmp_path / "first", store, wall) as h:
        for n in nodes:
            assert (await register(h, n)).status_code == 200
    await store.revoke_node(nodes[2].node_id, datetime.now(timezone.utc))
    looked_up: list[str] = []
    one = store.get_node_key

    async def counted(node_id: str) -> Any:
        looked_up.append(node_id)
        return await one(node_id)

    monkeypatch.setattr(store, "get_node_key", counted)
    async with await mesh(tmp_path / "again", store, wall) as h:
        auth = h.runtime.node_auth
        assert isinstance(auth, SignedNodeAuth)
        assert set(auth._keys) == {n.node_id for n in nodes}  # revocation is the seq step's
        looked_up.clear()
        assert (await beat(h, nodes[0])).status_code == 200
        assert (await beat(h, nodes[1])).status_code == 200
        error(await beat(h, nodes[2]), 403, "revoked")
        assert looked_up == []


async def test_a_quarantined_operator_cannot_start_over_with_a_new_key(tmp_path: Path) -> None:
    """A node caught by a canary is quarantined and its earnings held by node id; its
    operator makes a new key (``node keys init`` in a new home) and registers it, to be
    routed and paid again at once. While any of its nodes is quarantined an operator
    registers no key new to the registry (403 ``forbidden``, reason
    ``operator_quarantined``, nothing stored); its known nodes re-register as before,
    other operators are unaffected, and the admin's clear lifts it (found 2026-12-02: the
    new key was served and paid, the quarantine escaped in one command)."""
    store, wall = MemoryStore(), Wall()
    token, other = await operator(store), await operator(store, "bob")
    liar, fresh, bobs = make_node(wall, token), make_node(wall, token), make_node(wall, other)
    async with await mesh(tmp_path, store, wall) as h:
        assert (await register(h, liar)).status_code == 200
        now = datetime.now(timezone.utc)
        await store.record_canary(liar.node_id, "gemma-3-270m", ok=False, reason="canary", at=now)
        before = snapshot(h)
        r = await register(h, fresh)
        error(r, 403, "forbidden")
        assert r.json()["error"]["reason"] == "operator_quarantined"
        assert snapshot(h) == before and fresh.node_id not in store.node_keys
        assert (await register(h, liar)).status_code == 200  # a known key: as before
        assert (await register(h, bobs)).status_code == 200  # another operator
        await store.clear_quarantine(liar.node_id, now)
        assert (await register(h, fresh)).status_code == 200


async def _paid_to(h: Harness, request_id: str) -> tuple[str, str]:
    """The first ledger entry of ``request_id``: (kind, to account)."""
    rt = h.runtime
    assert rt.settlement is not None and rt.ledger is not None
    await rt.settlement.flush()
    entries, _ = await rt.ledger.entries(-1, 10_000)
    found = [(e.kind, e.to_account) for e in entries if e.request_id == request_id]
    assert found, request_id
    return found[0]


async def test_an_operators_spare_node_is_held_while_another_is_quarantined(
    tmp_path: Path,
) -> None:
    """An operator with a spare node (registered before its other node was caught) goes
    on being paid for the spare's requests, each spare until it is caught itself (found
    2026-12-02, third pass). While any node of an operator is quarantined, every node of
    that operator answers to its held account; another operator's node is paid as before;
    the admin's clear releases the hold on all of them. The quarantine is written to the
    store as another replica would, and learnt from there by this replica's poll (the
    decision comes from the store, not from the replica that saw the probe fail)."""
    from LLM_Mesh.registry.quality import QualityWatcher

    store, wall = MemoryStore(), Wall()
    alice, bob = await operator(store), await operator(store, "bob")
    liar, spare, bobs = make_node(wall, alice), make_node(wall, alice), make_node(wall, bob)
    async with await mesh(tmp_path, store, wall) as h:
        for n in (liar, spare, bobs):
            h.nodes.add(n.node_id)
            assert (await register(h, n)).status_code == 200

        async def ask(n: Node) -> str:
            r = await h.client.post(
                "/v1/completions",
                json={"model": "gemma-3-270m", "prompt": "hi", "allow_nodes": [n.node_id]},
            )
            assert r.status_code == 200, r.text
            return str(r.json()["mesh"]["request_id"])

        assert await _paid_to(h, await ask(spare)) == ("settle", operator_account("alice"))
        q = h.runtime.quality
        assert q is not None
        at = datetime.now(timezone.utc)
        await store.record_canary(liar.node_id, "gemma-3-270m", ok=False, reason="canary", at=at)
        await QualityWatcher(q).poll()
        assert await _paid_to(h, await ask(spare)) == ("hold", held_account(spare.node_id))
        assert await _paid_to(h, await ask(bobs)) == ("settle", operator_account("bob"))
        await store.clear_quarantine(liar.node_id, at)  # the admin's CLI, on the store
        await QualityWatcher(q).poll()
        assert await _paid_to(h, await ask(spare)) == ("settle", operator_account("alice"))


async def test_a_key_revoked_before_the_nodes_row_is_written_is_refused(tmp_path: Path) -> None:
    # the key is claimed, then revoked (the CLI, another replica) before the registration
    # writes its ``nodes`` row. Found 2026-12-03: the row was written online (other
    # replicas' node polls routed the node again) and the registration answered 200
    store, wall = RevokedMeanwhile(), Wall()
    node = make_node(wall, await operator(store))
    async with await mesh(tmp_path, store, wall) as h:
        error(await register(h, node), 403, "revoked")
        assert h.runtime.routing.router.node(node.node_id) is None
        # the row is written before the table takes the node (the store's write decides,
        # found 2026-12-05): a node new here never enters it
        assert h.table.get(node.node_id) is None
        assert node.node_id not in store.nodes
