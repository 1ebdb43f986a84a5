"""Regression tests for gateway defects found in review: leaked attempts, hung duplicates,
lost records, background loops that die, heartbeats after a goodbye."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from starlette.responses import Response

from LLM_Mesh.core.pricing import usual_prompt_tokens
from LLM_Mesh.registry.health import HealthChecker
from LLM_Mesh.registry.idempotency import IdempotencyCache
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.node_table import NodeTable
from LLM_Mesh.registry.ports import RequestRecord
from LLM_Mesh.registry.request_log import RequestWriter
from tests.registry.helpers import FakeNode, FakeNodes, chat_answer, running, sse_chunks
from tests.waiting import SOON_S, scaled

MODEL = "gemma-3-270m"


class _BrokenBody(httpx.AsyncByteStream):
    """A body that breaks after its first bytes (the node died while answering)."""

    def __init__(self, first: bytes = b'{"error": {"mess') -> None:
        self.first = first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise httpx.ReadError("connection reset")


def _stream_body(**kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "x"}], **kw}


async def test_stream_5xx_with_broken_body_fails_over_without_leaking(tmp_path: Path) -> None:
    nodes = FakeNodes()

    served: list[str] = []

    def factory(node: FakeNode, model: str) -> httpx.Response:
        served.append(node.node_id)
        if len(served) == 1:  # the first node picked answers 503 and dies mid-body
            return httpx.Response(503, stream=_BrokenBody())
        chunks = b"".join(sse_chunks(model, node.node_id, node.words))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunks)

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("a")
        await h.register("b")
        r = await h.client.post("/v1/chat/completions", json=_stream_body())
        assert r.status_code == 200, r.text
        assert r.headers["x-mesh-node"] == served[1] != served[0]
        assert h.in_flight("a") == 0 and h.in_flight("b") == 0


async def test_stream_4xx_with_broken_body_does_not_leak(tmp_path: Path) -> None:
    nodes = FakeNodes()
    nodes.stream_factory = lambda node, model: httpx.Response(400, stream=_BrokenBody())
    async with running(tmp_path, nodes=nodes, max_attempts=1) as h:
        await h.register("node-a")
        r = await h.client.post("/v1/chat/completions", json=_stream_body())
        assert r.status_code >= 400
        assert "error" in r.json()  # OpenAI's error shape, not a bare 500
        assert h.in_flight("node-a") == 0


async def test_continuation_refused_with_broken_body_ends_with_error_event(
    tmp_path: Path,
) -> None:
    nodes = FakeNodes()

    class CutAfterOne(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            chunk = {
                "id": "cmpl-1", "object": "text_completion", "created": 1, "model": MODEL,
                "choices": [{"index": 0, "text": "Hel"}],
            }  # fmt: skip
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            raise httpx.ReadError("connection reset")

    served = [0]

    def factory(node: FakeNode, model: str) -> httpx.Response:
        served[0] += 1
        if served[0] == 1:  # whichever node is picked first breaks after one token
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  stream=CutAfterOne())  # fmt: skip
        return httpx.Response(400, stream=_BrokenBody())  # the other refuses, body cut

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("first")
        await h.register("second")
        r = await h.client.post(
            "/v1/completions", json={"model": MODEL, "prompt": "p", "stream": True}
        )
        assert r.status_code == 200
        events = [e for e in r.text.split("\n\n") if e]
        assert events[-1] == "data: [DONE]", events  # never a silent cut
        assert "error" in json.loads(events[-2][len("data: ") :]), events
        assert h.in_flight("first") == 0 and h.in_flight("second") == 0


async def test_duplicate_of_an_evicted_running_key_does_not_hang() -> None:
    cache = IdempotencyCache(max_entries=2)
    assert await cache.begin("k1", False) is None  # k1 runs (long)
    waiter = asyncio.create_task(cache.begin("k1", False))  # a duplicate waits for k1
    await asyncio.sleep(0)
    for key in ("k2", "k3", "k4"):  # other keys push k1 out of the LRU
        assert await cache.begin(key, False) is None
        cache.finish(key, Response(b"{}", 200, media_type="application/json"))
    cache.finish("k1", Response(b'{"a":1}', 200, media_type="application/json"))
    replay = await asyncio.wait_for(waiter, scaled(SOON_S))  # a hang: never (1 s before flakes40)
    assert replay is not None and replay.body == b'{"a":1}'
    # and a later duplicate is still answered from the cache, not run again
    again = await cache.begin("k1", False)
    assert again is not None and again.body == b'{"a":1}'


def _rec(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{i}", node_id=None, model=MODEL, stream=False, outcome="ok",
        error_code=None, prompt_tokens=0, completion_tokens=0, latency_ms=1.0, ttft_ms=None,
        cost=0.0, created_at=datetime.now(timezone.utc),
    )  # fmt: skip


async def test_writer_stop_keeps_the_batch_being_written() -> None:
    class SlowStore(MemoryStore):
        started = asyncio.Event()

        async def record_requests(self, recs: list[RequestRecord]) -> None:
            self.started.set()
            await asyncio.sleep(0.05)
            await super().record_requests(recs)

    store = SlowStore()
    writer = RequestWriter(store, flush_interval_s=0.01)
    writer.start()
    for i in range(5):
        writer.submit(_rec(i))
    await asyncio.wait_for(store.started.wait(), scaled(SOON_S))  # a batch is being written now
    await writer.stop()
    assert len(store.requests) == 5 and writer.dropped == 0


async def test_expiry_sweep_survives_an_exception() -> None:
    clock_now = [0.0]
    table = NodeTable(30.0, lambda: clock_now[0])
    calls: list[str] = []

    def on_change(node_id: str) -> None:
        calls.append(node_id)
        if len(calls) == 1:
            raise RuntimeError("boom")

    checker = HealthChecker(
        table, lambda: None,  # type: ignore[arg-type,return-value]
        interval_s=3600.0, sweep_interval_s=0.01, on_change=on_change,
    )  # fmt: skip
    original = table.sweep_expired
    n = [0]

    def sweep(now: float | None = None) -> list[str]:
        n[0] += 1
        original(now)
        return [f"node-{n[0]}"]

    table.sweep_expired = sweep  # type: ignore[method-assign]
    checker.start()
    end = time.monotonic() + scaled(SOON_S)  # 100 sleeps of 10 ms before flakes40
    try:
        while len(calls) < 3 and time.monotonic() < end:  # noqa: ASYNC110 - the sweeper's state
            await asyncio.sleep(0.01)
    finally:
        await checker.stop()
    assert len(calls) >= 3, calls  # the loop went on after the first failure


async def test_heartbeat_after_delete_does_not_resurrect_the_node(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("node-a")
        r = await h.client.delete("/mesh/nodes/node-a")
        assert r.status_code == 204
        # a heartbeat the node sent before its goodbye arrives late
        r = await h.client.post(
            "/mesh/nodes/node-a/heartbeat", json={"state": "online", "in_flight": 0, "queued": 0}
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_node"
        r = await h.client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 503


async def test_non_stream_trickling_node_is_cut_at_the_deadline(tmp_path: Path) -> None:
    """Each read arrives within the read timeout, but the whole answer never does: the
    request must still end at ``request_timeout_s`` (504), not whenever the node stops."""
    nodes = FakeNodes()

    class Trickle(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"{"
            for _ in range(200):  # 10 s in all
                await asyncio.sleep(0.05)
                yield b" "

    base_handler = nodes.handler

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/"):
            return httpx.Response(200, stream=Trickle())
        return base_handler(request)

    nodes.handler = handler  # type: ignore[method-assign]
    async with running(tmp_path, nodes=nodes, request_timeout_s=0.3, max_attempts=1) as h:
        await h.register("slow")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = await h.client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        )
        assert loop.time() - t0 < 2.0
        assert r.status_code == 504 and r.json()["error"]["node_id"] == "slow"
        message = r.json()["error"]["message"]
        assert message.startswith("node slow did not answer within the request's deadline of "
                                  "0.3 s (DeadlineExceeded;"), message  # fmt: skip
        assert r.headers["x-should-retry"] == "false"  # a retry takes as long (client_retry)
        assert h.in_flight("slow") == 0


async def test_garbage_usage_and_ttft_from_a_node_neither_leak_nor_poison(tmp_path: Path) -> None:
    nodes = FakeNodes()
    base_handler = nodes.handler

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chat/completions":
            body = chat_answer(MODEL, "liar")
            body["usage"] = {"prompt_tokens": -5, "completion_tokens": 3, "total_tokens": -2}
            body["mesh"]["ttft_ms"] = -1e9  # "faster than light": must not win every pick
            body["mesh"]["latency_ms"] = 1.0
            return httpx.Response(200, json=body)
        return base_handler(request)

    nodes.handler = handler  # type: ignore[method-assign]
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("liar")
        r = await h.client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 200, r.text
        mesh = r.json()["mesh"]
        # -5 is no count: the prompt is charged, and stated, at its usual count
        assert mesh["prompt_tokens"] == usual_prompt_tokens("x", 1) and mesh["ttft_ms"] >= 0
        assert h.in_flight("liar") == 0
        st = h.runtime.routing.router.node("liar")
        assert st is not None and (st.ttft.get(h.clock()) or 0.0) >= 0
