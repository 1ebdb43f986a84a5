"""``node/control.py``: the registry's quality view of a node (for ``llm-mesh node info``)."""

from __future__ import annotations

import httpx

from LLM_Mesh.node.control import registry_quality


def client_for(handler: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


async def test_registry_quality_picks_the_node_and_its_quality_fields() -> None:
    listing = {
        "nodes": [
            {"node_id": "other", "trust_score": 1.0},
            {
                "node_id": "me", "url": "hidden", "trust_score": 0.0, "trusted": False,
                "canary_passed": 1, "canary_failed": 1,
                "quarantined": [{"model": "m", "since": "t", "reason": "canary: token"}],
            },
        ]
    }  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/mesh/nodes"
        return httpx.Response(200, json=listing)

    async with client_for(handler) as c:
        q = await registry_quality(c, "http://reg/", "me")
    assert q == {
        "trust_score": 0.0, "trusted": False, "canary_passed": 1, "canary_failed": 1,
        "quarantined": [{"model": "m", "since": "t", "reason": "canary: token"}],
    }  # fmt: skip


async def test_registry_quality_is_none_when_it_cannot_be_had() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"nodes": [{"node_id": "else"}]})

    for handler in (down, not_json, missing):
        async with client_for(handler) as c:
            assert await registry_quality(c, "http://reg", "me") is None


async def test_registry_quality_keeps_whether_the_node_is_a_verifier() -> None:
    """Found 2026-12-07 (newuser41): after ``llm-mesh registry nodes trust NODE`` (the node a
    canary verifier), ``llm-mesh node info`` on it said ``trust 0.50 (not trusted)`` and
    nothing of its role (``llm-mesh status`` says ``verifier``): the field was dropped here."""
    listing = {"nodes": [{"node_id": "me", "trust_score": 0.5, "trusted": False, "verifier": True}]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=listing)

    async with client_for(handler) as c:
        q = await registry_quality(c, "http://reg", "me")
    assert q is not None and q["verifier"] is True


async def test_another_node_is_refused_and_a_silent_one_left_to_the_command() -> None:
    """``refuse_another_node``: a node of another id at the URL is a ``MeshError`` naming
    both ids and ``--node-url``; the expected one, one that says no id, or none answering
    (the command's own call then says "no node answers") pass (newuser41)."""
    import pytest

    from LLM_Mesh.errors import MeshError
    from LLM_Mesh.node.control import refuse_another_node

    def answering(node_id: object) -> httpx.AsyncClient:
        return client_for(lambda r: httpx.Response(200, json={"node_id": node_id}))

    async with answering("node-b") as c:
        with pytest.raises(MeshError, match="is node-b, not this home's node node-a") as e:
            await refuse_another_node(c, "http://127.0.0.1:8801", "node-a")
    assert "--node-url http://127.0.0.1:8801" in e.value.message
    for node_id in ("node-a", None):
        async with answering(node_id) as c:
            await refuse_another_node(c, "http://127.0.0.1:8801", "node-a")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with client_for(down) as c:
        await refuse_another_node(c, "http://127.0.0.1:8801", "node-a")
