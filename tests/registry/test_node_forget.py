"""Nodes gone for long leave the node table and every listing (``registry/node_forget.py``;
found 2026-12-06, attack33: churned node ids stayed for ever, 10,000 of them a 6.6 MB public
``GET /mesh/nodes``); the store keeps them for the admin, their keys and revocations."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from LLM_Mesh.core.identity import HDR_OPERATOR_TOKEN, MessageKind, NodeSigner
from LLM_Mesh.core.tls import NodeTransport
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.openapi import NodeList
from LLM_Mesh.registry.snapshot import load_nodes
from tests.registry.helpers import ADMIN, Harness, make_settings, running
from tests.registry.node_auth_mesh import Wall, beat, error, make_node, mesh, operator, register
from tests.registry.test_shared_idempotency import two_replicas

DAY = 86400.0


async def _no_poll(h: Harness) -> None:
    """Stop the replicas' node poll: the tests' wall clock does not move with the table's,
    so its 1 s poll would read rows written seconds ago as new and bring a forgotten node
    back (a day in earnest: a row unchanged since is not read again, as the replica test
    shows with rows dated a day back)."""
    await h.app.state.node_sync.stop()


async def _listed(h: Harness) -> set[str]:
    r = await h.client.get("/mesh/nodes")
    assert r.status_code == 200, r.text
    return {n["node_id"] for n in r.json()["nodes"]}


async def _hosts(h: Harness) -> str:
    """``GET /mesh/models``'s body: a custom model is listed while a known node hosts it."""
    r = await h.client.get("/mesh/models")
    assert r.status_code == 200, r.text
    return r.text


async def test_departed_ids_past_the_bound_leave_the_table_and_the_listing(
    tmp_path: Path,
) -> None:
    """Goodbyes, revocations and silences a day old are forgotten at the next health pass;
    a live node and one offline for an hour stay; the admin's ``?all=true`` still lists
    every stored one (the revoked as revoked); a forgotten id registers again normally."""
    async with running(tmp_path) as h:
        await _no_poll(h)
        gone = [f"gone-{i}" for i in range(30)]
        for node_id in gone:
            await h.register(node_id, ["gone-model"])
        for node_id in gone[:10]:  # goodbyes
            assert (await h.client.delete(f"/mesh/nodes/{node_id}")).status_code == 204
        for node_id in gone[10:20]:  # revoked (as the revocation watcher marks them)
            h.table.revoke(node_id)
        h.clock.advance(DAY + 1)  # gone[20:]: silent for a day
        await h.register("live")
        await h.register("recent")
        h.clock.advance(3600)
        assert (await h.client.post("/mesh/nodes/live/heartbeat", json={})).status_code == 200
        assert (await h.client.delete("/mesh/nodes/recent")).status_code == 204
        assert len(await _listed(h)) == 32 and "gone-model" in await _hosts(h)
        h.app.state.health.upkeep()
        assert await _listed(h) == {"live", "recent"}
        assert {e.node_id for e in h.table.entries()} == {"live", "recent"}
        assert "gone-model" not in await _hosts(h)
        assert all(h.runtime.routing.router.node(n) is None for n in gone)
        # the admin still sees every stored node
        error(await h.client.get("/mesh/nodes?all=true"), 401, "invalid_credential")
        r = await h.client.get("/mesh/nodes?all=true", headers=ADMIN)
        rows = {n["node_id"]: n for n in r.json()["nodes"]}
        assert set(rows) == {*gone, "live", "recent"}
        assert all(rows[n]["forgotten"] is True for n in gone)
        assert rows["gone-0"]["state"] == "offline" and rows["gone-25"]["state"] == "online"
        assert "forgotten" not in rows["live"]
        # a forgotten node that said goodbye: register again; it is judged as any
        r = await h.client.post("/mesh/nodes/gone-0/heartbeat", json={})
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_node"
        await h.register("gone-0", ["gone-model"])
        # one that fell silent, its row still online: its (checked) heartbeat reloads it
        # from the store, as after a restart
        assert (await h.client.post("/mesh/nodes/gone-25/heartbeat", json={})).status_code == 200
        assert {"gone-0", "gone-25"} <= await _listed(h) and "gone-model" in await _hosts(h)


async def test_every_row_of_the_admins_whole_listing_says_silent_as_documented(
    tmp_path: Path,
) -> None:
    """Found 2026-12-07 (cli42): ``?all=true``'s rows of forgotten nodes had no ``silent``
    while the live rows beside them carry it (a client reading it took a forgotten node
    for one not known to be silent), and the OpenAPI document said every row is a
    ``NodeView`` (its ``state`` a node state, ``models`` objects), which a forgotten row is
    not. Now a forgotten row is ``silent: true`` (not heard here within the expiry: never,
    since it was forgotten) and the document names its shape (``ForgottenNode``)."""
    async with running(tmp_path) as h:
        await _no_poll(h)
        await h.register("gone", ["gone-model"])
        h.clock.advance(DAY + 1)
        await h.register("live")
        h.app.state.health.upkeep()
        r = await h.client.get("/mesh/nodes?all=true", headers=ADMIN)
        assert r.status_code == 200, r.text
        rows = {n["node_id"]: n for n in r.json()["nodes"]}
        assert rows["gone"]["forgotten"] is True and rows["gone"]["silent"] is True, rows
        assert rows["live"]["silent"] is False and "forgotten" not in rows["live"]
        shown = NodeList.model_validate(r.json())  # the OpenAPI document's NodeList
        assert {type(n).__name__ for n in shown.nodes} == {"NodeView", "ForgottenNode"}


