"""The node signs a receipt of every answer it gives (non-stream and stream), over the text
the answer carries, for the gateway whose signed request it answered."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.answer_text import answer_text, output_sha256, stream_text
from LLM_Mesh.core.identity import node_id_for
from LLM_Mesh.core.receipt import node_receipt_bytes, unb64url
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.service import NodeService
from tests.node.conftest import MODEL, node_config, sim_engine, wait_until
from tests.node.test_gateway_guard import CHAT, Registry, _post, _raw


@pytest.fixture
def registry() -> Registry:
    return Registry(Ed25519PrivateKey.generate())


@pytest.fixture
async def registered(settings: Settings, registry: Registry) -> AsyncIterator[NodeService]:
    """A node registered with ``registry`` (it pinned the registry's key)."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(registry.handler))
    svc = NodeService(node_config(register=True), settings, engine=sim_engine(),
                      http_client=http, hardware=Hardware(cpu_count=2, memory_bytes=1 << 30))  # fmt: skip
    await svc.start()
    await wait_until(lambda: svc.gateway.verifier is not None)
    yield svc
    await svc.stop()
    await http.aclose()


def assert_signed(receipt: dict[str, Any], svc: NodeService, text: str, usage: dict[str, Any],
                  *, request_id: str, registry_id: str) -> None:  # fmt: skip
    assert receipt["v"] == 1
    assert receipt["node_id"] == svc.node_id == node_id_for(unb64url(receipt["node_key"]))
    assert receipt["request_id"] == request_id and receipt["registry_id"] == registry_id
    assert receipt["model"] == MODEL
    assert receipt["prompt_tokens"] == usage["prompt_tokens"] > 0
    assert receipt["completion_tokens"] == usage["completion_tokens"] > 0
    assert receipt["output_sha256"] == output_sha256(text) and text
    data = node_receipt_bytes(registry_id, svc.node_id, request_id, MODEL, usage["prompt_tokens"],
                              usage["completion_tokens"], output_sha256(text))  # fmt: skip
    key = Ed25519PublicKey.from_public_bytes(unb64url(receipt["node_key"]))
    key.verify(unb64url(receipt["signature"]), data)  # raises when it does not verify


def sse_data(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("data: {")]


async def test_a_whole_answer_carries_the_nodes_receipt_for_the_gateway(
    registered: NodeService, registry: Registry
) -> None:
    body = _raw(CHAT)
    r = await _post(registered, body, registry.headers(registered.node_id, body, rid="req-7"))
    assert r.status_code == 200, r.text
    data = r.json()
    assert_signed(data["mesh"]["receipt"], registered, answer_text(data), data["usage"],
                  request_id="req-7", registry_id=registry.signer.registry_id)  # fmt: skip
    assert data["mesh"]["request_id"] == "req-7"


async def test_a_streams_final_chunk_carries_the_receipt_of_the_streamed_text(
    registered: NodeService, registry: Registry
) -> None:
    body = _raw({**CHAT, "stream": True})
    r = await _post(registered, body, registry.headers(registered.node_id, body, rid="req-8"))
    assert r.status_code == 200
    lines = sse_data(r.text)
    final = json.loads(lines[-1][len("data: ") :])
    text, chunks = stream_text(lines)
    assert chunks > 0
    assert_signed(final["mesh"]["receipt"], registered, text, final["usage"],
                  request_id="req-8", registry_id=registry.signer.registry_id)  # fmt: skip


async def test_a_completion_with_echo_signs_what_it_sent(client: httpx.AsyncClient,
                                                          service: NodeService) -> None:  # fmt: skip
    body = {"model": MODEL, "prompt": "def f(n):", "max_tokens": 6, "echo": True}
    r = await client.post("/v1/completions", json=body, headers={"X-Request-Id": "c-1"})
    data = r.json()
    assert answer_text(data).startswith("def f(n):")
    # a standalone node (no registry) signs for no gateway: registry_id ""
    assert_signed(data["mesh"]["receipt"], service, answer_text(data), data["usage"],
                  request_id="c-1", registry_id="")  # fmt: skip
    r = await client.post("/v1/completions", json={**body, "stream": True},
                          headers={"X-Request-Id": "c-2"})  # fmt: skip
    lines = sse_data(r.text)
    final = json.loads(lines[-1][len("data: ") :])
    text, _ = stream_text(lines)
    assert text.startswith("def f(n):")
    assert_signed(final["mesh"]["receipt"], service, text, final["usage"],
                  request_id="c-2", registry_id="")  # fmt: skip


async def test_without_a_request_id_the_receipt_names_the_answers_id(
    client: httpx.AsyncClient, service: NodeService
) -> None:
    r = await client.post("/v1/chat/completions", json=CHAT)
    data = r.json()
    assert data["mesh"]["receipt"]["request_id"] == data["id"]
    assert_signed(data["mesh"]["receipt"], service, answer_text(data), data["usage"],
                  request_id=data["id"], registry_id="")  # fmt: skip


async def test_a_stream_that_fails_carries_no_receipt(settings: Settings) -> None:
    from tests.node.conftest import asgi_client, sim_engine, started_service

    svc = await started_service(settings, engine=sim_engine(failure_rate=1.0))
    try:
        async with asgi_client(svc) as c:
            r = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert "receipt" not in r.text
    finally:
        await svc.stop()
