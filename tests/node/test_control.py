"""``node/control.py``: the registry's quality view of a node (for ``llm-mesh node info``)."""

from __future__ import annotations

import httpx

from LLM_Mesh.node.control import first_demand, measured_speeds, registry_quality


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


async def test_measured_speeds_says_a_node_that_did_not_answer_in_time() -> None:
    """A node that took the request and did not answer within the bound: no speeds, and a
    line saying so (found 2026-12-07: ``node plan`` waited, unsaid); one that refused the
    connection, or answered otherwise: no speeds and nothing said, as before."""

    def hung(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with client_for(hung) as c:
        speeds, note = await measured_speeds(c, "http://127.0.0.1:8801/", deadline_s=0.5)
    assert speeds is None
    assert note.startswith("the node at http://127.0.0.1:8801/ did not answer within 0.5 s")
    for handler in (refused, lambda _r: httpx.Response(403), lambda _r: httpx.Response(200)):
        async with client_for(handler) as c:
            assert await measured_speeds(c, "http://127.0.0.1:8801") == (None, "")
    info = {"models": [{"id": "m", "measured": {"answers": 1}}, {"id": 3}, "x"]}
    async with client_for(lambda _r: httpx.Response(200, json=info)) as c:
        assert await measured_speeds(c, "http://n") == ({"m": {"answers": 1}}, "")


async def test_first_demand_is_the_first_replica_that_answers_it() -> None:
    demand = {"models": [{"model": "m", "requests_waiting": 1, "requests_refused": 0,
                          "nodes_serving": 0}]}  # fmt: skip
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host == "b":
            return httpx.Response(200, json=demand)
        return httpx.Response(404)

    async with client_for(handler) as c:
        found, note = await first_demand(c, ["http://a", "http://b", "http://c"])
        assert found is not None and "m" in found and note.startswith("demand from http://b")
        assert asked == ["a", "b"]
        found, note = await first_demand(c, ["http://a"])
        assert found is None and "does not publish demand" in note
        assert await first_demand(c, []) == (None, "no demand data: no registry")


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
