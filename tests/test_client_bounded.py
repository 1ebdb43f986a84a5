"""``MeshClient`` (``llm-mesh earnings``, ``status``, the seed API) against a gateway that
answers without end, with a gzip bomb or a byte at a time, or a ping with more than a ping
needs (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator

import httpx
import pytest

from LLM_Mesh.bounded_http import AnswerRefused
from LLM_Mesh.client import (
    EARNINGS_ANSWER_BYTES,
    MAX_ANSWER_BYTES,
    PING_ANSWER_BYTES,
    MeshClient,
)

BIG = 2 * MAX_ANSWER_BYTES  # 128 MiB


async def _drip() -> AsyncIterator[bytes]:
    for _ in range(400):
        await asyncio.sleep(0.05)
        yield b" "


async def _sent(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1 << 14):
        yield data[i : i + (1 << 14)]


async def _endless() -> AsyncIterator[bytes]:
    yield b'{"operator": "'
    piece = b"x" * (1 << 16)
    for _ in range(BIG // len(piece)):
        yield piece
    yield b'"}'


BOMB = gzip.compress(b'{"operator": "' + b" " * BIG + b'"}', 9)


@pytest.mark.parametrize("kind", ["128 MiB", "gzip bomb", "drip"])
async def test_an_answer_past_its_bound_is_refused_not_read(kind: str) -> None:
    """Found 2026-12-03: read (and inflated) whole: 128 MiB in the operator's CLI; a drip
    held it for ever (each byte inside the per-read timeout)."""

    def gateway(request: httpx.Request) -> httpx.Response:
        if kind == "gzip bomb":
            return httpx.Response(200, content=_sent(BOMB), headers={"Content-Encoding": "gzip"})
        return httpx.Response(200, content=_endless() if kind == "128 MiB" else _drip())

    http = httpx.AsyncClient(transport=httpx.MockTransport(gateway), timeout=0.2)
    async with MeshClient("http://gw.test", http_client=http) as client:
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(AnswerRefused):
                await asyncio.wait_for(client.earnings("lmo_t"), 10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert time.monotonic() - started < 3.0
    assert peak < MAX_ANSWER_BYTES + (16 << 20), peak


@pytest.mark.parametrize("call", ["ping", "balance"])
async def test_a_ping_or_balance_answer_is_bounded_far_below_a_listing(call: str) -> None:
    """Found 2026-12-03: every call read up to 64 MiB, a ``ping`` (``{"status": "ok"}``)
    too. A ping or balance answer past ``PING_ANSWER_BYTES`` (64 KiB) is refused; the same
    size as a listing (``nodes``) or an earnings report is still read."""
    big = b'{"status": "ok", "pad": "' + b"x" * (PING_ANSWER_BYTES + 1) + b'"}'
    listing = b'{"nodes": [], "pad": "' + b"x" * (PING_ANSWER_BYTES + 1) + b'"}'

    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=listing if request.url.path == "/mesh/nodes" else big)

    http = httpx.AsyncClient(transport=httpx.MockTransport(gateway))
    async with MeshClient("http://gw.test", http_client=http) as client:
        with pytest.raises(AnswerRefused, match=f"longer than {PING_ANSWER_BYTES} bytes"):
            await getattr(client, call)()
        assert await client.nodes() == []  # a listing may be this long
        assert (await client.earnings("lmo_t"))["status"] == "ok"  # an earnings report too
    assert PING_ANSWER_BYTES < EARNINGS_ANSWER_BYTES < MAX_ANSWER_BYTES


async def test_an_honest_ping_is_read() -> None:
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _r: httpx.Response(200, json={"status": "ok"}))
    )
    async with MeshClient("http://gw.test", http_client=http) as client:
        assert await client.ping() == {"status": "ok"}
