"""The gateway's HTTP/1.1 client (registry/http1.py) against a hostile node that chooses
every byte and the timing of its answers: bounds on what it may send without a byte of
body, and what may follow an answer's end. The well-behaved cases are test_http1.py's."""

from __future__ import annotations

import asyncio
import contextlib
import time
import tracemalloc

import pytest

from LLM_Mesh.registry.http1 import MAX_HEADER_BYTES, Http1Error, Http1Timeout
from LLM_Mesh.registry.http1_stream import STREAM_BUFFER_BYTES
from tests.registry.test_http1 import STREAM_HEAD, H, _read_request, chunked, ok, pool, serve

ENDLESS = 1 << 20  # 16× the bound, sent 16 KiB a write, then the node stalls

HEADS = {
    "header-value": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ",
    "header-name": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-",
    "chunk-extension": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=",
    "trailer": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: ",
}


def endless(head: bytes) -> object:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(head)
        with contextlib.suppress(ConnectionError):
            for _ in range(ENDLESS // 16384):
                w.write(b"a" * 16384)
                await w.drain()
        await asyncio.sleep(10)

    return h


@pytest.mark.parametrize("head", list(HEADS.values()), ids=list(HEADS))
async def test_a_line_that_never_ends_is_refused_at_the_bound(head: bytes) -> None:
    """A header (or trailer, or chunk line) that never ends: refused once the answer sent
    more than ``MAX_HEADER_BYTES`` without a byte of body, long before the deadline (until
    2026-12-03 httptools kept joining it, copied whole at every read, until the timeout)."""
    async with serve(endless(head)) as (url, _), pool() as p:  # type: ignore[arg-type]
        t0 = time.monotonic()
        with pytest.raises(Http1Error) as err:
            await p.post(url + "/", b"", H, timeout_s=8, connect_s=5)
        assert not isinstance(err.value, Http1Timeout) and err.value.kind == "LineTooLong"
        assert time.monotonic() - t0 < 4
        assert not p._open


@pytest.mark.parametrize("head", [HEADS["header-value"], HEADS["trailer"]], ids=["head", "trailer"])
async def test_a_streams_line_that_never_ends_is_refused_at_the_bound(head: bytes) -> None:
    async with serve(endless(head)) as (url, _), pool() as p:  # type: ignore[arg-type]
        with pytest.raises(Http1Error) as err:
            s = await p.stream(url + "/", b"{}", H, timeout_s=8, connect_s=5)
            try:
                await asyncio.wait_for(s.read(), 4)
            finally:
                await s.aclose()
        assert err.value.kind == "LineTooLong"
        assert not p._open


async def test_many_tiny_headers_count_as_their_bytes() -> None:
    """20,000 headers ``a:`` (80 KB): refused by their bytes on the wire (their names and
    values alone are 20 KB, under the bound)."""

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\n" + b"a:\r\n" * 20_000 + b"Content-Length: 2\r\n\r\nok")
        await w.drain()
        await asyncio.sleep(5)

    assert 20_000 * 4 > MAX_HEADER_BYTES > 20_000
    async with serve(h) as (url, _), pool() as p:
        with pytest.raises(Http1Error) as err:
            await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
    assert err.value.kind == "LineTooLong"


async def test_a_head_at_the_bound_in_small_reads_is_an_answer() -> None:
    """(no attack) A head just under the bound, sent a few bytes a write, and its body."""
    big = b"X-Big: " + b"a" * (MAX_HEADER_BYTES - 200) + b"\r\n"

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(r)
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + big + b"\r\nok"
            for i in range(0, len(answer), 4096):
                w.write(answer[i : i + 4096])
                await w.drain()

    async with serve(h) as (url, conns), pool() as p:
        for _ in range(2):
            resp = await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
            assert resp.status == 200 and resp.content == b"ok"
    assert len(conns) == 1  # kept alive


async def test_bytes_after_a_streams_end_drop_its_connection_at_once() -> None:
    """A stream that ended, its reader not back yet (a slow client), and the node sends a
    second answer whose header never ends: not parsed, the connection dropped at the first
    such read; the stream's body is still read whole (until 2026-12-03 each read was parsed
    and joined, for as long as the reader stayed away)."""
    sent = asyncio.Event()

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD + chunked(b"data: 1\n\n") + b"0\r\n\r\n")
        await w.drain()
        await asyncio.sleep(0.05)
        with contextlib.suppress(ConnectionError):
            w.write(b"HTTP/1.1 200 OK\r\nX-Big: ")
            await w.drain()
            sent.set()
            for _ in range(64):
                await asyncio.sleep(0.01)
                w.write(b"a" * 16384)
                await w.drain()
        await asyncio.sleep(5)

    async with serve(h) as (url, _), pool() as p:
        s = await p.stream(url + "/", b"{}", H, timeout_s=5, connect_s=5)
        await asyncio.wait_for(sent.wait(), 2)
        await asyncio.sleep(0.1)
        (conn,) = p._open
        assert conn.closed  # dropped, not reading on
        assert await s.read() == b"data: 1\n\n"
        await s.aclose()
        assert not p._open and not any(p._idle.values())


