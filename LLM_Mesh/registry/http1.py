"""A minimal keep-alive HTTP/1.1 client for the gateway's one hot call: a plain-HTTP POST.

The gateway forwards every non-streamed request to a node with one ``POST`` whose answer
it reads whole. :class:`AiohttpNodeClient` hands exactly that call (``http://`` only) to
:class:`Http1Pool`: an ``asyncio.Protocol`` per connection, the ``httptools`` response
parser (the C parser uvicorn serves with), one ``transport.write`` per request and
idle connections kept per origin. On this path it costs a fraction of
``aiohttp.ClientSession.request``'s CPU per request (measured: ``docs/benchmarks.md``).
A stream to a plain-HTTP node goes on it too (:meth:`Http1Pool.stream`); ``GET`` and
``https`` stay on aiohttp.

What it keeps of the client's contract (:mod:`~LLM_Mesh.registry.node_client`):

* the same exception tree: refused / unreachable / connect timeout →
  ``NodeConnectError`` (nothing sent); no complete answer within ``timeout_s`` →
  ``NodeTimeout``; the connection broke or the answer is not valid HTTP →
  ``NodeProtocolError``;
* no SSRF: with ``pins`` it connects only to a host's pinned addresses (the caller has
  checked that the URL was admitted), never resolves a name itself, never follows a
  redirect (a 3xx is an answer like any other);
* idle connections expire after ``keepalive_s`` (below the node's own keep-alive, so
  a connection the node is closing is not reused), and are closed within another
  ``keepalive_s`` (:meth:`Http1Pool._sweep`, every origin's, called again or not); a connection the node closed or
  answered with ``Connection: close`` is never reused; an answer is read whole before
  its connection goes back to the pool, so one connection never carries two answers;
  bytes after the answer (a second answer to one request) are not read into it and the
  connection is dropped;
* bounds: an answer's headers at most :data:`MAX_HEADER_BYTES`, and as many bytes of it
  without a byte of body (its head, a chunk's size line, its trailers: a line that never
  ends is refused there, not held until the deadline), its body at most
  :data:`MAX_BODY_BYTES` or the caller's smaller ``limit`` (the send stage's bound of an
  answer to its request: ``core/answer_bound.py``; ``NodeProtocolError`` past either, read
  no further), held as about its own bytes
  however it is cut (its pieces past :data:`BODY_PIECES` gathered in one buffer, not an
  object a chunk). An answer must say its
  length (``Content-Length`` or chunked, as uvicorn always does); one that ends only
  when the connection closes is a protocol error.

Streams (:meth:`Http1Pool.stream`, a streamed generation's SSE answer) use the same
connections: the call returns once the status and headers are in, and an
:class:`~LLM_Mesh.registry.http1_stream.Http1Stream` reads the body as it arrives (its read
timeout, read-ahead bound and when its connection goes back: ``http1_stream.py``). A
stream's body has no total bound. The errors are ``http1_errors.py``'s.

An answer's headers are kept as the parser gave them (bytes) and decoded into a
case-insensitive multidict only when first read (``Http1Response.headers``): on the hot
path nobody reads a 200's (a refusal's ``Retry-After`` is read); a stream's are decoded at
its head.

A pooled connection that the node closed while it sat idle is dropped when it is taken
(its ``connection_lost`` has run); the request then goes on a fresh connection. No
request is ever sent twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from LLM_Mesh.registry.http1_errors import Http1ConnectError, Http1Error, Http1Timeout
from LLM_Mesh.registry.http1_stream import Http1Stream

__all__ = [
    "Http1ConnectError",
    "Http1Error",
    "Http1Pool",
    "Http1Response",
    "Http1Stream",
    "Http1Timeout",
]

MAX_HEADER_BYTES = 64 * 1024  # a node's answer head; more is a protocol error
MAX_BODY_BYTES = 64 * 1024 * 1024  # a node's whole answer; more is a protocol error
MAX_IDLE_PER_ORIGIN = 256
BODY_PIECES = 8  # an answer's body pieces kept as read; the rest gathered in one buffer


Head = list[tuple[bytes, bytes]]  # an answer's headers as read: (name, value), in order


def decode_head(head: Head) -> CIMultiDictProxy[str]:
    """``head`` as case-insensitive text headers (latin-1), in order."""
    return CIMultiDictProxy(CIMultiDict([(n.decode("latin-1"), v.decode("latin-1"))
                                         for n, v in head]))  # fmt: skip


class Http1Response:
    """A whole answer: status, headers (case-insensitive, decoded from ``head`` when first
    read: a node's answer's are read only when it refused), body."""

    __slots__ = ("_headers", "content", "head", "status")

    def __init__(self, status: int, head: Head, content: bytes) -> None:
        self.status = status
        self.head = head
        self.content = content
        self._headers: CIMultiDictProxy[str] | None = None

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        headers = self._headers
        if headers is None:
            headers = self._headers = decode_head(self.head)
        return headers


class _Conn(asyncio.Protocol):
    """One connection; at most one request in flight."""

    __slots__ = (
        "_body",
        "_body_bytes",
        "_complete",
        "_done",
        "_head",
        "_head_bytes",
        "_head_only",
        "_keep",
        "_limit",
        "_more",
        "_parser",
        "_stream",
        "_unframed",
        "closed",
        "idle_since",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: Any = None
        self._done: asyncio.Future[None] | None = None
        self._head: Head = []  # the answer's headers as read (decoded when asked for)
        self._body: list[bytes] = []  # the body's first pieces (as a rule: its only one)
        self._more = bytearray()  # ... the pieces after them (tiny chunks): one buffer
        self._head_bytes = 0
        self._body_bytes = 0
        self._limit = MAX_BODY_BYTES  # this answer's most bytes of body (the request's bound)
        self._complete = False  # the answer has ended: anything after it is not read
        self._keep = False
        self._head_only = False  # the request waits for the head only (a stream)
        self._stream: Http1Stream | None = None  # a streamed answer's reader, once its head is in
        self._unframed = 0  # bytes fed since the last byte of body (head, chunk lines, trailers)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP connection's

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        err = Http1Error(f"the node closed the connection ({exc!r})", "ServerDisconnected")
        done = self._done
        if done is not None and not done.done():
            done.set_exception(err)
        if self._stream is not None and not self._complete:
            self._stream.fail(err)

    def data_received(self, data: bytes) -> None:
        parser, done = self._parser, self._done
        # a stream's body may come before its reader took over (``_head_only``): kept; a
        # byte after the answer's end (a stream's reader not yet back) is not parsed
        if (
            parser is None
            or self._complete
            or (not self._head_only and (done is None or done.done()))
        ):
            self.abort()  # bytes nobody asked for: this connection is not reusable
            return
        # httptools joins a header's pieces by ``+=`` until its line ends: without a bound
        # on the bytes fed without a byte of body, a line that never ends is kept (and
        # copied at every read, quadratic) until the deadline
        self._unframed += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the node asked to upgrade the connection", "ProtocolUpgrade")
        except httptools.HttpParserError as exc:
            self._fail(f"not a valid HTTP answer: {exc}", "BadHttpMessage")
        else:
            if self._unframed > MAX_HEADER_BYTES and not self._complete:
                self._fail(
                    "the answer's head, a chunk line or its trailers too large", "LineTooLong"
                )

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request: never reuse this connection
            self._keep = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._complete:
            return
        self._head_bytes += len(name) + len(value) + 4  # as on the wire: ": " and CRLF
        if self._head_bytes > MAX_HEADER_BYTES:
            self._fail("the answer's headers are too large", "LineTooLong")
            return
        self._head.append((name, value))

    def on_headers_complete(self) -> None:
        done = self._done
        if self._head_only and done is not None and not done.done():
            done.set_result(None)  # a stream's head is in: its caller reads the body

    def on_body(self, body: bytes) -> None:
        if self._complete:
            return
        self._unframed = 0
        if self._stream is not None:
            self._stream.feed(body)
            return
        self._body_bytes += len(body)
        if self._body_bytes > self._limit:  # read no further (the request's bound)
            self._fail(f"an answer over {self._limit} bytes", "PayloadTooLarge")
            return
        if len(self._body) < BODY_PIECES:
            self._body.append(body)
        else:  # a body in many tiny chunks is gathered, not kept as an object a chunk:
            # 2-byte chunks held ~60x their bytes (found 2026-12-05)
            self._more += body

    def on_message_complete(self) -> None:
        if self._complete:
            return
        done = self._done
        if self._head_only or (done is not None and not done.done()):
            self._complete = True
            # asked now: the parser forgets the message's keep-alive once it has ended
            self._keep = self._parser is not None and self._parser.should_keep_alive()
            if self._stream is not None:
                self._stream.end()
            elif done is not None and not done.done():  # (a stream's: done at its head)
                done.set_result(None)

    # ours
    def _fail(self, message: str, kind: str) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_exception(Http1Error(message, kind))
        if self._stream is not None:
            self._stream.fail(Http1Error(message, kind))
        self.abort()

    @staticmethod
    def _timed_out(
        done: asyncio.Future[None], timeout_s: float, expired: tuple[str, str] | None
    ) -> None:
        if not done.done():
            message, kind = expired or (f"no answer within {timeout_s:.3f} s", "ServerTimeoutError")
            done.set_exception(Http1Timeout(message, kind))

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def _send(
        self,
        request: bytes,
        timeout_s: float,
        *,
        head_only: bool = False,
        expired: tuple[str, str] | None = None,
        limit: int = MAX_BODY_BYTES,
    ) -> Any:
        """Write ``request`` and wait for the whole answer (``head_only``: its status and
        headers; the body read so far is in ``_body``); the parser. Past ``timeout_s`` an
        ``Http1Timeout`` (``expired``: its message and kind); past ``limit`` bytes of body
        an ``Http1Error`` ``PayloadTooLarge``, the connection dropped."""
        loop = asyncio.get_running_loop()
        self._head_only = head_only
        self._done = done = loop.create_future()
        self._head = []
        self._body = []
        self._more = bytearray()
        self._head_bytes = 0
        self._body_bytes = 0
        self._limit = limit
        self._complete = False
        self._keep = False
        self._unframed = 0
        self._parser = parser = httptools.HttpResponseParser(self)
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise Http1Error("the connection is closed", "ServerDisconnected")
        transport.write(request)
        # one timer, not a cancel scope: fails the future (works on Python 3.10 too)
        timer = loop.call_later(timeout_s, self._timed_out, done, timeout_s, expired)
        try:
            await done
        except BaseException:
            self.abort()  # timed out, cancelled or broken mid-answer: never reused
            self._parser = None
            raise
        finally:
            timer.cancel()
            self._done = None
        return parser

    async def exchange(
        self,
        pool: Http1Pool,
        key: tuple[str, int],
        request: bytes,
        timeout_s: float,
        expired: tuple[str, str] | None,
        limit: int = MAX_BODY_BYTES,
    ) -> Http1Response:
        """``request``'s whole answer (:meth:`Http1Pool.post`, :meth:`Http1Pool.post_pooled`);
        this connection back to ``pool``'s idle ones of ``key`` after it, out of ``pool`` on
        any failure (a timeout, a cancel, a broken answer: aborted, never reused)."""
        try:
            parser = await self._send(request, timeout_s, expired=expired, limit=limit)
            self._parser = None
            if not self._keep:
                self.abort()
            body, more = self._body, self._more
            if more:
                content = b"".join([*body, more])
                self._more = bytearray()  # (not kept while the connection is idle)
            else:
                content = body[0] if len(body) == 1 else b"".join(body)
            resp = Http1Response(parser.get_status_code(), self._head, content)
        except BaseException:
            pool._open.discard(self)
            raise
        pool._give_back(key, self)
        return resp

    async def open_stream(
        self, pool: Http1Pool, key: tuple[str, int], request: bytes, timeout_s: float
    ) -> Http1Stream:
        parser = await self._send(request, timeout_s, head_only=True)
        if self._more:  # (the body read with the head: the stream's reader takes it)
            self._body.append(bytes(self._more))
            self._more = bytearray()
        return Http1Stream(
            self, pool, key, parser.get_status_code(), decode_head(self._head), timeout_s
        )


class Http1Pool:
    """Keep-alive connections per origin (``(host, port)``) for plain-HTTP POSTs.

    ``resolve(host)`` gives the addresses to connect to (the pins; ``None``: the host
    has no pinned address, refused); without it the host is connected to as given.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        keepalive_s: float,
        resolve: Callable[[str], tuple[str, ...] | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ua = user_agent.encode("latin-1")
        self.keepalive_s = keepalive_s
        self._resolve = resolve
        self._clock = clock
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._origins: dict[str, tuple[str, int, bytes, bytes]] = {}
        self._open: set[_Conn] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False
        self.connects = 0  # connections opened (tests: reuse)

    def _origin(self, url: str) -> tuple[str, int, bytes, bytes]:
        """``url`` (``http://host[:port]/path``) as (host, port, Host header, path)."""
        hit = self._origins.get(url)
        if hit is not None:
            return hit
        if not url.startswith("http://"):
            raise ValueError(f"not a plain-HTTP URL: {url!r}")
        rest = url[7:]
        slash = rest.find("/")
        netloc, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
        if not netloc or "@" in netloc or any(c in path for c in " \r\n"):
            raise ValueError(f"not a plain-HTTP URL: {url!r}")
        host, port = netloc, 80
        if netloc.startswith("["):  # [v6]:port
            end = netloc.find("]")
            host, tail = netloc[1:end], netloc[end + 1 :]
            if tail.startswith(":"):
                port = int(tail[1:])
        elif ":" in netloc:
            host, _, p = netloc.rpartition(":")
            port = int(p)
        hit = (host.lower(), port, netloc.encode("ascii"), path.encode("ascii"))
        if len(self._origins) >= 4096:
            self._origins.clear()
        self._origins[url] = hit
        return hit

    async def _connect(self, host: str, port: int, connect_s: float) -> _Conn:
        if self._resolve is None:
            addrs: tuple[str, ...] = (host,)
        else:
            pinned = self._resolve(host)
            if pinned is None:
                raise Http1ConnectError(
                    f"{host} has no pinned address (not an admitted node)", "AddressRefused"
                )
            addrs = pinned
        loop = asyncio.get_running_loop()
        last: Exception | None = None
        for addr in addrs:
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(_Conn, addr, port), connect_s
                )
            except asyncio.TimeoutError:
                last = Http1ConnectError(
                    f"connecting to {host}:{port} timed out", "ConnectionTimeoutError"
                )
                continue
            except OSError as exc:
                last = Http1ConnectError(
                    f"cannot connect to {host}:{port}: {exc}", "ClientConnectorError"
                )
                continue
            self.connects += 1
            self._open.add(conn)
            return conn
        raise last or Http1ConnectError(f"{host}: no address", "ClientConnectorError")

    def _take(self, key: tuple[str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = self._clock()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closing
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.abort()
            self._open.discard(conn)
        return None

    def _give_back(self, key: tuple[str, int], conn: _Conn) -> None:
        if conn.closed or self.closed:
            self._open.discard(conn)
            return
        idle = self._idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.abort()
            self._open.discard(conn)
            return
        conn.idle_since = self._clock()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.keepalive_s, self._sweep)

    def _sweep(self) -> None:
        """Every ``keepalive_s`` while a connection is idle: close the expired ones and drop
        the closed ones, of every origin. ``_take`` pops an origin's newest only: without
        this, an origin never called again, or the older of a burst's connections, kept
        theirs for ever (a node that never closes them: a file descriptor each)."""
        self._sweeper = None
        now = self._clock()
        for key, idle in list(self._idle.items()):
            keep = []
            for conn in idle:
                if not conn.closed and now - conn.idle_since < self.keepalive_s:
                    keep.append(conn)
                else:
                    conn.abort()
                    self._open.discard(conn)
            if keep:
                idle[:] = keep
            else:
                del self._idle[key]
        if self._idle and not self.closed:
            self._sweeper = asyncio.get_running_loop().call_later(self.keepalive_s, self._sweep)

    async def post(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        connect_s: float,
        limit: int = MAX_BODY_BYTES,
    ) -> Http1Response:
        """POST ``content`` and read the whole answer, at most ``limit`` bytes of body (see
        the module docstring)."""
        key, request = self._request(url, content, headers)
        conn = self._take(key)
        if conn is None:
            conn = await self._connect(key[0], key[1], connect_s)
        return await conn.exchange(self, key, request, timeout_s, None, limit)

    async def post_pooled(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        expired: tuple[str, str],
        limit: int = MAX_BODY_BYTES,
    ) -> Http1Response | None:
        """:meth:`post` on an idle pooled connection only, the whole answer within
        ``timeout_s`` (past it ``Http1Timeout(*expired)``, ``expired`` being its message
        and kind); ``None``, nothing sent, when the origin has no idle connection (the
        caller then connects by :meth:`post`). One timer per call: the send stage's
        deadline (``node_client.NodeClient.post_by``) needs no second one around it."""
        key, request = self._request(url, content, headers)
        conn = self._take(key)
        if conn is None:
            return None
        return await conn.exchange(self, key, request, timeout_s, expired, limit)

    async def stream(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        connect_s: float,
    ) -> Http1Stream:
        """POST ``content``; return once the answer's status and headers are in, its body
        left to :meth:`Http1Stream.chunks` (see the module docstring)."""
        key, request = self._request(url, content, headers)
        conn = self._take(key)
        if conn is None:
            conn = await self._connect(key[0], key[1], connect_s)
        try:
            return await conn.open_stream(self, key, request, timeout_s)
        except BaseException:
            self._open.discard(conn)
            raise

    def _request(
        self, url: str, content: bytes, headers: Mapping[str, str]
    ) -> tuple[tuple[str, int], bytes]:
        """The origin's key and the request's bytes."""
        if self.closed:
            raise Http1ConnectError("the client is closed", "ClientClosed")
        host, port, host_header, path = self._origin(url)
        key = (host, port)
        head = [
            b"POST ", path, b" HTTP/1.1\r\nHost: ", host_header, b"\r\nUser-Agent: ", self._ua,
            b"\r\nContent-Length: ", str(len(content)).encode("ascii"), b"\r\n",
        ]  # fmt: skip
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError("a header with a line break")
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        head += (b"\r\n", content)
        return key, b"".join(head)

    async def aclose(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._open):
            conn.abort()
        self._open.clear()
        self._idle.clear()
