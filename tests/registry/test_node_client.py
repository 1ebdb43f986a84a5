"""The gateway's outbound client against real loopback servers: answers, streams and how
each transport failure maps onto the NodeClient exception tree (a MockTransport can
not show what aiohttp raises)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from LLM_Mesh.registry.address_pins import AddressPins
from LLM_Mesh.registry.node_client import (
    DEADLINE_PASSED,
    AiohttpNodeClient,
    NodeClient,
    NodeConnectError,
    NodeProtocolError,
    NodeTimeout,
)
from LLM_Mesh.registry.node_client_httpx import HttpxNodeClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEADERS = {"Content-Type": "application/json"}


async def _read_request(r: asyncio.StreamReader) -> bytes:
    head = await r.readuntil(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    return await r.readexactly(n) if n else b""


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    async def wrapped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await handler(r, w)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def make(kind: str) -> AsyncIterator[NodeClient]:
    client: NodeClient
    if kind == "aiohttp":  # its plain-HTTP POST on registry/http1.py
        client = AiohttpNodeClient()
    elif kind == "aiohttp-only":  # every call on aiohttp
        client = AiohttpNodeClient(fast_post=False)
    else:
        client = HttpxNodeClient(httpx.AsyncClient())
    try:
        yield client
    finally:
        await client.aclose()


KINDS = pytest.mark.parametrize("kind", ["aiohttp", "aiohttp-only", "httpx"])


@KINDS
async def test_post_reads_the_answer(kind: str) -> None:
    seen: list[bytes] = []

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:  # keep-alive: several requests on one connection
            seen.append(await _read_request(r))
            body = b'{"ok":true}'
            w.write(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n"
                b"Content-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            await w.drain()

    async with serve(h) as url, make(kind) as client:
        for _ in range(3):
            resp = await client.post(url + "/v1/x", b'{"a":1}', HEADERS, timeout_s=5, connect_s=5)
            assert resp.status_code == 429
            assert resp.headers.get("retry-after") == "3"
            assert resp.content == b'{"ok":true}' == await resp.aread()
    assert seen == [b'{"a":1}'] * 3


@KINDS
async def test_connect_error(kind: str) -> None:
    async with make(kind) as client:
        with pytest.raises(NodeConnectError):
            await client.post(
                f"http://127.0.0.1:{_closed_port()}/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5
            )


@KINDS
async def test_read_timeout(kind: str) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        await asyncio.sleep(5)  # never answers

    async with serve(h) as url, make(kind) as client:
        with pytest.raises(NodeTimeout):
            await client.post(url + "/v1/x", b"{}", HEADERS, timeout_s=0.2, connect_s=5)


@KINDS
async def test_post_by_cuts_the_whole_call_at_the_requests_deadline(kind: str) -> None:
    """``post_by``: the first call answered (its connection pooled), the second trickled a
    byte at a time, each within any read timeout: cut at ``left`` in all, as the request's
    deadline (``DeadlineExceeded``, the send stage's 504), on the pooled connection too
    (``Http1Pool.post_pooled``'s one timer: 2026-12-05)."""
    calls = 0

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal calls
        while True:
            await _read_request(r)
            calls += 1
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
            if calls == 1:
                w.write(b'{"ok":true}')
                await w.drain()
                continue
            for b in b'{"ok":true}':  # 1.1 s in all
                await asyncio.sleep(0.1)
                w.write(bytes([b]))
                await w.drain()

    async with serve(h) as url, make(kind) as client:
        resp = await client.post_by(url + "/v1/x", b"{}", HEADERS, left=5, connect_s=5)
        assert (resp.status_code, resp.content) == (200, b'{"ok":true}')
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(NodeTimeout) as caught:
            await client.post_by(url + "/v1/x", b"{}", HEADERS, left=0.35, connect_s=5)
        assert 0.3 <= loop.time() - t0 < 1.0
        assert (str(caught.value), caught.value.kind) == DEADLINE_PASSED
        assert DEADLINE_PASSED == ("the request's deadline passed", "DeadlineExceeded")
    if kind == "aiohttp":
        assert client.http1 is not None and client.http1.connects == 1  # the pooled one


@KINDS
async def test_closed_without_answer_is_a_protocol_error(kind: str) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)  # then close: no status line

    async with serve(h) as url, make(kind) as client:
        with pytest.raises(NodeProtocolError):
            await client.post(url + "/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5)


@KINDS
async def test_garbage_is_a_protocol_error(kind: str) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"NOT HTTP AT ALL\r\n\r\n")
        await w.drain()

    async with serve(h) as url, make(kind) as client:
        with pytest.raises(NodeProtocolError):
            await client.post(url + "/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5)


def _chunked(*parts: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


@KINDS
async def test_stream_lines_across_chunks(kind: str) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD)
        for part in (b'data: {"a"', b":1}\n\ndata: x\r\n", b"\r\ndata: [DONE]\n\n"):
            w.write(_chunked(part))
            await w.drain()
            await asyncio.sleep(0.01)
        w.write(b"0\r\n\r\n")
        await w.drain()

    async with serve(h) as url, make(kind) as client:
        resp = await client.stream(url + "/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5)
        assert resp.status_code == 200
        lines = [line async for line in resp.aiter_lines()]
        await resp.aclose()
        await resp.aclose()  # idempotent
    assert lines == ['data: {"a":1}', "", "data: x", "", "data: [DONE]", ""]


async def test_a_plain_http_stream_goes_on_the_http1_pool_and_keeps_its_connection() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await _read_request(r)
            w.write(STREAM_HEAD + _chunked(b"data: 1\n\ndata: [DONE]\n\n") + b"0\r\n\r\n")
            await w.drain()

    async with serve(h) as url, make("aiohttp") as client:
        assert isinstance(client, AiohttpNodeClient) and client.http1 is not None
        for _ in range(2):
            resp = await client.stream(url + "/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5)
            batches = [b async for b in resp.aiter_line_batches()]
            await resp.aclose()
            assert batches == [["data: 1", "", "data: [DONE]", ""]]
        assert client.http1.connects == 1  # one connection, reused after the first stream


@KINDS
async def test_stream_cut_off_is_a_protocol_error(kind: str) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD + _chunked(b"data: 1\n\n"))
        await w.drain()
        await asyncio.sleep(0.05)  # then close inside the chunked body

    async with serve(h) as url, make(kind) as client:
        resp = await client.stream(url + "/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5)
        got: list[str] = []
        with pytest.raises(NodeProtocolError):
            async for line in resp.aiter_lines():
                got.append(line)
        await resp.aclose()
    assert got[:1] == ["data: 1"]


@KINDS
async def test_stream_stall_is_a_timeout(kind: str) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD + _chunked(b"data: 1\n\n"))
        await w.drain()
        await asyncio.sleep(5)

    async with serve(h) as url, make(kind) as client:
        resp = await client.stream(url + "/v1/x", b"{}", HEADERS, timeout_s=0.2, connect_s=5)
        with pytest.raises(NodeTimeout):
            async for _ in resp.aiter_lines():
                pass
        await resp.aclose()


@KINDS
async def test_get(kind: str) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno")
        await w.drain()

    async with serve(h) as url, make(kind) as client:
        resp = await client.get(url + "/mesh/health", timeout_s=5)
        assert (resp.status_code, resp.content) == (503, b"no")
    assert client.is_closed


async def test_aiohttp_keeps_no_cookie_a_node_sets() -> None:
    """A node's ``Set-Cookie`` is dropped: nothing is sent back on later requests."""
    heads: list[bytes] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            heads.append(head.lower())
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await r.readexactly(int(line.split(b":")[1]))
            w.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: track=me; Path=/\r\n"
                    b"Content-Length: 2\r\n\r\n{}")  # fmt: skip
            await w.drain()

    client = AiohttpNodeClient()
    try:
        async with serve(handler) as url:
            url = url.replace("127.0.0.1", "localhost")  # aiohttp's jar ignores IP hosts
            for _ in range(2):
                r = await client.post(url + "/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5)
                assert r.status_code == 200
    finally:
        await client.aclose()
    assert len(heads) == 2 and all(b"cookie:" not in h for h in heads)


async def _endless_body(r: asyncio.StreamReader, w: asyncio.StreamWriter, sent: list[int],
                        gzip_bomb: bool = False) -> None:  # fmt: skip
    await _read_request(r)
    if gzip_bomb:  # 64 MiB of zeros in ~64 KiB: read whole, decoded
        import gzip

        body = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
        sent.append(len(body))
        await w.drain()
        await asyncio.sleep(5)
        return
    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(1024):  # 64 MiB, as fast as it is read
        w.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await w.drain()
        sent.append(len(chunk))
    w.write(b"0\r\n\r\n")
    await w.drain()


@KINDS
@pytest.mark.parametrize("bomb", [False, True], ids=["endless", "gzip"])
async def test_get_reads_a_bounded_answer(kind: str, bomb: bool) -> None:
    """A node's health answer of 64 MiB (sent as fast as it is read, or a gzip bomb of
    64 KiB) is a protocol error once past ``MAX_GET_BYTES`` (1 MiB): not read whole."""
    sent: list[int] = []
    async with serve(lambda r, w: _endless_body(r, w, sent, bomb)) as url, make(kind) as client:
        with pytest.raises(NodeProtocolError):
            await asyncio.wait_for(client.get(url + "/mesh/health", timeout_s=5), 20)
    if not bomb:
        assert sum(sent) < 12 << 20  # stopped reading (socket buffers)


@KINDS
async def test_get_is_bounded_in_total_by_its_timeout(kind: str) -> None:
    """A node dripping its health answer a byte at a time (each read within the timeout)
    does not hold the check past ``timeout_s`` in all."""

    async def drip(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            w.write(b" ")
            await w.drain()
            await asyncio.sleep(0.05)

    loop = asyncio.get_running_loop()
    async with serve(drip) as url, make(kind) as client:
        t0 = loop.time()
        with pytest.raises(NodeTimeout):
            await asyncio.wait_for(client.get(url + "/mesh/health", timeout_s=0.5), 10)
        assert loop.time() - t0 < 3


@pytest.mark.parametrize("kind", ["aiohttp-only", "httpx"])
async def test_a_slow_address_check_counts_within_the_gets_timeout(kind: str) -> None:
    """``timeout_s`` of a health check is the whole check: the address check of a URL not
    pinned yet (after a restart: a DNS lookup), the connect, the request and the answer.
    Before, the httpx backend checked the address outside it (here 2 s, up to the pins'
    ``resolve_timeout_s`` of 5 s beyond the check's) and then failed as a connect error."""

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)
        return ["127.0.0.1"]

    pins = AddressPins(allow_private=True, resolver=slow, resolve_timeout_s=2)
    client: NodeClient = (
        AiohttpNodeClient(fast_post=False, pins=pins)
        if kind == "aiohttp-only"
        else HttpxNodeClient(httpx.AsyncClient(), pins=pins)
    )
    try:
        with pytest.raises(NodeTimeout):
            await asyncio.wait_for(client.get("http://node.test:1/mesh/health", timeout_s=0.3), 10)
    finally:
        await client.aclose()


async def _big_answer(r: asyncio.StreamReader, w: asyncio.StreamWriter, mib: int,
                      gzip_bomb: bool) -> None:  # fmt: skip
    await _read_request(r)
    if gzip_bomb:
        import gzip

        body = gzip.compress(b"\0" * (mib << 20), compresslevel=9)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
        await w.drain()
        await asyncio.sleep(5)
        return
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(mib << 20).encode() + b"\r\n\r\n")
    chunk = b"x" * (1 << 20)
    for _ in range(mib):
        w.write(chunk)
        await w.drain()


@pytest.mark.parametrize("kind", ["aiohttp-only", "httpx"])  # "aiohttp": http1.py's bound
@pytest.mark.parametrize("bomb", [False, True], ids=["plain", "gzip"])
async def test_an_answer_over_the_bound_is_a_protocol_error(kind: str, bomb: bool) -> None:
    """A node's answer (an https node's goes this way) of 80 MiB, or a gzip bomb that
    decodes to 256 MiB, is not read whole into the gateway's memory: a protocol error past
    64 MiB decoded (``http1.MAX_BODY_BYTES``, as a plain-HTTP answer's)."""
    mib = 256 if bomb else 80
    async with serve(lambda r, w: _big_answer(r, w, mib, bomb)) as url, make(kind) as client:
        with pytest.raises(NodeProtocolError):
            await client.post(url + "/v1/x", b"{}", HEADERS, timeout_s=20, connect_s=5)
        resp = await client.stream(url + "/v1/x", b"{}", HEADERS, timeout_s=20, connect_s=5)
        with pytest.raises(NodeProtocolError):
            await resp.aread()  # a refusal's body, read whole (send.py)
        await resp.aclose()


@KINDS
async def test_a_streamed_answers_body_read_whole_is_bounded(kind: str) -> None:
    """A node answering a stream with a refusal or failure of 80 MiB (its body is read
    whole: send.py, send_stream.py): a protocol error past 64 MiB, on every transport."""
    async with serve(lambda r, w: _big_answer(r, w, 80, False)) as url, make(kind) as client:
        resp = await client.stream(url + "/v1/x", b"{}", HEADERS, timeout_s=20, connect_s=5)
        with pytest.raises(NodeProtocolError):
            await resp.aread()
        await resp.aclose()


def _stacked_gzip(mib: int) -> bytes:
    """``mib`` MiB of zeros gzipped twice: well under 1 KiB sent."""
    import gzip

    return gzip.compress(gzip.compress(b"\0" * (mib << 20), compresslevel=9), compresslevel=9)


@pytest.mark.parametrize("call", ["get", "post", "stream-lines"])
async def test_httpx_refuses_stacked_encodings_before_inflating_them(call: str) -> None:
    """Found 2026-12-03: the httpx backend let httpx decode ``Content-Encoding: gzip, gzip``,
    whose decoders inflate a whole read at once: under 1 KiB sent became 128 MiB in one
    step, before any bound counted it. Now ``bounded_http.decoded`` reads the body: stacked
    encodings are a protocol error, nothing inflated (peak memory stays small)."""
    import tracemalloc

    body = _stacked_gzip(128)
    assert len(body) < 1024

    async def stacked(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
        await w.drain()
        await asyncio.sleep(5)

    async with serve(stacked) as url, make("httpx") as client:
        tracemalloc.start()
        try:
            with pytest.raises(NodeProtocolError) as caught:
                if call == "get":
                    await asyncio.wait_for(client.get(url + "/mesh/health", timeout_s=5), 20)
                elif call == "post":
                    await client.post(url + "/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5)
                else:
                    resp = await client.stream(url + "/v1/x", b"{}", HEADERS, timeout_s=5,
                                               connect_s=5)  # fmt: skip
                    try:
                        async for _ in resp.aiter_lines():
                            pass
                    finally:
                        await resp.aclose()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak >> 20} MiB"
    assert caught.value.kind == "ContentEncoding", caught.value


async def test_httpx_still_reads_one_gzip_and_offers_only_what_it_decodes() -> None:
    import gzip

    heads: list[bytes] = []
    text = b"data: one\n\ndata: two\n\n"

    async def gzipped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        heads.append((await r.readuntil(b"\r\n\r\n")).lower())
        await r.readexactly(2)
        body = gzip.compress(text)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
        await w.drain()

    async with serve(gzipped) as url, make("httpx") as client:
        r = await client.post(url + "/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5)
        assert r.content == text
        resp = await client.stream(url + "/v1/x", b"{}", HEADERS, timeout_s=5, connect_s=5)
        lines = [line async for line in resp.aiter_lines()]
        await resp.aclose()
        assert lines == ["data: one", "", "data: two", ""], lines
    assert all(b"accept-encoding: gzip, deflate\r\n" in h for h in heads), heads


@pytest.mark.parametrize("call", ["post", "post_by", "stream"])
async def test_what_the_pool_cannot_send_is_an_invalid_url_protocol_error(call: str) -> None:
    """A header the HTTP/1.1 pool refuses to send (a line break: its ``ValueError``) is the
    client's ``NodeProtocolError`` ``InvalidURL`` on each of its pool calls, nothing sent;
    the pool's own errors keep their kinds (a refused connect: ``NodeConnectError``)."""
    seen: list[bytes] = []

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(r))

    bad = {"X-A": "1\r\nX-Evil: 1"}
    async with serve(h) as url, make("aiohttp") as client:
        if call == "post_by":
            calls = client.post_by(url + "/v1/x", b"{}", bad, left=5, connect_s=5)
        else:
            calls = getattr(client, call)(url + "/v1/x", b"{}", bad, timeout_s=5, connect_s=5)
        with pytest.raises(NodeProtocolError) as err:
            await calls
        assert err.value.kind == "InvalidURL" and "line break" in str(err.value)
        closed = f"http://127.0.0.1:{_closed_port()}/v1/x"
        with pytest.raises(NodeConnectError):
            if call == "post_by":
                await client.post_by(closed, b"{}", HEADERS, left=5, connect_s=5)
            else:
                await getattr(client, call)(closed, b"{}", HEADERS, timeout_s=5, connect_s=5)
    assert seen == []


async def _small_then_endless(r: asyncio.StreamReader, w: asyncio.StreamWriter,
                              sent: list[int]) -> None:  # fmt: skip
    await _read_request(r)
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")  # the connection is pooled
    await w.drain()
    await _endless_body(r, w, sent)


@KINDS
@pytest.mark.parametrize("pooled", [False, True], ids=["fresh", "pooled"])
async def test_post_by_stops_reading_at_the_requests_bound(kind: str, pooled: bool) -> None:
    """The send stage's bound of an answer to its request (``limit``: core/answer_bound.py)
    is enforced while reading, on a fresh and on a pooled connection: a node sending 64 MiB
    as fast as it is read is refused past 1 MiB, not read whole first (found 2026-12-05:
    every answer up to 64 MiB was read, parsed and written again, whatever was asked)."""
    sent: list[int] = []
    if pooled:
        handler: Handler = lambda r, w: _small_then_endless(r, w, sent)  # noqa: E731
    else:
        handler = lambda r, w: _endless_body(r, w, sent)  # noqa: E731
    async with serve(handler) as url, make(kind) as client:
        if pooled:
            small = await client.post_by(
                url + "/v1/x", b"{}", HEADERS, left=5, connect_s=5, limit=1 << 20
            )
            assert await small.aread() == b"{}"
        with pytest.raises(NodeProtocolError) as err:
            await asyncio.wait_for(client.post_by(
                url + "/v1/x", b"{}", HEADERS, left=20, connect_s=5, limit=1 << 20
            ), 20)  # fmt: skip
        assert err.value.kind == "PayloadTooLarge"
    assert sum(sent) < 12 << 20  # stopped reading (socket buffers)
