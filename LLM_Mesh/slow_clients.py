"""Slow clients: how long a connection may take to send one request (slowloris, slow POST).

uvicorn (0.54, httptools) arms no timer until a first response is sent: a connection that
connects and says nothing, sends its headers a byte at a time, or its body slower still,
is held for ever, and a few thousand such connections use up the server's file
descriptors. :func:`guarded_http` is uvicorn's own protocol with one timer more: from the
connection's start, and from the first byte of each request, to the end of that request's
body (set when a read ends within a request: a request that comes whole in one read, as
most do, costs no timer); past ``read_timeout_s`` the connection is closed (a request being handled hears
``http.disconnect``). Between requests uvicorn's own keep-alive timeout applies; an answer,
however long it streams, is not limited.

The read timeout bounds how long a connection is held, not how many: one client opening
~35 connections a second holds a thousand, the file descriptors of a process under the
usual soft limit of 1024, and the server accepts nothing more (found 2026-12-03 on a node:
its gateway's requests and its own heartbeats failed). ``max_per_peer`` (the node's:
:func:`node_peer_cap`) bounds the connections one peer holds at once: an IPv4 address, or
an IPv6 /64 (one host's usual share); one past it is reset as soon as it is accepted.
Loopback peers are not counted (the operator's tools; a reverse proxy on the machine, whose
clients all arrive from loopback), nor, on a node, its registries' addresses and the
operator's ``trusted_peers`` (``exempt``: ``core/peer_exempt.py``).

A request's head (its request line and headers) is bounded too: uvicorn's httptools
protocol keeps every header line, and httptools a header's value until it ends, with no
limit, so one connection sending header lines (or one endless value, or URL) as fast as it
could within the read timeout grew the process by as much (found 2026-12-05: 100 MiB of
header lines, 100 MiB more of RSS; a few connections on a fast link were gigabytes). A head
longer than :data:`MAX_HEAD_BYTES` is answered 431 and the connection closed; the reads that
end inside a head are counted whole, the read that begins it is not, so the bound is reached
within one read (asyncio reads at most 256 KiB) of it.

A client that reads nothing (a slow consumer) is the same on the way out: uvicorn waits for
its socket to take the answer for ever, the handler's ``send`` with it, so a stream never
read held its node's slot, and an answer its buffers (found 2026-12-05 on the gateway: a few
anonymous streams a minute took every slot of a model's nodes). ``write_stall_s`` (the
gateway's: :data:`WRITE_STALL_S`) bounds how long the writes may stand still: from the
transport's ``pause_writing`` (its buffer over the high-water mark: the client's window and
the kernel's buffers already full) to its ``resume_writing``; past it the connection is
aborted (``close`` would wait for the buffer to drain), which the handler hears as the
client leaving. It costs nothing while the client keeps up (no timer until the buffer
fills). A node sets none: its client is the gateway, which stops reading a node's stream
while its own client does, and ends it by this bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from LLM_Mesh.core.client_retry import retry_header
from LLM_Mesh.core.metrics_access import is_loopback
from LLM_Mesh.core.peer_exempt import canonical_address
from LLM_Mesh.core.ratelimit import address_scope
from LLM_Mesh.request_id import new_request_id

__all__ = [
    "MAX_HEAD_BYTES", "READ_TIMEOUT_S", "WRITE_STALL_S", "guarded_http", "node_peer_cap", "peer_key",
    "raise_fd_limit",
]  # fmt: skip

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 30.0  # 1 MiB (the largest body) in 30 s is ~280 kbit/s
#: how long the gateway's writes to a client may stand still (its buffers full) before the
#: connection is aborted: in that time the client must take enough for the kernel to take
#: the transport's buffer below its low-water mark (Linux wakes a writer once about a third
#: of the socket's send buffer is free: tens of KiB on a slow link, whose buffer stays small)
WRITE_STALL_S = 30.0
#: a request's line and headers, at most (nginx: 32 KiB, Node.js and h11: 16 KiB)
MAX_HEAD_BYTES = 64 * 1024
_HEAD_TOO_LARGE_BODY = (
    b'{"error":{"message":"the request\'s headers are too large","type":"invalid_request_error",'
    b'"param":null,"code":"request_header_fields_too_large"}}'
)

# x-should-retry of a 431 (core/client_retry.py), each header line ending in CRLF
_ADVICE_431 = "".join(f"{k}: {v}\r\n" for k, v in retry_header(431).items()).encode()


def _head_too_large() -> bytes:
    """The 431: OpenAI's error shape, with a request id as every error answer has
    (``LLM_Mesh/request_id.py``; found 2026-12-05: plain text, no id)."""
    rid = new_request_id().encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\nx-content-type-options: nosniff\r\n"
        b"x-request-id: %s\r\nx-mesh-request-id: %s\r\n%s\r\n%s"
    ) % (len(_HEAD_TOO_LARGE_BODY), rid, rid, _ADVICE_431, _HEAD_TOO_LARGE_BODY)


#: the fewest connections a node lets one peer hold (its gateway replicas behind one address)
MIN_PEER_CONNECTIONS = 256


def node_peer_cap(max_concurrency: int, max_queue: int) -> int:
    """Connections one peer may hold on a node: twice what its slots and queue take (the
    gateway sends about that many at once, health checks and canaries besides), at least
    :data:`MIN_PEER_CONNECTIONS`."""
    return max(MIN_PEER_CONNECTIONS, 2 * (max_concurrency + max_queue) + 64)


def peer_key(host: str | None) -> str | None:
    """What ``max_per_peer`` counts a peer address as: the IPv4 address, or the IPv6 /64
    (an IPv4-mapped one as its IPv4), as rate limits count an address
    (:func:`~LLM_Mesh.core.ratelimit.address_scope`); ``None`` when it is no address."""
    addr = canonical_address(host)
    return None if addr is None else address_scope(addr)


def raise_fd_limit(want: int = 65536) -> None:
    """Raise this process's soft limit of open files towards ``want`` (at most the hard
    limit), so that the per-peer bound, not the file descriptors, is what a client meets."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on this platform
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        top = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if soft != resource.RLIM_INFINITY and soft < top:
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
    except (OSError, ValueError):
        return


