"""Answers a server the mesh does not trust may send: without end, or a byte at a time
(the attack tests of ``LLM_Mesh/bounded_http.py``'s callers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx

CHUNK = 64 * 1024


class Endless(httpx.AsyncByteStream):
    """``chunks`` chunks of ``size`` bytes (``fill`` repeated), ``gap_s`` apart; counts the
    bytes pulled."""

    def __init__(self, chunks: int, gap_s: float = 0.0, size: int = CHUNK, fill: bytes = b"x"):
        self.chunks, self.gap_s, self.pulled = chunks, gap_s, 0
        self.chunk = fill * size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            if self.gap_s:
                await anyio.sleep(self.gap_s)
            self.pulled += len(self.chunk)
            yield self.chunk
