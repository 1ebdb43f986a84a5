"""``MeshClient.stream`` (``llm-mesh ask --stream``, ``llm-mesh demo``, the seed API)
against a real loopback gateway that answers an error without end, sends an event line
that never ends (plain or gzip), streams honestly for long, or drips honest events for
ever."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from LLM_Mesh.bounded_http import AnswerRefused
from LLM_Mesh.client import (
    DEFAULT_STREAM_MAX_S,
    MAX_STREAM_EVENT_BYTES,
    STREAM_MAX_ENV,
    MeshClient,
    stream_max_s,
)

BIG = 32 * MAX_STREAM_EVENT_BYTES  # 32 MiB, sent (or inflated) unless the client stops
PIECE = 1 << 16
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def gateway(answer: Answer) -> AsyncIterator[str]:
    """An HTTP/1.1 server on loopback: reads a request, then ``answer`` writes the reply
    (its body ends when the connection closes)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            await answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client stopped reading: what the bounded tests want
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def _send(
    writer: asyncio.StreamWriter, status: str, headers: str, *pieces: bytes, repeat: int = 0
) -> None:
    """The answer's head, then ``pieces``, the last of them ``repeat`` times more (no body
    is built whole: the test measures the client's memory in this process)."""
    writer.write(f"HTTP/1.1 {status}\r\n{headers}Connection: close\r\n\r\n".encode())
    for piece in (*pieces, *[pieces[-1]] * repeat):
        for i in range(0, len(piece), PIECE):
            writer.write(piece[i : i + PIECE])
            await writer.drain()


X = b"x" * PIECE
BOMB = gzip.compress(b'data: {"choices": [{"text": "' + b"x" * BIG, 9)  # ~32 KiB


