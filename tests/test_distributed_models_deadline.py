"""A 504's advice fits the caller that reads it (found 2026-12-06, newuser35): the gateway
tells an HTTP client to stream (``stream: true``), which neither the seed API
(``get_model_response``, ``handle_task``: they do not stream) nor ``llm-mesh ask`` (its
flag is ``--stream``) can take as said."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from LLM_Mesh.cli.demo import ask_once
from LLM_Mesh.core.client_retry import ASK_ADVICE, SEED_ADVICE, STREAM_ADVICE
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.errors import UpstreamTimeout
from LLM_Mesh.mesh_manager import MeshManager
from tests.registry.helpers import FakeNodes, running

MODEL = "gemma-3-270m"


def trickling_nodes() -> FakeNodes:
    """Nodes whose answers never end within the deadline (a byte every 50 ms)."""
    nodes = FakeNodes()

    class Trickle(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"{"
            for _ in range(200):
                await asyncio.sleep(0.05)
                yield b" "

    base = nodes.handler

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/"):
            return httpx.Response(200, stream=Trickle())
        return base(request)

    nodes.handler = handler  # type: ignore[method-assign]
    return nodes


async def test_the_gateway_tells_an_http_client_to_stream(tmp_path: Path) -> None:
    async with running(tmp_path, nodes=trickling_nodes(), request_timeout_s=0.3,
                       max_attempts=1) as h:  # fmt: skip
        await h.register("slow")
        r = await h.client.post("/v1/completions", json={"model": MODEL, "prompt": "x"})
    assert r.status_code == 504
    assert r.json()["error"]["message"].endswith(STREAM_ADVICE)  # its own words, kept


@pytest.mark.parametrize("chat", [False, True])
async def test_the_seed_api_is_told_what_it_can_change_not_to_stream(
    tmp_path: Path, chat: bool
) -> None:
    async with running(tmp_path, nodes=trickling_nodes(), request_timeout_s=0.3,
                       max_attempts=1) as h:  # fmt: skip
        await h.register("slow")
        seed = DistributedModelRegistry(registry_url="http://mesh", http_client=h.client)
        with pytest.raises(UpstreamTimeout) as got:
            await seed.get_response(MODEL, "x", chat=chat)
        said = got.value.message
        assert "stream: true" not in said and said.endswith(SEED_ADVICE), said
        assert "LLM_MESH_REQUEST_TIMEOUT_S=300" in said and "max_tokens" in said
        with pytest.raises(UpstreamTimeout) as task:
            await MeshManager(seed).handle_task_async("python", {"prompt": "x"}, model=MODEL)
        assert task.value.message.endswith(SEED_ADVICE), task.value.message


async def test_ask_without_stream_is_told_its_flag(tmp_path: Path) -> None:
    async with running(tmp_path, nodes=trickling_nodes(), request_timeout_s=0.3,
                       max_attempts=1) as h:  # fmt: skip
        await h.register("slow")
        with pytest.raises(UpstreamTimeout) as got:
            await ask_once(
                Console(file=None, quiet=True), "http://mesh", "x", model=MODEL, task=None,
                stream=False, chat=False, max_tokens=16, temperature=None, fallback=False,
                http_client=h.client,
            )  # fmt: skip
    said = got.value.message
    assert said.endswith(ASK_ADVICE) and "llm-mesh ask --stream" in said, said
    assert "stream: true" not in said
