"""The gateway's minimal HTTP/1.1 client (registry/http1.py) against real loopback servers:
keep-alive reuse and when a connection must not be reused, bodies, pins, and each failure
as the exception the NodeClient tree maps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from LLM_Mesh.registry.http1 import Http1ConnectError, Http1Error, Http1Pool, Http1Timeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
H = {"Content-Type": "application/json"}


async def _read_request(r: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await r.readuntil(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    return head, (await r.readexactly(n) if n else b"")


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    conns: list[int] = []

    async def wrapped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(1)
        try:
            await handler(r, w)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", conns
    finally:
        server.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def echo_forever(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while True:
        _, body = await _read_request(r)
        w.write(ok(body))
        await w.drain()


@asynccontextmanager
async def pool(**kw: object) -> AsyncIterator[Http1Pool]:
    p = Http1Pool(user_agent="t", keepalive_s=kw.pop("keepalive_s", 4.0), **kw)  # type: ignore[arg-type]
    try:
        yield p
    finally:
        await p.aclose()


async def test_keep_alive_reuses_one_connection_and_sends_what_it_was_given() -> None:
    heads: list[bytes] = []

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            head, body = await _read_request(r)
            heads.append(head)
            w.write(ok(body, b"Retry-After: 7\r\n"))
            await w.drain()

    async with serve(h) as (url, conns), pool() as p:
        for i in range(3):
            resp = await p.post(url + "/v1/x?q=1", b'{"i":%d}' % i, {**H, "X-Request-Id": "r"},
                                timeout_s=5, connect_s=5)  # fmt: skip
            assert (resp.status, resp.content) == (200, b'{"i":%d}' % i)
            assert resp.headers.get("retry-after") == "7"  # case-insensitive
    assert len(conns) == 1 and p.connects == 1
    assert heads[0].startswith(b"POST /v1/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nX-Request-Id: r\r\n" in heads[0] and b"\r\nContent-Length: 7\r\n" in heads[0]


async def test_connection_close_is_not_reused() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(ok(b"{}", b"Connection: close\r\n"))
        await w.drain()
        await asyncio.sleep(0.2)  # the client must not wait for the close

    async with serve(h) as (url, conns), pool() as p:
        for _ in range(2):
            assert (await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)).status == 200
    assert p.connects == 2 and len(conns) == 2


async def test_a_connection_the_node_closed_while_idle_is_not_used() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        _, body = await _read_request(r)
        w.write(ok(body))
        await w.drain()  # then close (keep-alive said, but the node went away)

    async with serve(h) as (url, _), pool() as p:
        assert (await p.post(url + "/", b"1", H, timeout_s=5, connect_s=5)).content == b"1"
        await asyncio.sleep(0.05)  # the close reaches the client
        assert (await p.post(url + "/", b"2", H, timeout_s=5, connect_s=5)).content == b"2"
    assert p.connects == 2


async def test_idle_connections_expire() -> None:
    now = [0.0]
    async with serve(echo_forever) as (url, _), pool(keepalive_s=4.0, clock=lambda: now[0]) as p:
        await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
        now[0] = 3.9
        await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
        assert p.connects == 1
        now[0] = 8.0  # idle 4.1 s: the node (keep-alive 5 s) may be closing it
        await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
        assert p.connects == 2


async def test_chunked_body() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await w.drain()
        await asyncio.sleep(0.01)
        w.write(b"2\r\nde\r\n0\r\n\r\n")
        await w.drain()
        await asyncio.sleep(1)

    async with serve(h) as (url, _), pool() as p:
        resp = await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
    assert resp.content == b"abcde"


async def test_a_redirect_is_an_answer_not_followed() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/\r\n"
                b"Content-Length: 0\r\n\r\n")  # fmt: skip
        await w.drain()
        await asyncio.sleep(1)

    async with serve(h) as (url, conns), pool() as p:
        resp = await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
    assert resp.status == 307 and len(conns) == 1


async def test_pins_connect_to_the_pinned_address_only() -> None:
    async with serve(echo_forever) as (url, conns):
        port = url.rsplit(":", 1)[1]
        pins = {"node.example": ("127.0.0.1",)}
        async with pool(resolve=pins.get) as p:
            resp = await p.post(f"http://node.example:{port}/v1/x", b"x", H,
                                timeout_s=5, connect_s=5)  # fmt: skip
            assert resp.content == b"x" and len(conns) == 1
            with pytest.raises(Http1ConnectError) as err:
                await p.post(f"http://other.example:{port}/", b"", H, timeout_s=5, connect_s=5)
            assert err.value.kind == "AddressRefused" and len(conns) == 1


async def test_connect_refused() -> None:
    server = await asyncio.start_server(echo_forever, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with pool() as p:
        with pytest.raises(Http1ConnectError):
            await p.post(f"http://127.0.0.1:{port}/", b"", H, timeout_s=5, connect_s=5)


async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_dropped() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")  # then stalls
        await w.drain()
        await asyncio.sleep(5)

    async with serve(h) as (url, _), pool() as p:
        with pytest.raises(Http1Timeout):
            await p.post(url + "/", b"", H, timeout_s=0.2, connect_s=5)
        assert not any(p._idle.values())


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"NOT HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\n\r\nabc",  # a length only the close would tell
    ],
    ids=["closed-before-answer", "garbage", "cut-short", "no-length"],
)
async def test_broken_answers_are_protocol_errors(answer: bytes) -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(answer)
        await w.drain()  # then close

    async with serve(h) as (url, _), pool() as p:
        with pytest.raises(Http1Error) as err:
            await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
    assert not isinstance(err.value, (Http1Timeout, Http1ConnectError))


async def test_huge_headers_are_refused() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        await w.drain()
        await asyncio.sleep(1)

    async with serve(h) as (url, _), pool() as p:
        with pytest.raises(Http1Error) as err:
            await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
    assert err.value.kind in ("LineTooLong", "BadHttpMessage")


async def test_no_header_injection_and_plain_http_only() -> None:
    async with pool() as p:
        with pytest.raises(ValueError):
            await p.post(
                "http://127.0.0.1:1/", b"", {"X": "a\r\nEvil: 1"}, timeout_s=1, connect_s=1
            )
        with pytest.raises(ValueError):
            await p.post("https://127.0.0.1:1/", b"", H, timeout_s=1, connect_s=1)
    with pytest.raises(Http1ConnectError):
        await p.post("http://127.0.0.1:1/", b"", H, timeout_s=1, connect_s=1)  # closed


def test_origin_parsing() -> None:
    p = Http1Pool(user_agent="t", keepalive_s=4.0)
    assert p._origin("http://Node.Example:8080/v1/x") == (
        "node.example",
        8080,
        b"Node.Example:8080",
        b"/v1/x",
    )
    assert p._origin("http://[::1]:9/a") == ("::1", 9, b"[::1]:9", b"/a")
    assert p._origin("http://h") == ("h", 80, b"h", b"/")
    for bad in ("http://user@h/", "http://h/a b", "ftp://h/"):
        with pytest.raises(ValueError):
            p._origin(bad)


async def test_a_second_answer_to_one_request_is_ignored_and_the_connection_dropped() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            _, body = await _read_request(r)
            w.write(ok(body) + ok(b"forged", b"X-Evil: 1\r\n"))  # one write, two answers
            await w.drain()

    async with serve(h) as (url, conns), pool() as p:
        for i in range(2):
            resp = await p.post(url + "/", b"%d" % i, H, timeout_s=5, connect_s=5)
            assert resp.content == b"%d" % i and "x-evil" not in resp.headers
    assert p.connects == 2 and len(conns) == 2  # never reused


async def test_a_body_over_the_bound_is_refused() -> None:
    """The bound the caller gives (the send stage's for its request; else MAX_BODY_BYTES)."""

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            _, body = await _read_request(r)
            w.write(ok(body))
            await w.drain()

    async with serve(h) as (url, _), pool() as p:
        got = await p.post(url + "/", b"a" * 1000, H, timeout_s=5, connect_s=5, limit=1000)
        assert len(got.content) == 1000
        with pytest.raises(Http1Error) as err:
            await p.post(url + "/", b"a" * 1001, H, timeout_s=5, connect_s=5, limit=1000)
    assert err.value.kind == "PayloadTooLarge"


# --- streams ------------------------------------------------------------------------

STREAM_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def test_a_stream_gives_each_piece_as_it_comes_then_its_connection_goes_back() -> None:
    asked = asyncio.Event()

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD + chunked(b"data: 1\n\n"))
        await w.drain()
        await asyncio.wait_for(asked.wait(), 5)  # only once the client had the first piece
        w.write(chunked(b"data: 2\n\n") + b"0\r\n\r\n")
        await w.drain()
        await echo_forever(r, w)  # the same connection serves the next request

    async with serve(h) as (url, conns), pool() as p:
        s = await p.stream(url + "/v1/x", b"{}", H, timeout_s=5, connect_s=5)
        assert s.status == 200 and s.headers.get("transfer-encoding") == "chunked"
        got = []
        async for piece in s.chunks():
            got.append(piece)
            asked.set()
        await s.aclose()
        assert got == [b"data: 1\n\n", b"data: 2\n\n"]
        assert (await p.post(url + "/", b"again", H, timeout_s=5, connect_s=5)).content == b"again"
    assert p.connects == 1 and len(conns) == 1


