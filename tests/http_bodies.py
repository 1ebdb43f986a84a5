"""Answers a server the mesh does not trust may send: without end, or a byte at a time
(the attack tests of ``LLM_Mesh/bounded_http.py``'s callers)."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

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


class Reads(httpx.AsyncByteStream):
    """A body sent as these reads, each as it is (a compressed one is decoded by its reader)."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for read in self.reads:
            yield read


def gzip_zeros(n_mib: int, *, twice: bool = False) -> bytes:
    """``n_mib`` MiB of zero bytes gzipped (some 1 kB a MiB on the wire), or gzipped twice
    (some 600 bytes for 256 MiB: ``Content-Encoding: gzip, gzip``), built a MiB at a time."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    mib = bytes(1 << 20)
    once = b"".join(c.compress(mib) for _ in range(n_mib)) + c.flush()
    return gzip.compress(once, 9) if twice else once


async def peak_bytes(run: Callable[[], Awaitable[object]]) -> tuple[Exception | None, int]:
    """``run()`` awaited under ``tracemalloc``: what it raised, and the most memory Python
    held meanwhile (a decoded piece is a bytes object: it counts)."""
    tracemalloc.start()
    try:
        try:
            await run()
        except Exception as exc:
            return exc, tracemalloc.get_traced_memory()[1]
        return None, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
