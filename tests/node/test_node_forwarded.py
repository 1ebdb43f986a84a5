"""Whose ``X-Forwarded-For`` a node believes: nobody's (found 2026-12-06, attack35).

A node's operator endpoints (``/mesh/info``, ``/mesh/earnings``, ``/mesh/admin/*``) and a
standalone node's ``/v1`` answer loopback clients only (``node/operator_only.py``,
``node/gateway_guard.py``). The client address they go by is what uvicorn puts in the
ASGI scope, and uvicorn's default (``proxy_headers=True``) rewrites it from
``X-Forwarded-For`` for any peer that ``$FORWARDED_ALLOW_IPS`` names (loopback when
unset). That variable is read from the node's environment: ``*`` in many container
images and in uvicorn's own deployment advice, or a registry's balancer set for
``registry serve`` in an environment ``llm-mesh up`` or a shared service file hands the
node too. With it, anyone who reached the node's port and sent ``X-Forwarded-For:
127.0.0.1`` was the node's operator: paused or drained it, read its hardware and
counters, or ran a standalone node's inference.

Here the very config ``NodeManager.serve`` runs is loaded as uvicorn loads it (its
middleware included), in front of a started sim node, and a stranger's forged header is
sent through it. Each assertion failed before the fix (``/mesh/info`` and the pause 200,
the node paused; the standalone node's ``/v1`` 200)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.node_manager import NodeManager
from tests.node.conftest import MODEL, NODE_URL, node_config

STRANGER = ("203.0.113.9", 40000)  # anyone on the network
FORGED = {"X-Forwarded-For": "127.0.0.1"}


@pytest.fixture(params=["*", "203.0.113.9"], ids=["star", "one_peer"])
async def manager(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[NodeManager]:
    """A started standalone sim node whose environment trusts the stranger's headers (as
    uvicorn would read it: ``*``, or the stranger's own address as a balancer's)."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", request.param)
    mgr = NodeManager(node_config(register=False), Settings(home=tmp_path / "home"))
    await mgr.service.start()
    try:
        yield mgr
    finally:
        await mgr.service.stop()


def _client(mgr: NodeManager, peer: tuple[str, int]) -> httpx.AsyncClient:
    config = mgr.uvicorn_config()
    config.load()  # the app uvicorn serves: its proxy-headers middleware, if any, included
    transport = httpx.ASGITransport(app=config.loaded_app, client=peer)
    return httpx.AsyncClient(transport=transport, base_url=NODE_URL)


async def test_a_forged_forwarded_for_does_not_make_a_stranger_the_operator(
    manager: NodeManager,
) -> None:
    async with _client(manager, STRANGER) as c:
        for path in ("/mesh/info", "/mesh/earnings"):
            r = await c.get(path, headers=FORGED)
            assert r.status_code == 403 and "hardware" not in r.text, (path, r.status_code)
        for action in ("pause", "drain"):
            r = await c.post(f"/mesh/admin/{action}", headers=FORGED)
            assert r.status_code == 403, (action, r.status_code)
        assert manager.service.health()["state"] == "online"
        # the public endpoint still answers anyone
        assert (await c.get("/mesh/health", headers=FORGED)).status_code == 200


async def test_a_forged_forwarded_for_gets_no_inference_from_a_standalone_node(
    manager: NodeManager,
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    headers = {**FORGED, "Content-Type": "application/json"}
    async with _client(manager, STRANGER) as c:
        r = await c.post("/v1/chat/completions", content=json.dumps(body), headers=headers)
        assert r.status_code == 401 and "loopback clients only" in r.text, r.status_code


async def test_a_proxy_on_the_nodes_machine_still_names_its_client(manager: NodeManager) -> None:
    """(no attack; what the fix keeps) a reverse proxy on the node's own machine (a loopback
    peer) that sets ``X-Forwarded-For`` (docs/operations.md) names its remote client, who is
    not the operator, even when that client sent its own ``127.0.0.1`` first (nginx's
    ``$proxy_add_x_forwarded_for`` appends the peer: the last entry counts); the operator's
    own tools on loopback, sending no such header, are the operator."""
    async with _client(manager, ("127.0.0.1", 5000)) as c:
        assert (await c.get("/mesh/info")).status_code == 200
        for forwarded in ("198.51.100.4", "127.0.0.1, 198.51.100.4"):
            r = await c.get("/mesh/info", headers={"X-Forwarded-For": forwarded})
            assert r.status_code == 403 and "hardware" not in r.text, forwarded
