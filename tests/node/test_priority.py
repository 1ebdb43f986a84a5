"""Keyed requests first in a registered node's queue, as the gateway says so in what it
authenticates (``mesh_priority`` in the signed body: core/priority.py, node/app.py), and
the attacks: a client's own claim (a field sent straight to the node, a header, a field
added on the way, a standalone node's loopback client) gets no priority."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.priority import KEYED, PRIORITY_FIELD
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.engines.base import Delta, GenerationRequest
from LLM_Mesh.node.engines.sim import SimEngine
from LLM_Mesh.node.service import NodeService
from tests.node.conftest import MODEL, asgi_client, node_config, started_service, wait_until
from tests.node.test_gateway_guard import CHAT_PATH, REMOTE, Registry, registry

__all__ = ["registry"]  # the fixture


class Gated(SimEngine):
    """A sim engine that notes each generation's prompt as it starts, and holds the first
    until ``gate`` is set (the node busy with its one slot)."""

    def __init__(self) -> None:
        super().__init__([MODEL], ttft_s=0.0, tokens_per_s=1000.0, sleep=self._no_sleep)
        self.gate = asyncio.Event()
        self.started: list[str] = []

    async def _no_sleep(self, _s: float) -> None:
        await asyncio.sleep(0)

    async def stream(self, req: GenerationRequest, cancel: Any) -> AsyncIterator[Delta]:
        self.started.append(str((req.messages or [{}])[-1].get("content")))
        await self.gate.wait()
        async for d in super().stream(req, cancel):
            yield d


def chat(label: str, **extra: Any) -> bytes:
    body = {"model": MODEL, "messages": [{"role": "user", "content": label}], "max_tokens": 3}
    return json.dumps({**body, **extra}).encode()


@pytest.fixture
async def node(settings: Settings, registry: Registry) -> AsyncIterator[tuple[NodeService, Gated]]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(registry.handler))
    engine = Gated()
    svc = NodeService(node_config(register=True, max_concurrency=1, max_queue=8), settings,
                      engine=engine, http_client=http,
                      hardware=Hardware(cpu_count=2, memory_bytes=1 << 30))  # fmt: skip
    await svc.start()
    await wait_until(lambda: svc.gateway.verifier is not None)
    yield svc, engine
    engine.gate.set()
    await svc.stop()
    await http.aclose()


async def _queue_then_release(
    svc: NodeService,
    engine: Gated,
    sends: list[tuple[bytes, dict[str, str]]],
) -> list[int]:
    """Send each request in turn (the first holds the node's slot, the others queue), then
    let the node go on: the statuses, once every request ended."""
    async with asgi_client(svc, client=REMOTE) as c:
        tasks = []
        for i, (body, headers) in enumerate(sends):
            tasks.append(asyncio.create_task(c.post(CHAT_PATH, content=body, headers=headers)))
            await wait_until(lambda i=i: svc.admission.in_flight + svc.admission.queued > i)
        engine.gate.set()
        return [r.status_code for r in await asyncio.gather(*tasks)]


async def test_a_keyed_request_overtakes_the_anonymous_ones_queued(
    node: tuple[NodeService, Gated], registry: Registry
) -> None:
    svc, engine = node
    sends = []
    for i, label in enumerate(["busy", "anon-1", "anon-2", "anon-3", "keyed"]):
        extra = {PRIORITY_FIELD: KEYED} if label == "keyed" else {}
        body = chat(label, **extra)
        sends.append((body, registry.headers(svc.node_id, body, rid=f"req-{i}")))
    assert await _queue_then_release(svc, engine, sends) == [200] * 5
    assert engine.started == ["busy", "keyed", "anon-1", "anon-2", "anon-3"]


async def test_a_priority_header_the_gateway_did_not_sign_in_gives_no_priority(
    node: tuple[NodeService, Gated], registry: Registry
) -> None:
    """The class travels in the signed body only: a header (anyone's) is not read."""
    svc, engine = node
    sends = []
    for i, label in enumerate(["busy", "anon-1", "claims"]):
        body = chat(label)
        headers = registry.headers(svc.node_id, body, rid=f"req-{i}")
        if label == "claims":
            headers |= {"X-Mesh-Priority": KEYED, PRIORITY_FIELD: KEYED}
        sends.append((body, headers))
    assert await _queue_then_release(svc, engine, sends) == [200] * 3
    assert engine.started == ["busy", "anon-1", "claims"]


async def test_the_field_added_on_the_way_is_refused(
    node: tuple[NodeService, Gated], registry: Registry
) -> None:
    """Someone on the path adds the field to a signed ordinary request: the body is not the
    one the gateway signed (its SHA-256), 401, unserved."""
    svc, engine = node
    engine.gate.set()
    signed = chat("anon")
    headers = registry.headers(svc.node_id, signed)
    async with asgi_client(svc, client=REMOTE) as c:
        r = await c.post(CHAT_PATH, content=chat("anon", **{PRIORITY_FIELD: KEYED}),
                         headers=headers)  # fmt: skip
    assert r.status_code == 401, r.text
    assert engine.started == []


async def test_a_client_claiming_priority_straight_at_the_node_is_refused(
    node: tuple[NodeService, Gated],
) -> None:
    svc, engine = node
    async with asgi_client(svc, client=REMOTE) as c:
        r = await c.post(CHAT_PATH, content=chat("me first", **{PRIORITY_FIELD: KEYED}),
                         headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 401, r.text
    assert engine.started == []


async def test_a_standalone_nodes_loopback_client_gets_no_priority(settings: Settings) -> None:
    """No gateway authenticated it (``register = false``): the field is ignored."""
    engine = Gated()
    svc = await started_service(settings, engine, max_concurrency=1, max_queue=8)
    try:
        sends = [(chat(label, **({PRIORITY_FIELD: KEYED} if label == "claims" else {})),
                  {"Content-Type": "application/json"})
                 for label in ("busy", "anon-1", "claims")]  # fmt: skip
        async with asgi_client(svc) as c:
            tasks = []
            for i, (body, headers) in enumerate(sends):
                tasks.append(asyncio.create_task(c.post(CHAT_PATH, content=body, headers=headers)))
                await wait_until(lambda i=i: svc.admission.in_flight + svc.admission.queued > i)
            engine.gate.set()
            assert [r.status_code for r in await asyncio.gather(*tasks)] == [200] * 3
        assert engine.started == ["busy", "anon-1", "claims"]
    finally:
        engine.gate.set()
        await svc.stop()


@pytest.mark.parametrize("path", [CHAT_PATH, "/v1/completions"])
def test_the_request_models_every_node_version_parses_with_take_the_field(path: str) -> None:
    """An older node reads a new gateway's body with these models (unknown fields
    tolerated) and never reads the field: first come first served, as before."""
    from LLM_Mesh.core.schemas import ChatCompletionRequest, CompletionRequest

    body = json.loads(chat("x", **{PRIORITY_FIELD: KEYED}))
    if path == CHAT_PATH:
        assert ChatCompletionRequest.model_validate(body).model == MODEL
    else:
        body = {"model": MODEL, "prompt": "x", PRIORITY_FIELD: KEYED}
        assert CompletionRequest.model_validate(body).model == MODEL
