"""The node agent's earnings call (what `llm-mesh node info` shows), against
httpx.MockTransport."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from LLM_Mesh.core.schemas import Heartbeat, NodeRegistration
from LLM_Mesh.node.agent import NodeAgent

REG = "http://registry.test"


def _earnings_agent(
    handler: Callable[[httpx.Request], httpx.Response], token: str | None
) -> NodeAgent:
    return NodeAgent(
        client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        registry_url=REG,
        node_id="node-a",
        registration=lambda: NodeRegistration(node_id="node-a", url="http://127.0.0.1:8801"),
        heartbeat=lambda: Heartbeat(),
        operator_token=token,
    )


async def test_earnings_asks_the_registry_for_this_node_with_the_operator_token() -> None:
    seen: list[httpx.Request] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "earnings", "node": "node-a"})

    agent = _earnings_agent(registry, "lmo_secret")
    assert await agent.earnings(days=7) == {"object": "earnings", "node": "node-a"}
    (req,) = seen
    assert req.url.path == "/v1/earnings"
    assert dict(req.url.params) == {"node": "node-a", "days": "7"}
    assert req.headers["authorization"] == "Bearer lmo_secret"


async def test_earnings_errors_say_what_went_wrong() -> None:
    from LLM_Mesh.errors import InvalidCredential, RegistryUnreachable, UpstreamError

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RegistryUnreachable, match="unreachable"):
        await _earnings_agent(down, "t").earnings()

    def refuses(_r: httpx.Request) -> httpx.Response:
        err = {"message": "unknown operator token", "type": "x", "code": "invalid_credential"}
        return httpx.Response(401, json={"error": err})

    with pytest.raises(InvalidCredential, match="unknown operator token"):
        await _earnings_agent(refuses, "t").earnings()

    def odd(_r: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[1, 2])

    with pytest.raises(UpstreamError):
        await _earnings_agent(odd, "t").earnings()

    with pytest.raises(InvalidCredential, match="no operator token"):
        await _earnings_agent(odd, None).earnings()
