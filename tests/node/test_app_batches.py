"""The node's SSE writer over an engine's batches: a batch of deltas ready together goes
out in one write, with every token, in order, then the finish, usage and ``[DONE]``."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.engines.base import (
    CancelFlag,
    Delta,
    GenerationRequest,
    Usage,
    batches_in_thread,
)
from LLM_Mesh.node.engines.sim import SimEngine
from tests.asgi import request_then_wait
from tests.node.conftest import MODEL, asgi_client, no_sleep, started_service, wait_until
from tests.node.test_app import _scope, sse_events

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 40,
        "stream": True}  # fmt: skip
COMPLETION = {"model": MODEL, "prompt": "def f(", "max_tokens": 40, "stream": True, "echo": True}


class GroupedSim(SimEngine):
    """The sim engine's deltas handed over in batches of the given sizes (the last repeats)."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__([MODEL], ttft_s=0.0, tokens_per_s=1000.0, sleep=no_sleep)
        self.sizes = sizes

    async def stream_batches(
        self, req: GenerationRequest, cancel: CancelFlag
    ) -> AsyncIterator[list[Delta]]:
        sizes = iter(self.sizes)
        want = next(sizes)
        batch: list[Delta] = []
        async for delta in self.stream(req, cancel):
            batch.append(delta)
            if len(batch) >= want:
                yield batch
                batch, want = [], next(sizes, want)
        if batch:
            yield batch


async def _call(app: Any, path: str, body: dict[str, Any]) -> list[bytes]:
    """The response's body pieces, one per ASGI send (one socket write each)."""
    pieces: list[bytes] = []

    receive = request_then_wait(json.dumps(body).encode())  # the client stays

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            pieces.append(message["body"])

    await asyncio.wait_for(app(_scope(path), receive, send), 10)
    return pieces


def _comparable(events: list[Any]) -> list[Any]:
    """The events less what differs between two answers (id, time, the node's timings)."""
    out: list[Any] = []
    for e in events:
        if isinstance(e, dict):
            e = {k: v for k, v in e.items() if k not in ("id", "created", "mesh")}
        out.append(e)
    return out


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT),
                                            ("/v1/completions", COMPLETION)])  # fmt: skip
async def test_batches_go_out_whole_with_every_token_in_order(
    settings: Settings, path: str, body: dict[str, Any]
) -> None:
    one = await started_service(settings, GroupedSim([1]))
    grouped = await started_service(settings, GroupedSim([1, 3, 2, 5]))
    try:
        singles = await _call(create_node_app(one), path, body)
        batched = await _call(create_node_app(grouped), path, body)
    finally:
        await one.stop()
        await grouped.stop()
    # the same events, byte for byte but the id, time and the node's timings
    events = sse_events(b"".join(batched).decode())
    assert _comparable(events) == _comparable(sse_events(b"".join(singles).decode()))
    assert events[-1] == "[DONE]" and events[-2]["choices"] == []
    usage = events[-2]["usage"]
    texts = [e for e in events[:-2] if e["choices"] and _text(e)]
    assert usage["completion_tokens"] == len(texts) - (1 if body.get("echo") else 0) > 10
    assert events[-3]["choices"][0]["finish_reason"] in ("stop", "length")
    # fewer writes: a batch of n tokens is one write, and the finish, the usage chunk and
    # [DONE] go out together
    assert len(batched) < len(singles)
    *_, finish, final, done = sse_events(batched[-1].decode())
    assert finish["choices"][0]["finish_reason"] in ("stop", "length")
    assert final["usage"] == usage and done == "[DONE]"
    if path == "/v1/chat/completions":  # the role chunk goes out with the first token
        first = sse_events(batched[0].decode())
        assert first[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert _text(first[1])


def _text(event: dict[str, Any]) -> str:
    choice = event["choices"][0]
    return str(choice.get("text") or choice.get("delta", {}).get("content") or "")


class EndlessThreadEngine(SimEngine):
    """Tokens from a worker thread, as fast as it can, until it is stopped."""

    def __init__(self) -> None:
        super().__init__([MODEL], ttft_s=0.0, tokens_per_s=1000.0, sleep=no_sleep)
        self.closed = threading.Event()
        self.made = 0

    async def stream_batches(
        self, req: GenerationRequest, cancel: CancelFlag
    ) -> AsyncIterator[list[Delta]]:
        def make(gone: threading.Event) -> Iterator[Delta]:
            try:
                while True:
                    self.made += 1
                    time.sleep(0.0002)
                    yield Delta(" tok")
            finally:
                self.closed.set()

        batches = batches_in_thread(make, cancel)
        try:
            async for batch in batches:
                yield batch
        finally:
            await batches.aclose()


async def test_a_client_that_leaves_stops_a_batching_engine(settings: Settings) -> None:
    engine = EndlessThreadEngine()
    svc = await started_service(settings, engine)
    app = create_node_app(svc)
    disconnect = asyncio.Event()
    pieces = 0

    receive = request_then_wait(json.dumps(CHAT).encode(), disconnect)

    async def send(message: dict[str, Any]) -> None:
        nonlocal pieces
        if message["type"] == "http.response.body" and message.get("body"):
            pieces += 1
            if pieces >= 5:
                disconnect.set()

    await asyncio.wait_for(app(_scope("/v1/chat/completions"), receive, send), 10)
    assert await asyncio.to_thread(engine.closed.wait, 5), "the engine went on generating"
    made = engine.made
    await asyncio.sleep(0.05)
    assert engine.made == made
    assert svc.admission.in_flight == 0
    await svc.stop()


async def test_usage_of_a_batched_answer_is_the_engines(settings: Settings) -> None:
    """The final delta's usage (the engine's count) is the answer's, batched or not."""

    class Scripted(SimEngine):
        async def stream_batches(
            self, req: GenerationRequest, cancel: CancelFlag
        ) -> AsyncIterator[list[Delta]]:
            yield [Delta("a")]
            yield [Delta("b"), Delta("c"), Delta("", "length", Usage(7, 3))]

    svc = await started_service(settings, Scripted([MODEL], sleep=no_sleep))
    async with asgi_client(svc) as c:
        r = await c.post("/v1/completions", json={**COMPLETION, "echo": False})
    await wait_until(lambda: svc.admission.in_flight == 0)
    events = sse_events(r.text)
    assert [_text(e) for e in events[:-3]] == ["a", "b", "c"]
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    assert events[-2]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    await svc.stop()
