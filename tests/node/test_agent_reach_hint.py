"""A node whose registry URL reaches a server spoken to wrongly says what to change (found
2026-12-03 walking docs/deploy.md: ``--registry http://...`` for replicas serving https logged
``registry unreachable at ...: RemoteProtocolError('Server disconnected without sending a
response.')`` every heartbeat, and nothing of https)."""

from __future__ import annotations

import httpx

from LLM_Mesh.core.schemas import Heartbeat, HostedModel, NodeRegistration
from LLM_Mesh.node.agent import NodeAgent


def _agent(url: str | list[str], exc: type[httpx.TransportError], said: str) -> NodeAgent:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc(said, request=request)

    return NodeAgent(
        client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        registry_url=url,
        node_id="n",
        registration=lambda: NodeRegistration(
            node_id="n", url="http://x:1", models=[HostedModel(id="m")]
        ),
        heartbeat=Heartbeat,
    )


async def test_an_http_url_for_https_replicas_says_https() -> None:
    agent = _agent(["http://r1.test:8800", "http://r2.test:8800"], httpx.RemoteProtocolError,
                   "Server disconnected without sending a response.")  # fmt: skip
    assert not await agent.register()
    assert "https://" in (agent.last_error or "") and "--tls-cert" in (agent.last_error or "")


async def test_an_untrusted_certificate_names_the_ca_option() -> None:
    agent = _agent("https://r1.test:8800", httpx.ConnectError,
                   "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")  # fmt: skip
    assert not await agent.register()
    assert "LLM_MESH_REGISTRY_CA" in (agent.last_error or "")


async def test_a_refused_connection_gets_no_hint() -> None:
    agent = _agent("http://r1.test:8800", httpx.ConnectError, "connection refused")
    assert not await agent.register()
    assert "https" not in (agent.last_error or "") and "CA" not in (agent.last_error or "")
