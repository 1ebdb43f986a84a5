"""A node that answers a stream request with an error status and a long body (100 KiB, more
than any 64 KiB bound) before any event: its attempt is classed by its status
(``core/failover.status_outcome``: 500 a server error, 503 unavailable, 429 overloaded), never as a broken
stream, and the stream finishes on a healthy node (reviewers' note 2026-12-04: "stream
error > 64 KiB: no failover"; it held: the error body is read whole, to
``http1.MAX_BODY_BYTES``, inside the attempt, ``registry/send_stream._opened``; the
64 KiB bound is ``core/node_refusal``'s, on parsing a 4xx refusal passed to the client)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.core.failover import Outcome, status_outcome
from LLM_Mesh.registry.node_client import NodeResponse, _Http1StreamResponse
from LLM_Mesh.registry.send_stream import _opened
from tests.registry.helpers import FakeNode, FakeNodes, running, sse_chunks
from tests.registry.test_http1 import H, _read_request, chunked, echo_forever, pool, serve
from tests.registry.test_metrics import chat, first_on, scrape

BIG = 100 * 1024


def _nodes(status: int) -> FakeNodes:
    nodes = FakeNodes()

    def stream(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "bad":
            said = {"error": {"message": "x" * BIG, "type": "server_error", "code": "oops"}}
            return httpx.Response(status, content=json.dumps(said).encode(),
                                  headers={"content-type": "application/json"})  # fmt: skip
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=b"".join(sse_chunks(model, node.node_id, node.words)))  # fmt: skip

    nodes.stream_factory = stream
    return nodes


@pytest.mark.parametrize(
    ("status", "outcome"), [(500, "server_error"), (503, "unavailable"), (429, "overloaded")]
)
async def test_a_long_error_body_before_any_event_fails_over_by_its_status(
    tmp_path: Path, status: int, outcome: str
) -> None:
    """A body cut at 64 KiB would be a protocol error, a server error: 503 and 429 would be
    counted as the node's failure (and 500 still fail over, as a server error)."""
    async with running(tmp_path, nodes=_nodes(status), max_attempts=3) as h:
        bad = await h.register("bad")
        await h.register("good")
        r = await first_on(h, "bad", "good", chat(stream=True))
        assert r.status_code == 200, r.text[:300]
        lines = [ln[5:].strip() for ln in r.text.split("\n") if ln.startswith("data:")]
        assert lines[-1] == "[DONE]" and '"error"' not in r.text, r.text[-500:]
        assert any(json.loads(ln).get("mesh", {}).get("node_id") == "good" for ln in lines[:-1])
        assert len(bad.calls) == 1
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_attempts_total", node="bad", outcome=outcome) == 1
        assert s.value("llm_mesh_gateway_attempts_total", node="good", outcome="success") == 1


@pytest.mark.parametrize("framing", ["length", "chunked_small", "head_then_body"])
@pytest.mark.parametrize("status", [500, 503])
async def test_the_plain_http_client_reads_a_long_error_answer_to_a_stream_whole(
    framing: str, status: int
) -> None:
    """The same on a real socket, through the gateway's own HTTP/1.1 client (the path of a
    plain-http node): the stream request's error answer (100 KiB, more than the head's 64
    KiB bound and in reads of any size) is read whole inside the attempt
    (``send_stream._opened``), its status kept, and the connection goes back to the pool."""
    body = b'{"error":{"message":"' + b"x" * BIG + b'"}}'
    reason = b"Internal Server Error" if status == 500 else b"Service Unavailable"
    line = b"HTTP/1.1 %d %s\r\n" % (status, reason)

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        if framing == "chunked_small":
            w.write(line + b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(body), 1000):
                w.write(chunked(body[i : i + 1000]))
            w.write(b"0\r\n\r\n")
        else:
            w.write(line + b"Content-Length: %d\r\n\r\n" % len(body))
            if framing == "head_then_body":
                await w.drain()
                await asyncio.sleep(0.05)
            w.write(body)
        await w.drain()
        await echo_forever(r, w)

    async with serve(h) as (url, conns), pool() as p:

        async def opening() -> NodeResponse:
            s = await p.stream(url + "/v1/chat/completions", b"{}", H, timeout_s=5, connect_s=5)
            return _Http1StreamResponse(s)

        resp = await _opened(opening())
        assert resp.status_code == status and resp.content == body
        assert status_outcome(resp.status_code) == (
            Outcome.SERVER_ERROR if status == 500 else Outcome.UNAVAILABLE
        )
        assert (await p.post(url + "/", b"again", H, timeout_s=5, connect_s=5)).content == b"again"
    assert len(conns) == 1
