"""POST /mesh/nodes and plain HTTP off loopback (found 2026-12-04): a registry refuses a node
whose URL is ``http://`` on another machine (403 ``plain_http_remote``, saying what to do)
unless started with ``--allow-plain-http-nodes``; loopback nodes and https nodes register
as before; a remote plain-http node stored before the upgrade is not routed to, and its
heartbeat sends it to register again, where it hears the 403."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import FakeNode, FakeNodes, make_settings, registration, running

CHAT = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


async def _loopback_resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"] if host == "localhost" else ["93.184.216.34"]


def _assert_plain_http_remote(body: dict[str, object]) -> None:
    err = body["error"]
    assert isinstance(err, dict)
    assert err["type"] == "permission_error"
    assert err["param"] == "url"
    assert err["reason"] == "plain_http_remote"
    message = str(err["message"])
    # a node logs at most 600 characters of it (node/agent_wire.refusal): the whole advice
    assert len(message) <= 600
    # what the node's operator does, and what the registry's operator may do instead
    assert "llm-mesh node tls init" in message
    assert "--tls-cert" in message and "--tls-key" in message
    assert "llm-mesh registry serve --allow-private-node <its url>" in message
    assert "--allow-plain-http-nodes" in message
    assert "LLM_MESH_ALLOW_PLAIN_HTTP_NODES=1" in message


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("http://n1:8801", {}),
        ("http://n1.example.com:8801", {}),
        ("http://10.0.0.5:8801", {"allow_private_nodes": True}),  # a LAN: still in clear
        ("http://[2001:db8::5]:8801", {"allow_private_nodes": True}),
    ],
)
async def test_remote_plain_http_node_refused_by_default(
    tmp_path: Path, url: str, extra: dict[str, bool]
) -> None:
    async with running(tmp_path, allow_plain_http_nodes=False, **extra) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", url=url))
        assert r.status_code == 403, r.text
        _assert_plain_http_remote(r.json())
        assert h.table.get("n1") is None
        assert await h.store.get_node("n1") is None


async def test_remote_plain_http_node_accepted_with_the_opt_out(tmp_path: Path) -> None:
    async with running(tmp_path, allow_plain_http_nodes=True) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1"))
        assert r.status_code == 200, r.text
        assert h.table.get("n1") is not None


async def test_remote_https_node_accepted_by_default(tmp_path: Path) -> None:
    async with running(tmp_path, allow_plain_http_nodes=False) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", url="https://n1.example"))
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8801",
        "http://127.0.0.2:8801",
        "http://[::1]:8801",
        "http://localhost:8801",
    ],
)
async def test_loopback_plain_http_node_accepted_by_default(tmp_path: Path, url: str) -> None:
    """Zero-config local use (``up``, ``demo``): a node on the registry's machine uses http."""
    async with running(
        tmp_path,
        allow_plain_http_nodes=False,
        allow_loopback_nodes=True,
        resolver=_loopback_resolver,
    ) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", url=url))
        assert r.status_code == 200, r.text


def test_require_tls_with_the_opt_out_is_refused_at_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, require_tls=True, allow_plain_http_nodes=True)
    with pytest.raises(ValueError, match="use one of them, not both"):
        create_registry_app(settings, store=MemoryStore())


