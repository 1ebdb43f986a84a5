"""``MeshClient`` (``llm-mesh earnings``, ``status``, the seed API) against a gateway that
answers without end, with a gzip bomb or a byte at a time (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator

import httpx
import pytest

from LLM_Mesh.bounded_http import AnswerRefused
from LLM_Mesh.client import MAX_ANSWER_BYTES, MeshClient

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