async def _endless_error(writer: asyncio.StreamWriter) -> None:
    head = "Content-Type: application/json\r\n"
    await _send(writer, "500 Internal Server Error", head, b'{"error": {"message": "', X,
                repeat=BIG // PIECE)  # fmt: skip


def _endless_line(encoding: str) -> Answer:
    async def answer(writer: asyncio.StreamWriter) -> None:
        headers = "Content-Type: text/event-stream\r\n"
        if encoding == "gzip":
            await _send(writer, "200 OK", headers + "Content-Encoding: gzip\r\n", BOMB)
        else:
            await _send(writer, "200 OK", headers, b'data: {"choices": [{"text": "', X,
                        repeat=BIG // PIECE)  # fmt: skip

    return answer


async def _read_all(url: str) -> list[dict[str, object]]:
    async with MeshClient(url, timeout=10.0) as client:
        return [c async for c in client.stream("/v1/chat/completions", BODY)]


@pytest.mark.parametrize(
    "answer",
    [_endless_error, _endless_line("identity"), _endless_line("gzip")],
    ids=["error answer", "endless event line", "endless event line, gzip"],
)
async def test_a_stream_past_its_bound_is_refused_not_gathered(answer: Answer) -> None:
    """Found 2026-12-03: an error answer was read whole (``aread``) and an event line that
    never ended grew in ``aiter_lines``: 32 MiB held (and, from a gzip bomb, inflated) by
    the client, then a ``MeshError`` quoting it or a ``not JSON`` error."""
    async with gateway(answer) as url:
        tracemalloc.start()
        try:
            with pytest.raises(AnswerRefused, match=str(MAX_STREAM_EVENT_BYTES)):
                await asyncio.wait_for(_read_all(url), 30)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4 * MAX_STREAM_EVENT_BYTES, peak


async def test_an_honest_long_stream_is_read_whole() -> None:
    """Many events, far more than the bound together, each cut across the server's
    writes: all of them come back, then the stream ends at ``[DONE]``."""
    n = 20_000
    events = b"".join(
        b"data: " + json.dumps({"choices": [{"index": 0, "text": f"t{i} " + "y" * 150}]}).encode()
        + b"\r\n\r\n"
        for i in range(n)
    ) + b"data: [DONE]\n\n"  # fmt: skip
    assert len(events) > 3 * MAX_STREAM_EVENT_BYTES

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        writer.write(b"X-Mesh-Node: node-a\r\nConnection: close\r\n\r\n")
        for i in range(0, len(events), 1000):  # cuts events (and CRLFs) anywhere
            writer.write(events[i : i + 1000])
            await writer.drain()

    async with gateway(answer) as url:
        got = await asyncio.wait_for(_read_all(url), 60)
    assert got[0] == {"object": "mesh.headers", "headers": {"x-mesh-node": "node-a"}}
    texts = [c["choices"][0]["text"] for c in got[1:]]  # type: ignore[index]
    assert len(texts) == n
    assert texts[0].startswith("t0 ") and texts[-1].startswith(f"t{n - 1} ")


async def test_a_stream_error_answer_within_the_bound_is_its_mesh_error() -> None:
    """A gateway's ordinary refusal is still read and raised as its class."""
    from LLM_Mesh.errors import ModelUnavailable

    body = json.dumps(
        {"error": {"message": "no node", "type": "x", "code": "model_unavailable"}}
    ).encode()

    async def answer(writer: asyncio.StreamWriter) -> None:
        await _send(writer, "503 Service Unavailable", "Content-Type: application/json\r\n", body)

    async with gateway(answer) as url:
        with pytest.raises(ModelUnavailable, match="no node"):
            await asyncio.wait_for(_read_all(url), 10)


async def _drip_events(writer: asyncio.StreamWriter) -> None:
    """An honest event every 50 ms, for ever (well within any read timeout)."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
    for i in range(100_000):
        writer.write(b'data: {"choices": [{"index": 0, "text": "t%d"}]}\n\n' % i)
        await writer.drain()
        await asyncio.sleep(0.05)


async def _no_head(writer: asyncio.StreamWriter) -> None:
    """Accepts the request, then answers nothing (but within the read timeout, a byte
    of its head at a time)."""
    for b in b"HTTP/1.1 200 OK\r\nX-Pad: " + b"x" * 100_000:
        writer.write(bytes([b]))
        await writer.drain()
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("answer", "how"),
    [
        (_drip_events, "client"),
        (_drip_events, "call"),
        (_drip_events, "env"),
        (_no_head, "client"),
    ],
    ids=["drip, the client's bound", "drip, the call's max_s", "drip, $LLM_MESH_STREAM_MAX_S",
         "a head that never ends"],
)  # fmt: skip
async def test_a_slow_drip_stream_ends_at_its_time_bound(
    answer: Answer, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-03: a stream was bounded per event, not in time: a gateway sending an
    honest event now and then (each within the 300 s read timeout) held ``ask --stream``,
    the seed API's streams, for as long as it liked. The whole stream now runs at most
    ``stream_max_s`` (30 min by default; the client's, the call's ``max_s`` or
    ``$LLM_MESH_STREAM_MAX_S``), then ``AnswerRefused`` naming the bound; the events before
    it were yielded."""
    assert DEFAULT_STREAM_MAX_S == 1800.0
    kw: dict[str, float] = {}
    if how == "env":
        monkeypatch.setenv(STREAM_MAX_ENV, "0.6")
    else:
        monkeypatch.delenv(STREAM_MAX_ENV, raising=False)
    got: list[dict[str, object]] = []
    async with gateway(answer) as url:
        client_kw = {"stream_max_s": 0.6} if how == "client" else {}
        if how == "call":
            kw["max_s"] = 0.6
        async with MeshClient(url, timeout=10.0, **client_kw) as client:

            async def read() -> None:
                async for chunk in client.stream("/v1/chat/completions", BODY, **kw):
                    got.append(chunk)

            started = time.monotonic()
            with pytest.raises(AnswerRefused, match=r"longer than 0\.6 s"):
                await asyncio.wait_for(read(), 5)  # (before: TimeoutError, still dripping)
            assert time.monotonic() - started < 3.0
    if answer is _drip_events:
        assert got[0]["object"] == "mesh.headers" and len(got) > 3  # events came meanwhile


def test_the_stream_bound_from_the_environment_is_checked() -> None:
    assert stream_max_s({}) == DEFAULT_STREAM_MAX_S
    assert stream_max_s({STREAM_MAX_ENV: "90"}) == 90.0
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(ValueError, match=STREAM_MAX_ENV):
            stream_max_s({STREAM_MAX_ENV: bad})
    with pytest.raises(ValueError, match="> 0"):
        MeshClient("http://gw.test", stream_max_s=0)
