"""A stream whose reader is done before its answer's end (the node's ``[DONE]`` read:
``Http1Stream.linger``): nothing more is read for it; its connection goes back to the pool
only if the answer ends cleanly within ``LINGER_S``, else it is dropped (found 2026-12-05:
the reader awaited that end, so a node silent after its ``[DONE]`` held the client's
``[DONE]`` up to the read timeout)."""

from __future__ import annotations

import asyncio
import time

import pytest

from LLM_Mesh.registry.http1_stream import LINGER_S
from tests.registry.test_http1 import (
    STREAM_HEAD,
    H,
    _read_request,
    chunked,
    echo_forever,
    pool,
    serve,
)

DONE = b"data: [DONE]\n\n"


def _node(after: bytes | None, delay_s: float) -> object:
    """A node streaming one event and [DONE]; ``delay_s`` later ``after`` (None: silence),
    then it serves echo requests on the same connection."""

    streamed = []

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if streamed:  # a later connection: echo only
            await echo_forever(r, w)
        streamed.append(1)
        await _read_request(r)
        w.write(STREAM_HEAD + chunked(b"data: 1\n\n" + DONE))
        await w.drain()
        if after is None:
            await asyncio.sleep(30)
            return
        await asyncio.sleep(delay_s)
        w.write(after)
        await w.drain()
        await echo_forever(r, w)

    return h


async def _read_to_done(p: object, url: str) -> tuple[object, float]:
    s = await p.stream(url + "/v1/x", b"{}", H, timeout_s=20, connect_s=5)  # type: ignore[attr-defined]
    t0 = time.monotonic()
    async for piece in s.chunks():
        if piece.endswith(DONE):
            break
    s.linger()
    await s.aclose()  # (the send stage closes it after: a lingering one is left to linger)
    return s, time.monotonic() - t0


async def test_a_clean_end_just_after_done_keeps_the_connection() -> None:
    async with serve(_node(b"0\r\n\r\n", 0.05)) as (url, conns), pool() as p:  # type: ignore[arg-type]
        await _read_to_done(p, url)
        await asyncio.sleep(0.3)
        assert (await p.post(url + "/", b"again", H, timeout_s=5, connect_s=5)).content == b"again"
    assert p.connects == 1 and len(conns) == 1


async def test_a_node_silent_after_done_is_not_waited_for_nor_pooled() -> None:
    async with serve(_node(None, 0)) as (url, _), pool() as p:  # type: ignore[arg-type]
        _, took = await _read_to_done(p, url)
        assert took < 1.0  # the reader never waits for the end
        assert p._open  # the connection lingers a moment...
        await asyncio.sleep(LINGER_S + 0.3)
        assert not p._open and not p._idle  # ...then is dropped, never pooled
        assert (await p.post(url + "/", b"x", H, timeout_s=5, connect_s=5)).status == 200
    assert p.connects == 2


@pytest.mark.parametrize(
    "after", [chunked(b": more\n\n") + b"0\r\n\r\n", b"0\r\n\r\nHTTP/1.1 200 OK\r\n"],
    ids=["bytes_after_done", "a_second_answer"],
)  # fmt: skip
async def test_bytes_after_done_drop_the_connection(after: bytes) -> None:
    async with serve(_node(after, 0.05)) as (url, _), pool() as p:  # type: ignore[arg-type]
        await _read_to_done(p, url)
        await asyncio.sleep(0.3)
        assert not p._open and not p._idle
        assert (await p.post(url + "/", b"x", H, timeout_s=5, connect_s=5)).status == 200
    assert p.connects == 2