async def test_a_forgotten_node_comes_back_with_its_key_and_a_revoked_one_stays_out(
    tmp_path: Path,
) -> None:
    """Forgetting keeps what the store decides: the node's own key registers it again, a
    registration of its id signed by another key is refused, a revoked key stays refused."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    node, revoked, thief = make_node(wall, token), make_node(wall, token), make_node(wall, token)
    async with await mesh(tmp_path, store, wall) as h:
        await _no_poll(h)
        for n in (node, revoked):
            assert (await register(h, n)).status_code == 200
        await store.revoke_node(revoked.node_id, datetime.now(timezone.utc))
        h.table.revoke(revoked.node_id)
        sent = node.headers(MessageKind.DEREGISTER, b"")  # its goodbye
        assert (await h.client.delete(f"/mesh/nodes/{node.node_id}", headers=sent)).is_success
        h.clock.advance(DAY + 1)
        h.app.state.health.upkeep()
        assert h.table.get(node.node_id) is None and h.table.get(revoked.node_id) is None
        r = await beat(h, node)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_node"
        error(await register(h, revoked), 403, "revoked")
        assert h.table.get(revoked.node_id) is None or h.table.get(revoked.node_id).revoked  # type: ignore[union-attr]
        assert revoked.node_id not in await _listed(h)
        r = await h.client.get("/mesh/nodes?all=true", headers=ADMIN)
        rows = {n["node_id"]: n for n in r.json()["nodes"]}
        assert rows[revoked.node_id]["state"] == "revoked" and rows[revoked.node_id]["revoked"]
        NodeList.model_validate(r.json())  # the OpenAPI document's shape (cli42)
        body = node.body()
        forged = NodeSigner.__new__(NodeSigner)
        forged.__dict__.update(thief.signer.__dict__)
        forged.node_id = node.node_id
        headers = forged.headers(MessageKind.REGISTER, body)
        headers[HDR_OPERATOR_TOKEN] = token
        r = await h.client.post("/mesh/nodes", content=body, headers=headers)
        assert r.status_code in (401, 403), r.text
        assert h.table.get(node.node_id) is None
        assert (await register(h, node)).status_code == 200
        assert (await beat(h, node)).status_code == 200
        assert node.node_id in await _listed(h)


async def test_a_start_leaves_out_the_stored_nodes_past_the_bound(tmp_path: Path) -> None:
    """``load_nodes`` (a restart, a new replica) does not load ids gone for long: a table
    starts with the nodes heard lately only, whatever the store has seen."""
    store = MemoryStore()
    async with running(tmp_path, store=store) as h:
        await h.register("old")
        await h.register("new")
        assert (await h.client.delete("/mesh/nodes/old")).status_code == 204
    # a day passes, on the store's clock too (its stamps judge, forget42); "new" heard since
    # by a replica of the older version (its wall stamp, no store stamp: the wall clock's)
    store.store_clock = lambda: time.time() + DAY + 60
    store.nodes["new"].last_heartbeat_at = datetime.now(timezone.utc) + timedelta(days=1)
    later = datetime.now(timezone.utc) + timedelta(days=1, seconds=60)
    table = NodeTable(expiry_s=30.0)
    await load_nodes(table, store, transport=_transport(), forget_s=DAY, wall_now=later)
    assert [e.node_id for e in table.entries()] == ["new"]
    everything = NodeTable(expiry_s=30.0)
    await load_nodes(everything, store, transport=_transport(), wall_now=later)
    assert len(everything) == 2


def _transport() -> NodeTransport:
    return make_settings(Path("/tmp")).node_transport


async def test_a_replica_s_node_poll_does_not_bring_a_forgotten_node_back(tmp_path: Path) -> None:
    """Every replica forgets by the same rule; a row unchanged for a day is not read again by
    the node poll (it reads what changed since its last poll), so a goodbye's or a silent
    node's row brings neither back; its registration again at one replica reaches the other."""
    async with two_replicas(tmp_path) as (a, b):
        await _no_poll(a)
        sync = b.app.state.node_sync
        await sync.stop()  # the test polls b itself
        for node_id in ("n1", "n2"):
            await a.register(node_id)
        await sync.poll()
        assert (await a.client.delete("/mesh/nodes/n1")).status_code == 204
        await sync.poll()
        assert b.table.get("n1").state.value == "offline" and "n2" in b.table  # type: ignore[union-attr]
        day = timedelta(seconds=DAY + 10)  # a day passes: the rows were written a day ago
        for node_id in ("n1", "n2"):
            a.store.changed_at[node_id] -= day
            a.store.nodes[node_id].last_heartbeat_at -= day  # type: ignore[operator]
        for h in (a, b):
            h.clock.advance(DAY + 10)
            h.app.state.health.upkeep()
        await sync.poll()
        assert len(a.table) == len(b.table) == 0
        assert await _listed(b) == set()
        await a.register("n1")
        await sync.poll()
        assert b.table.healthy(b.table.get("n1"))  # type: ignore[arg-type]
        assert await _listed(b) == {"n1"}


