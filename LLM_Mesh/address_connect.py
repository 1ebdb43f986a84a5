"""httpcore's TCP connect to the addresses chosen for each connection, and nowhere else.

The one network backend under the two httpx clients that must not let a name's DNS decide
where they connect: the node's model downloads (:mod:`LLM_Mesh.node.download_guard`: the
name resolved once per connection and every address judged global) and the gateway's
httpx node client (:mod:`LLM_Mesh.registry.node_client_httpx`: the addresses pinned when
the node registered, its TLS certificate where pinned). What is chosen, and how, stays
with each: :class:`ChosenAddressBackend` is given ``choose``, a function of ``(host,
port)`` that answers a :class:`Route` or raises (its refusal, untouched), and connects to
the route's address literals in order, the next after a failed connect; a connected
stream goes through the route's ``opened`` (a check of the peer, a wrapper) before httpcore
uses it. A Unix socket is refused with the caller's exception (``tcp_only``).

:func:`transport_over` is an httpx transport with such a backend (httpx has no public
hook for one); :data:`Resolver` and :func:`system_resolver` are the name lookup both
sides inject (tests pass a function).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpcore
import httpx

__all__ = [
    "ChosenAddressBackend",
    "Opened",
    "Resolver",
    "Route",
    "system_resolver",
    "transport_over",
]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses`` as text; raises ``OSError`` when the name does not resolve."""

Opened = Callable[[str, httpcore.AsyncNetworkStream], Awaitable[httpcore.AsyncNetworkStream]]
"""``(address, stream) -> stream`` httpcore is given: the stream checked or wrapped (a
refusal closes it and raises)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (``getaddrinfo``, TCP), every address once, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Route:
    """Where one connection may go: ``addresses`` (literals, tried in order) and what each
    connected stream goes through first (``opened``; ``None``: nothing)."""

    addresses: Sequence[str]
    opened: Opened | None = None


class ChosenAddressBackend(httpcore.AsyncNetworkBackend):
    """httpcore's TCP connect, to the addresses ``choose`` answers only (module docstring)."""

    def __init__(
        self,
        choose: Callable[[str, int], Awaitable[Route]],
        *,
        tcp_only: Callable[[], Exception],
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._choose = choose
        self._tcp_only = tcp_only
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        route = await self._choose(host, port)
        last: Exception | None = None
        for addr in route.addresses:
            try:
                stream = await self._inner.connect_tcp(
                    addr, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return stream if route.opened is None else await route.opened(addr, stream)
        raise last or httpcore.ConnectError(f"{host}: no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise self._tcp_only()

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transport_over(
    backend: httpcore.AsyncNetworkBackend,
    *,
    limits: httpx.Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections ``backend`` opens (``ssl_context``: default
    httpx's, from no environment; no proxy read from the environment either)."""
    limits = limits or httpx.Limits()
    if ssl_context is None:
        ssl_context = httpx.create_ssl_context(trust_env=False)
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    # httpx has no public hook for the network backend; its pool is the one place to set it
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )
    return transport