async def test_stored_remote_plain_http_node_is_not_routed_and_told_on_return(
    tmp_path: Path,
) -> None:
    """A node registered at plain http on another machine before the upgrade (its row in the
    store): the upgraded registry without the opt-out neither routes to it nor takes its
    heartbeat (404: the node registers again), and the registration gets the 403 with what to
    do. With the opt-out it carries on."""
    store = MemoryStore()
    nodes = FakeNodes()
    nodes.add("n1")
    async with running(tmp_path, store=store, nodes=nodes, allow_plain_http_nodes=True) as h:
        assert (await h.client.post("/mesh/nodes", json=registration("n1"))).status_code == 200
        assert (await h.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200
        assert (await h.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    calls = nodes.calls()
    async with running(tmp_path, store=store, nodes=nodes, allow_plain_http_nodes=False) as h:
        assert h.table.get("n1") is None
        assert [v.node_id for v in h.runtime.routing.views()] == []
        r = await h.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code != 200, r.text
        assert nodes.calls() == calls  # never called
        r = await h.client.post("/mesh/nodes/n1/heartbeat", json={})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "unknown_node"
        assert h.table.get("n1") is None  # the heartbeat did not bring it back
        r = await h.client.post("/mesh/nodes", json=registration("n1"))
        assert r.status_code == 403, r.text
        _assert_plain_http_remote(r.json())
    async with running(tmp_path, store=store, nodes=nodes, allow_plain_http_nodes=True) as h:
        assert (await h.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 200
        assert (await h.client.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_a_replica_without_the_opt_out_does_not_route_another_ones_plain_http_node(
    tmp_path: Path,
) -> None:
    """Two replicas on one store, only the first with ``--allow-plain-http-nodes``: the
    second's node poll leaves the first's remote plain-http node out (and takes one it
    routed out when it re-registers there over plain http)."""
    nodes, shared, key = FakeNodes(), MemoryStore(), Ed25519PrivateKey.generate()
    kw = {"store": shared, "nodes": nodes, "gateway_key": key}
    async with (
        running(tmp_path / "a", allow_plain_http_nodes=True, **kw) as a,
        running(tmp_path / "b", allow_plain_http_nodes=False, **kw) as b,
    ):
        sync = b.app.state.node_sync
        await sync.stop()  # the test polls b itself
        await a.register("n1")  # http://n1:8801
        await a.register("n2", url="https://n2:8801")
        await sync.poll()
        assert b.table.get("n1") is None
        assert b.table.get("n2") is not None
        assert (await b.client.post("/mesh/nodes/n1/heartbeat", json={})).status_code == 404
        await a.register("n2", url="http://n2:8801")  # n2 moves to plain http at a
        await sync.poll()
        entry = b.table.get("n2")
        assert entry is not None and entry.state is NodeState.OFFLINE
        assert [v.state for v in b.runtime.routing.views()] == [NodeState.OFFLINE]
        calls = nodes.calls()
        assert (await b.client.post("/v1/chat/completions", json=CHAT)).status_code != 200
        assert nodes.calls() == calls


async def test_a_named_private_origin_may_be_plain_http(tmp_path: Path) -> None:
    """``registry serve --allow-private-node http://10.0.0.5:8801`` (as ``LocalMesh`` on a LAN
    address starts its registry for its own node): that node registers in plain http; another
    node on the same LAN is refused, for its address (not named) or for plain http."""
    origin = "http://10.0.0.5:8801"
    async with running(tmp_path, allow_plain_http_nodes=False, private_node_origins=(origin,)) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", url=origin))
        assert r.status_code == 200, r.text
        r = await h.client.post(
            "/mesh/nodes", json=registration("n2", url="http://n2.example:8801")
        )
        assert r.status_code == 403, r.text
        _assert_plain_http_remote(r.json())


async def test_localhost_is_loopback_only_where_it_resolves_there(tmp_path: Path) -> None:
    """Found 2026-12-04: ``http://localhost`` passed the plain-http rule by its name; a
    machine whose ``localhost`` resolves off loopback (an edited hosts file) sent prompts in
    clear. The addresses the registry resolved (and pins) decide now."""

    async def lan_localhost(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]

    async with running(
        tmp_path,
        allow_plain_http_nodes=False,
        allow_private_nodes=True,
        resolver=lan_localhost,
    ) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", url="http://localhost:8801"))
        assert r.status_code == 403, r.text
        _assert_plain_http_remote(r.json())
        assert h.table.get("n1") is None


async def test_a_stored_localhost_node_is_called_only_where_localhost_is_loopback(
    tmp_path: Path,
) -> None:
    """Found 2026-12-04 (review): a stored ``http://localhost`` row (a restart, another
    replica's node poll) passed the transport rule by its spelling, and its first connection
    was checked by its addresses alone: on a machine whose ``localhost`` resolves elsewhere,
    prompts went there in clear, where its registration hears 403 ``plain_http_remote``. The
    addresses resolved before that first connection decide now, as at registration: nothing
    is sent, and its health check fails saying why."""
    store, nodes = MemoryStore(), FakeNodes()
    nodes.nodes["localhost:8801"] = FakeNode("n1", "http://localhost:8801")
    kw = {"store": store, "nodes": nodes, "allow_plain_http_nodes": False}
    async with running(tmp_path, allow_loopback_nodes=True, resolver=_loopback_resolver, **kw) as h:
        r = await h.client.post("/mesh/nodes", json=registration("n1", url="http://localhost:8801"))
        assert r.status_code == 200, r.text

    async def hosts_file_elsewhere(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    async with running(tmp_path, resolver=hosts_file_elsewhere, **kw) as h:
        assert h.table.get("n1") is not None  # the row is loaded: no DNS at load
        calls = nodes.calls()
        r = await h.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code != 200, r.text
        assert nodes.calls() == calls  # never called
        result = await h.app.state.health.check(h.table.get("n1"))
        assert not result["ok"] and "plain_http_remote" in result["error"], result
        r = await h.client.post("/mesh/nodes/n1/heartbeat", json={})  # the node is told why
        assert r.status_code == 200, r.text
        why = r.json()["health"]["why"]
        assert "plain_http_remote" in why and "--allow-plain-http-nodes" in why, why
        r = await h.client.post("/mesh/nodes", json=registration("n1", url="http://localhost:8801"))
        assert r.status_code == 403, r.text
        _assert_plain_http_remote(r.json())
    # where ``localhost`` is this machine's loopback, the stored node is served as before
    async with running(tmp_path, allow_loopback_nodes=True, resolver=_loopback_resolver, **kw) as h:
        assert (await h.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert nodes.calls() == calls + 1
