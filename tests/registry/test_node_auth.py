"""Node identity at the registry (``registry/node_auth.py`` + ``api.py``): every attack of
docs/security.md's table is refused with its 401/403 and changes nothing.

Each test runs the registry's real ``SignedNodeAuth`` on a ``MemoryStore``; nodes are
``core.identity.NodeSigner``s on a wall clock the test drives."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from LLM_Mesh.core.identity import (
    HDR_NODE,
    HDR_OPERATOR_TOKEN,
    MessageKind,
    NodeSigner,
    hash_secret,
)
from LLM_Mesh.core.schemas import NodeRegistration
from LLM_Mesh.node.agent_wire import registration_body
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import SeqResult
from tests.keyed import held_account, operator_account
from tests.registry.helpers import registration, running
from tests.registry.node_auth_mesh import (
    NOW,
    Node,
    RevokedMeanwhile,
    Wall,
    beat,
    error,
    make_node,
    mesh,
    operator,
    paid_to,
    register,
    snapshot,
)

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


async def test_a_registration_relayed_with_another_operators_token_claims_nothing(
    tmp_path: Path,
) -> None:
    """The node's signature covers the body, not the operator token header: whoever sees
    the registration on its way (plain http, a proxy, a registry of another mesh within the
    120 s window) sends it first with their own token, and the node's key, its answers and
    its uptime would be their operator's (found 2026-12-05, attack32b). The node signs the
    token's SHA-256 into the body (``agent_wire.registration_body``): the swap is a 401."""
    store, wall = MemoryStore(), Wall()
    alice, mallory = await operator(store), await operator(store, "mallory")
    node = make_node(wall, alice)
    reg = NodeRegistration.model_validate(registration(node.node_id))
    body = registration_body(reg, alice)
    assert json.loads(body)["operator_token_sha256"] == hash_secret(alice)
    assert registration_body(reg, f" {alice}\t") == body  # read as the registry reads it
    async with await mesh(tmp_path, store, wall) as h:
        before = snapshot(h)
        swapped = {**node.reg_headers(body), HDR_OPERATOR_TOKEN: mallory}
        error(await h.client.post("/mesh/nodes", content=body, headers=swapped), 401,
              "invalid_credential")  # fmt: skip
        without = {k: v for k, v in swapped.items() if k != HDR_OPERATOR_TOKEN}
        error(await h.client.post("/mesh/nodes", content=body, headers=without), 401,
              "invalid_credential")  # fmt: skip
        assert snapshot(h) == before  # nothing claimed, stored or routed
        r = await h.client.post("/mesh/nodes", content=body, headers=node.reg_headers(body))
        assert r.status_code == 200, r.text
        assert r.json()["operator"] == "alice"
        assert h.store.node_keys[node.node_id].operator == "alice"
        # an older node (no field): its header alone, as before
        older = make_node(wall, mallory)
        assert (await register(h, older)).status_code == 200


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

        assert await paid_to(h, await ask(spare)) == ("settle", operator_account("alice"))
        q = h.runtime.quality
        assert q is not None
        at = datetime.now(timezone.utc)
        await store.record_canary(liar.node_id, "gemma-3-270m", ok=False, reason="canary", at=at)
        await QualityWatcher(q).poll()
        assert await paid_to(h, await ask(spare)) == ("hold", held_account(spare.node_id))
        assert await paid_to(h, await ask(bobs)) == ("settle", operator_account("bob"))
        await store.clear_quarantine(liar.node_id, at)  # the admin's CLI, on the store
        await QualityWatcher(q).poll()
        assert await paid_to(h, await ask(spare)) == ("settle", operator_account("alice"))


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