class _Guarded(HttpToolsProtocol):
    read_timeout_s = READ_TIMEOUT_S
    write_stall_s: ClassVar[float | None] = None
    max_per_peer: ClassVar[int | None] = None
    exempt_peer: ClassVar[tuple[Callable[[str | None], bool]]] = (is_loopback,)
    held: ClassVar[dict[str, int]]  # peer key -> connections open (one dict per class)
    _read_timer: asyncio.TimerHandle | None = None
    _stall_timer: asyncio.TimerHandle | None = None
    _peer: str | None = None
    _in_message = False  # a request's first byte read, not its last
    _in_head = False  # a request's first byte read, not the end of its headers
    _head_bytes = 0  # of the reads that ended inside the head

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_per_peer is not None and not self._count_in(transport):
            transport.abort()  # its file descriptor back at once; uvicorn cleans up
            return
        self._arm()

    def _count_in(self, transport: asyncio.Transport) -> bool:
        """Count this connection against its peer; False when the peer holds its most."""
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, (tuple, list)) and peer else None
        key = None if self.exempt_peer[0](host) else peer_key(host)
        if key is None:
            return True
        held = self.held.get(key, 0)
        if held >= (self.max_per_peer or 0):
            if held == self.max_per_peer:  # said once, until it holds fewer again
                self.held[key] = held + 1
                log.warning(
                    "%s holds %d connections, the most one peer may (max_per_peer): "
                    "more are closed as they come",
                    key,
                    held,
                )
            return False
        self.held[key] = held + 1
        self._peer = key
        return True

    def data_received(self, data: bytes) -> None:
        in_head = self._in_head
        super().data_received(data)
        if in_head and self._in_head:  # the head began before this read and goes on past
            self._head_bytes += len(data)  # it: the whole read was head
            if self._head_bytes > MAX_HEAD_BYTES:
                self._head_too_large()
                return
        if self._in_message and self._read_timer is None:
            # a request begun in this read and not ended in it: its timer from now (from its
            # first byte, but for the parsing of this read); a request that came whole in
            # one read (the usual) never had one to set and cancel
            self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._disarm()  # the connection's own (from its start), or none
        self._in_message = self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def _head_too_large(self) -> None:
        """431 and the connection closed (its parser, holding the head, goes with it)."""
        self._in_head = False
        self._disarm()
        transport: Any = self.transport
        if not transport.is_closing():
            transport.write(_head_too_large())
            transport.close()

    def on_message_complete(self) -> None:
        self._in_message = False
        self._disarm()
        super().on_message_complete()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_stall_s is not None and self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.write_stall_s, self._stalled)

    def resume_writing(self) -> None:
        self._unstall()
        super().resume_writing()

    def _unstall(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        """The client took nothing for ``write_stall_s``: drop the connection and its buffer."""
        self._stall_timer = None
        transport: Any = self.transport
        transport.abort()  # also after a close that waits on the buffer (keep-alive's end)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._unstall()
        if self._peer is not None:
            key, self._peer = self._peer, None
            left = min(self.held.get(key, 1), self.max_per_peer or 0) - 1
            if left > 0:
                self.held[key] = left
            else:
                self.held.pop(key, None)
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _too_slow(self) -> None:
        self._read_timer = None
        transport: Any = self.transport
        if not transport.is_closing():
            transport.close()


def guarded_http(
    read_timeout_s: float = READ_TIMEOUT_S,
    *,
    max_per_peer: int | None = None,
    exempt: Callable[[str | None], bool] = is_loopback,
    write_stall_s: float | None = None,
) -> type[Any]:
    """uvicorn's ``http=`` protocol class with the read timeout and, given ``max_per_peer``,
    the bound on one peer's connections (``exempt`` peers are not counted: loopback), given
    ``write_stall_s`` the bound on a client that takes nothing (see the module docstring)."""
    if read_timeout_s <= 0:
        raise ValueError("read_timeout_s must be positive")
    if write_stall_s is not None and write_stall_s <= 0:
        raise ValueError("write_stall_s must be positive")
    if max_per_peer is not None and max_per_peer < 1:
        raise ValueError("max_per_peer must be at least 1")
    attrs: dict[str, Any] = {
        "read_timeout_s": read_timeout_s,
        "max_per_peer": max_per_peer,
        "write_stall_s": write_stall_s,
        "exempt_peer": (exempt,),  # in a tuple: a plain function would become a method
        "held": {},
    }
    return type("GuardedHttpToolsProtocol", (_Guarded,), attrs)
