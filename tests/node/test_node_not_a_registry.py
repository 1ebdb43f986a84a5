"""A client pointed at a node instead of its registry is told so (found 2026-12-05,
newuser32: ``llm-mesh up`` prints the node's URL beside the gateway's; ``llm-mesh status
--registry http://127.0.0.1:8801`` or ``LLM_MESH_REGISTRY_URL`` set to it said only
``error: Not Found``)."""

from __future__ import annotations

import httpx


async def test_a_registry_path_asked_of_a_node_names_the_mistake(client: httpx.AsyncClient) -> None:
    for path in ("/mesh/models", "/v1/balance", "/nope"):
        r = await client.get(path)
        assert r.status_code == 404, path
        err = r.json()["error"]
        assert err["code"] == "not_found", err
        message = err["message"]
        assert message.startswith(f"no endpoint GET {path} on this LLM Mesh node"), message
        assert "the registry's URL" in message and "LLM_MESH_REGISTRY_URL" in message, message


async def test_a_long_path_is_cut(client: httpx.AsyncClient) -> None:
    r = await client.get("/" + "y" * 5000)
    assert r.status_code == 404 and len(r.json()["error"]["message"]) < 600
