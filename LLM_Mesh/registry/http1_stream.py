"""A streamed answer of the gateway's HTTP/1.1 client (:meth:`~LLM_Mesh.registry.http1.
Http1Pool.stream`): the reader of one connection's body as it arrives.

:class:`Http1Stream` takes over the connection once the answer's status and headers are
in. :meth:`~Http1Stream.chunks` gives everything that arrived since the reader last asked,
in one piece (one wake-up per batch of reads, no task or queue in between). The read
timeout is one timer per stream, re-armed only when it fires: no byte within ``timeout_s``,
or, while reading is paused, no byte taken by the reader. At most
:data:`STREAM_BUFFER_BYTES` wait for a reader that fell behind; past that the connection
stops reading until it catches up (the node then waits). The connection goes back to its
pool only once the answer was read to its end; a stream closed before that drops it, and a
reader still waiting raises (``ClientClosed``). A reader done before the end (the node's
``[DONE]`` read: :meth:`Http1Stream.linger`) reads nothing more: the connection goes back
if the answer ends within :data:`LINGER_S` with no byte more (its last chunk usually follows
at once), else it is dropped (found 2026-12-05: the reader waited for that end, so a node
silent after its ``[DONE]`` held the client's ``[DONE]`` up to the read timeout).

The connection and the pool are ``http1.py``'s (:class:`StreamConn`, :class:`StreamPool`
name what this module uses of them): the two modules are one client, split by concept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from multidict import CIMultiDictProxy

from LLM_Mesh.registry.http1_errors import Http1Error, Http1Timeout

__all__ = ["LINGER_S", "STREAM_BUFFER_BYTES", "Http1Stream", "StreamConn", "StreamPool"]

STREAM_BUFFER_BYTES = 256 * 1024  # a stream's body read ahead of its reader, at most
# read-ahead pieces (chunks) kept as read; those after them are gathered in one buffer:
# 2-byte chunks held ~60x their bytes as an object each (found 2026-12-05)
STREAM_PIECES = 64
# how long a stream whose reader is done may take to end before its connection is dropped
LINGER_S = 1.0


def _as(err: Http1Error, errors: Callable[[Http1Error], Exception] | None) -> Exception:
    if errors is None:
        return err
    out = errors(err)
    out.__cause__ = err
    return out


class StreamConn(Protocol):
    """What a stream uses of its connection (``http1._Conn``)."""

    transport: asyncio.Transport | None
    closed: bool
    _body: list[bytes]
    _stream: Http1Stream | None
    _parser: Any
    _complete: bool
    _keep: bool

    def abort(self) -> None: ...


class StreamPool(Protocol):
    """What a stream uses of its pool (``http1.Http1Pool``)."""

    _open: set[Any]

    def _give_back(self, key: tuple[str, int], conn: Any) -> None: ...


class Http1Stream:
    """A streamed answer (:meth:`Http1Pool.stream`): status and headers, then
    :meth:`chunks`; :meth:`aclose` always (idempotent). See the module docstring."""

    __slots__ = (
        "_buf",
        "_buffered",
        "_conn",
        "_err",
        "_key",
        "_last",
        "_lingering",
        "_loop",
        "_more",
        "_paused",
        "_pool",
        "_released",
        "_timeout_s",
        "_timer",
        "_waiter",
        "headers",
        "status",
    )

    def __init__(
        self,
        conn: StreamConn,
        pool: StreamPool,
        key: tuple[str, int],
        status: int,
        headers: CIMultiDictProxy[str],
        timeout_s: float,
    ) -> None:
        self.status = status
        self.headers = headers
        self._conn, self._pool, self._key = conn, pool, key
        self._loop = loop = asyncio.get_running_loop()
        self._buf: list[bytes] = conn._body  # what came in the head's reads
        self._buffered = sum(map(len, self._buf))
        self._more = bytearray()  # the read-ahead past STREAM_PIECES pieces
        conn._body = []
        self._err: Http1Error | None = None
        self._paused = False
        self._released = False
        self._lingering = False  # the reader is done; the connection waits for the end
        self._waiter: asyncio.Future[None] | None = None
        self._timeout_s = timeout_s
        self._last = loop.time()
        self._timer: asyncio.TimerHandle | None = None
        conn._stream = self
        if conn.closed and not conn._complete:  # lost (or refused) right after the head
            self._err = Http1Error("the node closed the connection", "ServerDisconnected")
        elif not conn._complete:
            self._timer = loop.call_later(timeout_s, self._check)

    # from the connection
    def feed(self, body: bytes) -> None:
        if self._lingering:  # a byte the reader will not read: not a clean end
            self._release(reuse=False)
            return
        if len(self._buf) < STREAM_PIECES:
            self._buf.append(body)
        else:
            self._more += body
        self._buffered += len(body)
        self._last = self._loop.time()
        if self._buffered > STREAM_BUFFER_BYTES and not self._paused:
            transport = self._conn.transport
            if transport is not None:
                self._paused = True
                transport.pause_reading()  # the reader fell behind: the node waits
        self._wake()

    def end(self) -> None:
        if self._lingering:  # once the parser's call is over (a second answer says so)
            self._loop.call_soon(self._release, True)
            return
        self._wake()

    def fail(self, err: Http1Error) -> None:
        if self._err is None:
            self._err = err
        if self._lingering:
            self._release(reuse=False)
            return
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check(self) -> None:
        """The read timeout's one timer: fails the stream after ``timeout_s`` without a
        byte, or, while paused for a reader that fell behind, without the reader taking
        any (a stream nobody reads, or closes, does not hold its connection and its node
        for ever), else re-arms."""
        self._timer = None
        if self._released or self._conn._complete:
            return
        now = self._loop.time()
        if now - self._last >= self._timeout_s:
            self.fail(Http1Timeout(f"no data within {self._timeout_s:.3f} s", "ServerTimeoutError"))
            self._conn.abort()
            return
        self._timer = self._loop.call_at(self._last + self._timeout_s, self._check)

    # the reader's
    async def chunks(
        self, errors: Callable[[Http1Error], Exception] | None = None
    ) -> AsyncIterator[bytes]:
        """The body as it arrives: all that came since the last one, in one piece. Raises
        :class:`Http1Error` (its subclasses) when the answer breaks off or times out, or
        what ``errors`` makes of it (a caller's own exceptions without a generator around
        this one: a stream's reader runs per token)."""
        conn = self._conn
        while True:
            if self._released:  # closed (by another task, maybe): an end cut short raises
                if self._err is not None and not conn._complete:
                    raise _as(self._err, errors)
                return
            buf = self._buf
            if buf:
                more = self._more
                if more:
                    buf.append(bytes(more))
                    self._more = bytearray()
                self._buf, self._buffered = [], 0
                if self._paused:
                    self._paused = False
                    self._last = self._loop.time()
                    if conn.transport is not None:
                        conn.transport.resume_reading()
                yield buf[0] if len(buf) == 1 else b"".join(buf)
                continue
            if self._err is not None:
                self._release(reuse=False)
                raise _as(self._err, errors)
            if conn._complete:
                self._release(reuse=True)
                return
            self._waiter = waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def read(self) -> bytes:
        """The whole (rest of the) body."""
        return b"".join([chunk async for chunk in self.chunks()])

    def _release(self, reuse: bool) -> None:
        if self._released:
            return
        self._released = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, pool = self._conn, self._pool
        conn._stream = None
        conn._parser = None
        if reuse and conn._complete and conn._keep and not conn.closed:
            pool._give_back(self._key, conn)
        else:
            if not conn._complete and self._err is None:  # a reader still waiting raises
                self._err = Http1Error("the stream was closed before its end", "ClientClosed")
            self._wake()
            conn.abort()
            pool._open.discard(conn)

    def linger(self, grace_s: float = LINGER_S) -> None:
        """The reader is done before the answer's end (it read the node's ``[DONE]``):
        nothing more is read for it. The connection goes back to the pool when the answer
        ends within ``grace_s`` with no other byte, else it is dropped (module docstring)."""
        if self._released or self._lingering:
            return
        if self._buf or self._more or self._err is not None or self._conn._complete:
            self._release(reuse=not self._buf and not self._more and self._err is None)
            return
        self._lingering = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(grace_s, self._release, False)

    async def aclose(self) -> None:
        """Let go of the connection: back to the pool once the answer was read to its
        end, else dropped (one lingering after :meth:`linger` is left to it). Idempotent."""
        if self._lingering:
            return
        self._release(reuse=not self._buf and self._err is None)
