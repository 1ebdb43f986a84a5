"""Every JSON answer of the node (and its stream) carries ``X-Content-Type-Options:
nosniff`` once: a browser never reads one (model ids, echoed request text, errors) as
HTML or script."""

from __future__ import annotations

import httpx

from LLM_Mesh.core.limits import GATEWAY_MARGIN_BYTES
from LLM_Mesh.node.service import NodeService
from tests.node.conftest import MODEL, asgi_client

CHAT = "/v1/chat/completions"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 5}


async def test_the_nodes_json_answers_are_never_sniffed(
    client: httpx.AsyncClient, service: NodeService
) -> None:
    """Found 2026-12-03: only ``BodyLimit``'s 413 had it (``/v1`` answers and refusals,
    ``/mesh/health``, ``/mesh/info``, the 404s, ``/openapi.json``: none)."""
    too_large = b"x" * (service.config.max_body_bytes + GATEWAY_MARGIN_BYTES + 1)
    async with asgi_client(service, client=("203.0.113.9", 4321)) as remote:
        answers: dict[str, httpx.Response] = {
            "chat": await client.post(CHAT, json=BODY),
            "chat refused": await client.post(CHAT, json={**BODY, "model": "no-such-model"}),
            "chat bad json": await client.post(
                CHAT, content=b"{", headers={"content-type": "application/json"}
            ),
            "chat too large": await client.post(CHAT, content=too_large),
            "chat stream": await client.post(CHAT, json={**BODY, "stream": True}),
            "completions refused": await client.post("/v1/completions", json={"model": MODEL}),
            "models": await client.get("/v1/models"),
            "health": await client.get("/mesh/health"),
            "info": await client.get("/mesh/info"),
            "info refused": await remote.get("/mesh/info"),
            "admin unknown": await client.post("/mesh/admin/explode"),
            "admin pause": await client.post("/mesh/admin/pause"),
            "unknown route": await client.get("/mesh/no-such-thing"),
            "openapi": await client.get("/openapi.json"),
        }
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "chat": 200,
        "chat refused": 404,
        "chat bad json": 400,
        "chat too large": 413,
        "chat stream": 200,
        "completions refused": 400,
        "models": 200,
        "health": 200,
        "info": 200,
        "info refused": 403,
        "admin unknown": 400,
        "admin pause": 200,
        "unknown route": 404,
        "openapi": 200,
    }
    for name, r in answers.items():
        assert r.headers.get_list("x-content-type-options") == ["nosniff"], (name, r.headers)