async def test_idle_connections_are_closed_without_another_request() -> None:
    """A node that never closes its keep-alive connections, called by a burst of three and
    then never again: each is closed about ``keepalive_s`` after it went idle, and the
    pool forgets the origin (until 2026-12-03 only a later request to the same origin
    expired them, its newest first: a file descriptor each, held for ever)."""
    closed: list[int] = []

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                _, body = await _read_request(r)
                await asyncio.sleep(0.05)  # the three overlap: three connections
                w.write(ok(body))
                await w.drain()
        closed.append(1)  # the gateway closed it: EOF

    async with serve(h) as (url, conns), pool(keepalive_s=0.2) as p:
        await asyncio.gather(
            *(p.post(url + "/", b"%d" % i, H, timeout_s=5, connect_s=5) for i in range(3))
        )
        assert len(conns) == 3 and sum(map(len, p._idle.values())) == 3
        await asyncio.sleep(0.7)
        assert len(closed) == 3
        assert not p._idle and not p._open


FORGED = b"HTTP/1.1 200 OK\r\nX-Forged: 1\r\nContent-Length: 6\r\n\r\nforged"
SHAPES = {
    "cl+te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n",
    "te+cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\n",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 90\r\n\r\nabc",
    "negative-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "length-overflow": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "bytes-after-length": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" + FORGED,
    "100-continue-first": b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"abc") + FORGED,
    "204-with-a-body": b"HTTP/1.1 204 No Content\r\nContent-Length: 86\r\n\r\n" + FORGED,
    "trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    b"X-Trailer: 1\r\n\r\n" + FORGED,
    "http1.0-keep-alive": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n"
    b"\r\nabc" + FORGED,
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n Content-Length: 0\r\nContent-Length: 3\r\n\r\nabc",
}