async def test_a_stream_closed_before_its_end_drops_its_connection() -> None:
    first = True

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal first
        if not first:
            await echo_forever(r, w)
        first = False
        await _read_request(r)
        w.write(STREAM_HEAD + chunked(b"data: 1\n\n"))
        await w.drain()
        await echo_forever(r, w)  # (the stream never ends)

    async with serve(h) as (url, conns), pool() as p:
        s = await p.stream(url + "/", b"{}", H, timeout_s=5, connect_s=5)
        async for piece in s.chunks():
            assert piece == b"data: 1\n\n"
            break
        await s.aclose()
        await s.aclose()  # idempotent
        assert (await p.post(url + "/", b"x", H, timeout_s=5, connect_s=5)).status == 200
    assert p.connects == 2 and len(conns) == 2


async def test_an_answer_that_came_with_its_head_is_read_and_the_connection_kept() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(r)
            w.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\nnope!")
            await w.drain()

    async with serve(h) as (url, _), pool() as p:
        for _ in range(2):
            s = await p.stream(url + "/", b"{}", H, timeout_s=5, connect_s=5)
            assert s.status == 400 and await s.read() == b"nope!"
            await s.aclose()
    assert p.connects == 1


async def test_a_stream_times_out_only_when_no_byte_came_for_the_timeout() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD)
        for _ in range(8):  # 0.8 s in all, never 0.25 s without a byte
            w.write(chunked(b"x"))
            await w.drain()
            await asyncio.sleep(0.1)
        await asyncio.sleep(5)  # then a stall

    async with serve(h) as (url, _), pool() as p:
        s = await p.stream(url + "/", b"{}", H, timeout_s=0.25, connect_s=5)
        got = b""
        with pytest.raises(Http1Timeout):
            async for piece in s.chunks():
                got += piece
        await s.aclose()
    assert got == b"x" * 8


