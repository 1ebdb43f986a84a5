"""Streams: a client that goes away closes the upstream stream at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import ClientDisconnect

from tests.asgi import request_then_wait
from tests.registry.helpers import FakeNode, FakeNodes, running, sse_chunks
from tests.waiting import SOON_S, scaled


class EndlessStream(httpx.AsyncByteStream):
    """A node that streams tokens until it is closed."""

    def __init__(self, model: str, node_id: str) -> None:
        self.head = sse_chunks(model, node_id, ["tok"])[:2]
        self.closed = asyncio.Event()
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.head:
            self.sent += 1
            yield chunk
        while True:
            await asyncio.sleep(0.005)
            self.sent += 1
            yield self.head[1]

    async def aclose(self) -> None:
        self.closed.set()


def _scope(spec: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"mesh")],
        "client": ("127.0.0.1", 5000),
        "server": ("mesh", 80),
    }


@pytest.mark.parametrize("spec", ["2.4", "2.3"])
async def test_client_disconnect_closes_upstream(tmp_path: Path, spec: str) -> None:
    nodes = FakeNodes()
    streams: list[EndlessStream] = []

    def factory(node: FakeNode, model: str) -> httpx.Response:
        s = EndlessStream(model, node.node_id)
        streams.append(s)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=s)

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("node-a")
        body = json.dumps(
            {
                "model": "gemma-3-270m",
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
        ).encode()
        gone = asyncio.Event()
        messages: list[dict[str, Any]] = []

        receive = request_then_wait(body, gone)

        async def send(message: dict[str, Any]) -> None:
            if gone.is_set() and spec >= "2.4":
                raise OSError("client went away")
            messages.append(message)
            if message["type"] == "http.response.body" and len(messages) >= 3:
                gone.set()

        app: Any = h.app
        # the app may let the client's going surface (ASGI 2.4: send raises OSError;
        # Starlette's ClientDisconnect); anything else, a timeout included, fails the test
        with contextlib.suppress(OSError, ClientDisconnect):
            await asyncio.wait_for(app(_scope(spec), receive, send), timeout=scaled(SOON_S))
        assert messages[0]["status"] == 200
        (stream,) = streams
        assert stream.closed.is_set()
        entry = h.table.get("node-a")
        assert entry is not None and h.in_flight("node-a") == 0 and entry.failures == 0
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.outcome == "cancelled" and rec.stream


async def test_stream_broken_by_node_ends_with_error_event(tmp_path: Path) -> None:
    nodes = FakeNodes()

    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield sse_chunks("gemma-3-270m", "node-a", ["x"])[1]
            raise httpx.ReadError("connection reset")

    nodes.stream_factory = lambda node, model: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Broken()
    )
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("node-a")
        r = await h.client.post(
            "/v1/chat/completions",
            json={
                "model": "gemma-3-270m",
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        *_, last, done = [e for e in r.text.split("\n\n") if e]
        assert done == "data: [DONE]"  # an explicit end, never a silent cut
        err = json.loads(last[len("data: ") :])["error"]
        assert err["code"] == "continuation_unsupported" and err["node_id"] == "node-a"
        assert "connection reset" in err["message"] or "ReadError" in err["message"]
        entry = h.table.get("node-a")
        assert entry is not None and entry.failures == 1 and h.in_flight("node-a") == 0


class Chunked(httpx.AsyncByteStream):
    """A node whose events arrive in the given pieces (as the gateway's reads would)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


@pytest.mark.parametrize("split", ["together", "one_by_one", "cut_mid_event"])
async def test_events_read_together_are_relayed_together_and_whole(
    tmp_path: Path, split: str
) -> None:
    """Events read from the node in one piece go to the client in one write; every token,
    in order, the final chunk with the gateway's ``mesh``, then [DONE], however they came."""
    words = [f" w{i}" for i in range(12)]
    events = sse_chunks("gemma-3-270m", "node-a", words)
    body = b"".join(events)
    if split == "together":
        pieces = [body]
    elif split == "one_by_one":
        pieces = events
    else:  # reads that cut events anywhere
        pieces = [body[i : i + 37] for i in range(0, len(body), 37)]
    nodes = FakeNodes()
    nodes.stream_factory = lambda node, model: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Chunked(pieces)
    )
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("node-a")
        req = {"model": "gemma-3-270m", "stream": True,
               "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
        writes: list[bytes] = []

        receive = request_then_wait(json.dumps(req).encode())  # the client stays

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                writes.append(message["body"])

        await asyncio.wait_for(h.app(_scope("2.3"), receive, send), timeout=scaled(SOON_S))
        out = [e for e in b"".join(writes).decode().split("\n\n") if e]
        assert out[-1] == "data: [DONE]"
        chunks = [json.loads(e[len("data: ") :]) for e in out[:-1]]
        got = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
        assert [g for g in got if g] == words
        assert chunks[-1]["usage"]["completion_tokens"] == len(words)
        assert chunks[-1]["mesh"]["node_id"] == "node-a" and "cost" in chunks[-1]["mesh"]
        if split == "together":  # all but [DONE] (after the node's end) in one write
            assert len(writes) == 2
        elif split == "one_by_one":  # the finish chunk goes out with the final one's
            assert len(writes) == len(events) - 1  # fields (no include_usage asked)
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.outcome == "ok" and rec.completion_tokens == len(words)