@pytest.mark.parametrize("first", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("late", [False, True], ids=["one-read", "forged-later"])
async def test_no_answer_leaves_bytes_for_the_next_request(first: bytes, late: bool) -> None:
    """Whatever the node's first answer (refused, or read as its first message), the next
    request on the pool gets its own answer: nothing of the first, nothing forged after it
    (at once, or 50 ms later while the connection is idle)."""

    answered = [0]  # requests, over every connection

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            _, body = await _read_request(r)
            answered[0] += 1
            if answered[0] > 1:
                w.write(ok(body))
            elif late and first.endswith(FORGED):
                w.write(first[: -len(FORGED)])
                await w.drain()
                await asyncio.sleep(0.05)
                w.write(FORGED)
            else:
                w.write(first)
            await w.drain()

    async with serve(h) as (url, _), pool() as p:
        with contextlib.suppress(Http1Error):
            got = await p.post(url + "/", b"1", H, timeout_s=2, connect_s=5)
            assert b"forged" not in got.content and "x-forged" not in got.headers
        await asyncio.sleep(0.1)
        for i in range(2, 4):
            resp = await p.post(url + "/", b"%d" % i, H, timeout_s=2, connect_s=5)
            assert (resp.status, resp.content) == (200, b"%d" % i)
            assert "x-forged" not in resp.headers and "x-trailer" not in resp.headers


async def test_an_answer_to_a_cancelled_request_is_never_read_by_the_next() -> None:
    """A request cancelled mid-answer (its client went away), the node finishing that
    answer later: its connection was dropped, the next request gets its own answer."""
    answered = [0]

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            _, body = await _read_request(r)
            answered[0] += 1
            if answered[0] == 1:
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfor")
                await w.drain()
                await asyncio.sleep(0.2)
                w.write(b"ged" + FORGED)
            else:
                w.write(ok(body))
            await w.drain()

    async with serve(h) as (url, conns), pool() as p:
        first = asyncio.create_task(p.post(url + "/", b"1", H, timeout_s=5, connect_s=5))
        await asyncio.sleep(0.1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert not p._open
        await asyncio.sleep(0.2)
        for i in range(2, 4):
            resp = await p.post(url + "/", b"%d" % i, H, timeout_s=5, connect_s=5)
            assert resp.content == b"%d" % i and "x-forged" not in resp.headers
    assert len(conns) == 2


def tiny_chunks(body: int, piece: int = 2) -> object:
    """An answer of ``body`` bytes in chunks of ``piece`` bytes (7 bytes on the wire for 2
    of body), written 64 KiB at a time."""

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD)  # a chunked 200
        one = b"%x\r\n" % piece + b"a" * piece + b"\r\n"
        left = body // piece
        while left:
            n = min(left, 65536 // len(one))
            w.write(one * n)
            left -= n
            await w.drain()
        w.write(b"0\r\n\r\n")
        await w.drain()

    return h


async def test_an_answer_in_tiny_chunks_holds_about_its_bytes() -> None:
    """A body sent in 2-byte chunks: each chunk is one ``on_body`` call of the parser; the
    pieces after the first few are gathered in one buffer, so the answer holds about its
    own bytes, not an object a chunk (found 2026-12-05: a list of 2-byte ``bytes``, ~60x:
    1 MiB held 63 MiB, 8 MiB 502 MiB, so ~4 GiB per answer at ``MAX_BODY_BYTES``; measured
    with ``tracemalloc``)."""
    body = 1 << 20
    async with serve(tiny_chunks(body)) as (url, _), pool() as p:  # type: ignore[arg-type]
        tracemalloc.start()
        try:
            resp = await p.post(url + "/", b"", H, timeout_s=60, connect_s=5)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert resp.status == 200 and resp.content == b"a" * body
        assert peak < 6 * body, peak


async def test_a_streams_read_ahead_in_tiny_chunks_holds_about_its_bytes() -> None:
    """A stream whose reader fell behind (a slow client) while its node sends 2-byte chunks:
    the read-ahead holds about ``STREAM_BUFFER_BYTES``, not an object a chunk (found
    2026-12-05: ~60x, ~15 MiB a stream), and the reader still gets every byte in order."""
    body = 1 << 20
    async with serve(tiny_chunks(body)) as (url, _), pool() as p:  # type: ignore[arg-type]
        tracemalloc.start()
        try:
            s = await p.stream(url + "/", b"{}", H, timeout_s=10, connect_s=5)
            await asyncio.sleep(0.5)  # the reader away: the read-ahead fills, then pauses
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        got = await s.read()
        await s.aclose()
        assert got == b"a" * body
        assert peak < 4 * STREAM_BUFFER_BYTES, peak