async def test_a_stream_whose_node_breaks_off_is_an_error() -> None:
    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD + chunked(b"data: 1\n\n"))
        await w.drain()
        await asyncio.sleep(0.05)  # then close inside the chunked body

    async with serve(h) as (url, _), pool() as p:
        s = await p.stream(url + "/", b"{}", H, timeout_s=5, connect_s=5)
        got = []
        with pytest.raises(Http1Error) as err:
            async for piece in s.chunks():
                got.append(piece)
    assert got == [b"data: 1\n\n"] and err.value.kind == "ServerDisconnected"
    assert not isinstance(err.value, Http1Timeout)


async def test_a_reader_that_falls_behind_stops_the_connection_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import LLM_Mesh.registry.http1_stream as http1_stream

    monkeypatch.setattr(http1_stream, "STREAM_BUFFER_BYTES", 4096)
    piece = b"y" * 1000

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD)
        for _ in range(50):
            w.write(chunked(piece))
        w.write(b"0\r\n\r\n")
        await w.drain()

    async with serve(h) as (url, _), pool() as p:
        s = await p.stream(url + "/", b"{}", H, timeout_s=5, connect_s=5)
        await asyncio.sleep(0.1)  # not reading: at most about the bound is read ahead
        (conn,) = p._open
        assert conn.transport is not None and not conn.transport.is_reading()
        assert await s.read() == piece * 50  # then all of it, in order
        await s.aclose()


async def test_a_stream_closed_by_another_task_wakes_its_reader_with_an_error() -> None:
    """The reader waits for the next piece; another task closes the stream: the reader
    raises at once (as aiohttp's did), it does not wait for a node that may never send."""

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD + chunked(b"data: 1\n\n"))
        await w.drain()
        await asyncio.sleep(5)  # then nothing for a long while

    async with serve(h) as (url, _), pool() as p:
        s = await p.stream(url + "/", b"{}", H, timeout_s=30, connect_s=5)
        got: list[bytes] = []

        async def read() -> None:
            async for piece in s.chunks():
                got.append(piece)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.1)
        await s.aclose()
        with pytest.raises(Http1Error) as err:
            await asyncio.wait_for(reader, 20.0)  # short of timeout_s (1 s before flakes40)
    assert got == [b"data: 1\n\n"] and err.value.kind == "ClientClosed"
    assert not p._open  # the connection was dropped, not kept


