"""``MeshClient.stream``: a stream that ends without ``data: [DONE]`` is an
:class:`UpstreamError` after its last chunk, never a complete answer (found 2026-12-04: a
gateway or proxy cutting the stream between events passed a cut answer as whole). The
real gateway ends every stream, a failed one too, with ``[DONE]``: checked here on the
in-process mesh."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from LLM_Mesh.client import MeshClient
from LLM_Mesh.client_stream import CUT_SHORT
from LLM_Mesh.errors import MeshError, UpstreamError
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh

BASE = "http://gw.test"
PIECE = {"object": "text_completion", "choices": [{"index": 0, "text": "def"}]}


def _client(body: bytes) -> MeshClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return MeshClient(BASE, http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


@pytest.mark.parametrize(
    "body",
    [
        _sse(PIECE, PIECE),  # cut between events
        _sse(PIECE) + _sse(PIECE)[:-1],  # the last event without its blank line
        b"",  # nothing at all
        _sse(PIECE) + b": keep-alive\n\n",
    ],
)
async def test_a_stream_without_done_is_an_upstream_error_after_its_chunks(body: bytes) -> None:
    got: list[dict[str, Any]] = []
    async with _client(body) as c:
        with pytest.raises(UpstreamError) as info:
            async for chunk in c.stream("/v1/completions", {"model": "m", "prompt": "p"}):
                got.append(chunk)
    assert CUT_SHORT in info.value.message
    assert info.value.message.startswith("the stream ended before [DONE]: the answer may be cut")
    assert got[0]["object"] == "mesh.headers"
    assert got[1:] == [PIECE] * body.count(b"def")  # every chunk read came first


async def test_a_stream_with_done_ends_without_an_error() -> None:
    async with _client(_sse(PIECE) + b"data: [DONE]\n\n") as c:
        got = [x async for x in c.stream("/v1/completions", {"model": "m", "prompt": "p"})]
    assert got[1:] == [PIECE]


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
async def test_the_real_gateway_ends_its_streams_with_done(
    inprocess_mesh: InProcessMesh, path: str
) -> None:
    """Normal use is unaffected: the gateway's own streams end with ``[DONE]``."""
    inprocess_mesh.add_nodes("gemma-3-270m")
    body: dict[str, Any] = {"model": "gemma-3-270m", "max_tokens": 8}
    if path.endswith("chat/completions"):
        body["messages"] = [{"role": "user", "content": "hi"}]
    else:
        body["prompt"] = "def f():"
    async with MeshClient(REGISTRY_URL, http_client=inprocess_mesh.client()) as c:
        got = [x async for x in c.stream(path, body)]
    assert len(got) > 2  # the headers, then the answer's chunks, no error


async def test_the_real_gateway_ends_a_broken_stream_with_its_error_not_a_cut(
    inprocess_mesh: InProcessMesh,
) -> None:
    """A node that breaks mid-answer, no other to continue: the gateway's error event
    (then ``[DONE]``) is the error, in its words."""
    inprocess_mesh.add_node("gemma-3-270m", failure_rate=1.0, fail_after_tokens=2)
    body = {"model": "gemma-3-270m", "prompt": "x", "max_tokens": 8}
    got: list[dict[str, Any]] = []
    async with MeshClient(REGISTRY_URL, http_client=inprocess_mesh.client()) as c:
        with pytest.raises(MeshError) as info:
            async for chunk in c.stream("/v1/completions", body):
                got.append(chunk)
    assert len(got) > 1  # part of the answer came first
    assert CUT_SHORT not in info.value.message
