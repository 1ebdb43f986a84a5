"""A node's ``[DONE]`` ends its part of a stream at once (registry/send_stream.py): the
client's ``[DONE]`` and the request's slot are not held for what the node does after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.registry.helpers import FakeNode, FakeNodes, running, sse_chunks

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"
SILENCE_S = 6.0


async def test_a_node_silent_after_its_done_does_not_hold_the_clients_done(
    tmp_path: Path,
) -> None:
    """Found 2026-12-05: a node that sends its answer and ``data: [DONE]`` and then stays
    silent (its body never ends) held the client's final ``[DONE]``, and the request's slot
    at the node, until the read timed out (here: the node's silence, 6 s). Now the client
    has its whole answer and ``[DONE]`` at once, nothing in flight."""

    async def body(events: list[bytes]) -> AsyncIterator[bytes]:
        yield b"".join(events)
        await asyncio.sleep(SILENCE_S)  # no byte more: the answer never ends

    def stream(node: FakeNode, model: str) -> httpx.Response:
        events = sse_chunks(model, node.node_id, ["Hel", "lo"])
        assert events[-1] == b"data: [DONE]\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=body(events))  # fmt: skip

    nodes = FakeNodes()
    nodes.stream_factory = stream
    async with running(tmp_path, nodes=nodes, request_timeout_s=30) as h:
        await h.register("quiet")
        t0 = time.perf_counter()
        r = await h.client.post(CHAT, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
            "stream": True,
        })  # fmt: skip
        took = time.perf_counter() - t0
        assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n"), r.text
        assert '"error"' not in r.text  # the whole answer, never read past its [DONE]
        assert took < SILENCE_S / 3, took  # before: the node's whole silence
        assert h.in_flight("quiet") == 0
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.outcome == "ok"