async def test_a_stream_nobody_reads_lets_go_of_its_connection_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paused for a reader that fell behind, and the reader never takes a byte (nor closes
    the stream): after the read timeout the stream fails and its connection is dropped,
    so the node is not held on back-pressure for ever."""
    import LLM_Mesh.registry.http1_stream as http1_stream

    monkeypatch.setattr(http1_stream, "STREAM_BUFFER_BYTES", 4096)

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_request(r)
        w.write(STREAM_HEAD)
        with contextlib.suppress(ConnectionError):
            for _ in range(10_000):
                w.write(chunked(b"z" * 1000))
                await w.drain()

    async with serve(h) as (url, _), pool() as p:
        s = await p.stream(url + "/", b"{}", H, timeout_s=0.3, connect_s=5)
        await asyncio.sleep(0.1)
        (conn,) = p._open
        assert conn.transport is not None and not conn.transport.is_reading()  # paused
        await asyncio.sleep(0.6)  # two timeouts, no reader
        assert conn.closed or conn.transport is None or conn.transport.is_closing()
        with pytest.raises(Http1Timeout):
            async for _ in s.chunks():
                pass
        await s.aclose()
    assert not p._open


@pytest.mark.parametrize(
    "bad",
    [
        {"X": "a\rb"},
        {"X": "a\nb"},
        {"X\r\nEvil": "1"},
        {"X\n": "1"},
        {"A": "1", "B": "2\r"},
        {"A": "\r\n", "B": "x"},
    ],
)
async def test_a_line_break_in_any_header_name_or_value_is_refused(bad: dict[str, str]) -> None:
    async with pool() as p:
        with pytest.raises(ValueError, match="line break"):
            await p.post("http://127.0.0.1:1/", b"", bad, timeout_s=1, connect_s=1)
        assert p.connects == 0  # nothing sent


async def test_the_requests_bytes() -> None:
    """The head as the node gets it: request line, Host, User-Agent, Content-Length, then the
    given headers in their order, each ``name: value`` (latin-1), then the body."""
    async with pool() as p:
        key, request = p._request(
            "http://Node.example:8080/v1/chat/completions", b'{"a":1}',
            {"X-Mesh-Gateway": "registry-x", "X-Request-Id": "req-1", "X-L": "caf\xe9"},
        )  # fmt: skip
    assert key == ("node.example", 8080)
    assert request == (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: Node.example:8080\r\nUser-Agent: t\r\n"
        b"Content-Length: 7\r\nX-Mesh-Gateway: registry-x\r\nX-Request-Id: req-1\r\n"
        b"X-L: caf\xe9\r\n\r\n"
        b'{"a":1}'
    )


@pytest.mark.parametrize("call", ["post", "post_pooled"])
async def test_an_exchange_gives_its_connection_back_and_a_failed_one_drops_it(call: str) -> None:
    """``post`` and ``post_pooled`` (both by ``_Conn.exchange``): after a whole answer the
    connection is idle in the pool again; after a timeout it is aborted and out of the pool
    (neither idle nor open); ``post_pooled``'s timeout is the ``expired`` it was given."""

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            _, body = await _read_request(r)
            if body == b"stall":
                await asyncio.sleep(5)
            w.write(ok(body))
            await w.drain()

    async def send(p: Http1Pool, url: str, body: bytes, timeout_s: float) -> bytes:
        if call == "post":
            return (await p.post(url, body, H, timeout_s=timeout_s, connect_s=5)).content
        got = await p.post_pooled(url, body, H, timeout_s=timeout_s, expired=("late", "Late"))
        assert got is not None  # a pooled connection was there
        return got.content

    async with serve(h) as (url, _), pool() as p:
        if call == "post_pooled":
            await p.post(url + "/", b"warm", H, timeout_s=5, connect_s=5)  # one to reuse
        assert await send(p, url + "/", b"1", 5) == b"1"
        (conn,) = p._open
        assert list(p._idle.values()) == [[conn]] and not conn.closed  # back, idle
        with pytest.raises(Http1Timeout) as err:
            await send(p, url + "/", b"stall", 0.2)
        assert conn.closed and not p._open and not any(p._idle.values())  # dropped
        assert p.connects == 1
        if call == "post_pooled":
            assert (str(err.value), err.value.kind) == ("late", "Late")


async def test_headers_read_whole_and_as_text_when_first_asked_for() -> None:
    """The headers are kept as read and decoded when first read (``Http1Response.headers``,
    the node client's): every one, in order, repeated names kept, latin-1, any case; the
    same object after; a stream's at once."""
    extra = b"X-A: 1\r\nx-a: 2\r\nX-Latin: caf\xe9\r\nRetry-After: 9\r\n"

    async def h(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(r)
            w.write(ok(b"{}", extra))
            await w.drain()

    async with serve(h) as (url, _), pool() as p:
        resp = await p.post(url + "/", b"", H, timeout_s=5, connect_s=5)
        assert resp.head[0] == (b"Content-Length", b"2")  # as read, nothing decoded yet
        headers = resp.headers
        assert list(headers.items()) == [
            ("Content-Length", "2"), ("X-A", "1"), ("x-a", "2"), ("X-Latin", "café"),
            ("Retry-After", "9"),
        ]  # fmt: skip
        assert headers.getall("x-A") == ["1", "2"] and headers["retry-after"] == "9"
        assert resp.headers is headers
        s = await p.stream(url + "/", b"", H, timeout_s=5, connect_s=5)
        assert s.headers.getall("X-a") == ["1", "2"] and s.headers["x-latin"] == "café"
        await s.aclose()