async def test_forgetting_frees_no_node_of_its_quarantine_or_revocation(tmp_path: Path) -> None:
    """attack34: a node judged (quarantined for its model, or revoked) that falls silent
    for a day and comes back, by a registration or by a heartbeat that reloads its stored
    row, comes back judged: the quarantine and the revocation are the store's, not the
    forgotten entry's. The quarantined node is registered again but routed nothing for the
    model; the revoked one's heartbeat is 403 and does not bring it back."""
    store, wall = MemoryStore(), Wall()
    token = await operator(store)
    liar, revoked = make_node(wall, token), make_node(wall, token)
    async with await mesh(tmp_path, store, wall) as h:
        await _no_poll(h)
        q = h.runtime.quality
        assert q is not None
        for n in (liar, revoked):
            h.nodes.add(n.node_id)
            assert (await register(h, n)).status_code == 200
        model = "gemma-3-270m"
        await q.record(liar.node_id, model, ok=False, reason="canary")
        await store.revoke_node(revoked.node_id, datetime.now(timezone.utc))
        h.table.revoke(revoked.node_id)
        h.clock.advance(DAY + 1)
        h.app.state.health.upkeep()
        assert h.table.get(liar.node_id) is None and h.table.get(revoked.node_id) is None
        error(await beat(h, revoked), 403, "revoked")  # its stored row is still online
        assert h.table.get(revoked.node_id) is None
        assert (await register(h, liar)).status_code == 200
        assert (await beat(h, liar)).status_code == 200
        st = h.runtime.routing.router.node(liar.node_id)
        assert st is not None and model not in st.models  # still quarantined for it
        body = {"model": model, "prompt": "hi", "allow_nodes": [liar.node_id]}
        r = await h.client.post("/v1/completions", json=body)
        assert r.status_code >= 400, r.text  # no node for it: the liar is not one


async def test_no_stranger_makes_a_live_node_quiet_or_gone(tmp_path: Path) -> None:
    """attack34: forgetting someone else's node. Another operator's key signs a goodbye and
    heartbeats for the victim's id (the goodbye would make it OFFLINE, heartbeats refused
    would leave it quiet): each is refused, the victim's own heartbeats still count, and a
    day of them later no health pass forgets it."""
    store, wall = MemoryStore(), Wall()
    alice, mallory = await operator(store), await operator(store, "mallory")
    victim, thief = make_node(wall, alice), make_node(wall, mallory)
    async with await mesh(tmp_path, store, wall) as h:
        await _no_poll(h)
        for n in (victim, thief):
            h.nodes.add(n.node_id)
            assert (await register(h, n)).status_code == 200
        forged = NodeSigner.__new__(NodeSigner)
        forged.__dict__.update(thief.signer.__dict__)
        forged.node_id = victim.node_id
        for _ in range(2):
            sent = forged.headers(MessageKind.DEREGISTER, b"")
            r = await h.client.delete(f"/mesh/nodes/{victim.node_id}", headers=sent)
            assert r.status_code in (401, 403), r.text
            body = b'{"in_flight": 0}'
            sent = forged.headers(MessageKind.HEARTBEAT, body)
            r = await h.client.post(
                f"/mesh/nodes/{victim.node_id}/heartbeat", content=body, headers=sent
            )
            assert r.status_code in (401, 403), r.text
            h.clock.advance(DAY / 2 + 1)
            assert (await beat(h, victim)).status_code == 200
            h.app.state.health.upkeep()
        entry = h.table.get(victim.node_id)
        assert entry is not None and entry.state.value == "online"
        assert h.table.get(thief.node_id) is None  # quiet for a day itself: forgotten
        assert victim.node_id in await _listed(h)


def test_a_forgotten_row_of_a_state_this_version_does_not_know_is_listed() -> None:
    """Found 2026-12-07 (review42): since cli42 a forgotten row is a ``ForgottenNode``
    whose ``state`` was ``NodeState(r.state)``: a stored state this version does not know
    (written by a newer replica on the same database, or by hand) raised ``ValueError``,
    and the admin's ``GET /mesh/nodes?all=true`` failed with 500 for every row (before,
    the stored string was passed on). Read as ``offline``, as the node poll and the
    snapshot read it (``NodeState.stored``)."""
    from LLM_Mesh.registry.node_forget import stored_rows
    from LLM_Mesh.registry.ports import NodeRecord

    at = datetime(2026, 12, 7, tzinfo=timezone.utc)
    rec = NodeRecord(
        "later", "http://n.test", None, [{"id": "m"}], {}, 1, 1, "9", "retired", at, at
    )
    (row,) = stored_rows([rec], revoked=[], listed=[])
    assert row["state"] == "offline" and row["forgotten"] is True, row
    NodeList.model_validate({"object": "list", "nodes": [row]})
