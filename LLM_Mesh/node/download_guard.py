"""Where a model download may connect: global addresses only (no SSRF from a catalog,
a URL or a redirect).

A node's model downloads (``llm-mesh node models add URL``, a catalog model's URL,
``python -m LLM_Mesh.node.downloads``) follow redirects: a mirror, a catalog entry or
any hop of a redirect chain could otherwise send the node's machine to the operator's
loopback services, the LAN or the cloud metadata address (``169.254.169.254``), and
read whatever answers there into a ``.part`` file (the GGUF header check comes only
after the bytes are written; found 2026-12-05).

:func:`guarded_client` is the download client: every TCP connection it opens, the first
URL's and each redirect's alike, goes through :class:`GuardedBackend` (the connect itself:
:mod:`LLM_Mesh.address_connect`, shared with the gateway's pinned node client), which

1. resolves the host with the injected ``resolver`` (default ``getaddrinfo``), once per
   connection;
2. judges *every* address with :func:`LLM_Mesh.core.netguard.addresses_refusal` (loopback,
   private, link-local, multicast, reserved, shared, unspecified, IPv6 forms embedding
   one of those: refused);
3. connects to those checked address literals only (the name is not resolved again, so a
   DNS answer that changes between check and connect -- rebinding -- changes nothing; TLS
   still verifies the certificate against the host name);
4. judges the address the socket is actually connected to once more.

A refusal is a :class:`DownloadRefused` (a ``MeshError``), raised before a byte is sent,
never retried. Allowances, each explicit: ``allow_origins`` (``host:port`` pairs the
operator named: ``node models add URL --allow-private-url`` allows that URL's own host
and port, not where it redirects), and ``allow`` (refusal codes accepted anyway, matched
whole, as the registry's ``allow_loopback_nodes``: ``("loopback",)`` lets ``127.0.0.0/8``
and ``::1`` through, what tests of a local download server use). The client reads no
proxy from the environment (a proxy would be the one address connected to).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

from LLM_Mesh.address_connect import (
    ChosenAddressBackend,
    Resolver,
    Route,
    system_resolver,
    transport_over,
)
from LLM_Mesh.core.netguard import IPAddress, addresses_refusal
from LLM_Mesh.errors import MeshError

__all__ = [
    "DownloadRefused",
    "GuardedBackend",
    "Resolver",
    "guarded_client",
    "origin_of",
    "system_resolver",
]

#: how long a name may take to resolve
RESOLVE_S = 10.0
_DEFAULT_PORT = {"http": 80, "https": 443}


class DownloadRefused(MeshError):
    """A download (or a redirect of one) would connect to an address it may not reach."""

    status = 403
    code = "download_address_refused"


def origin_of(url: str) -> tuple[str, int]:
    """``(host, port)`` of an http(s) URL, the host lower-case and without brackets."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORT or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    return parts.hostname.lower(), parts.port or _DEFAULT_PORT[parts.scheme]


def _refused(host: str, port: int, addr: IPAddress, reason: str) -> DownloadRefused:
    shown = host if str(addr) == host else f"{host} ({addr})"
    return DownloadRefused(
        f"download refused: {shown}:{port} is a {reason} address. A download, and every "
        "redirect of it, may reach global addresses only, not this machine nor its "
        "network; for a mirror of your own network, run `llm-mesh node models add URL "
        "--allow-private-url` (that URL's host and port only)"
    )


class GuardedBackend(ChosenAddressBackend):
    """httpcore's TCP connect, to checked global addresses only (module docstring)."""

    def __init__(
        self,
        *,
        allow: Collection[str] = (),
        allow_origins: Iterable[tuple[str, int]] = (),
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        super().__init__(self._route, tcp_only=_tcp_only, inner=inner)
        self.allow = frozenset(allow)
        self.allow_origins = frozenset((h.lower(), p) for h, p in allow_origins)
        self._resolver = resolver

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            texts = await asyncio.wait_for(self._resolver(host, port), RESOLVE_S)
            addrs = [ipaddress.ip_address(t.split("%", 1)[0]) for t in texts]
        except (OSError, ValueError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"{host}: does not resolve ({exc!r})") from exc
        if not addrs:
            raise httpcore.ConnectError(f"{host}: no address")
        return addrs

    def _judge(self, host: str, port: int, addrs: list[IPAddress]) -> None:
        if (host, port) in self.allow_origins:
            return
        bad = addresses_refusal(addrs, self.allow)
        if bad is not None:
            raise _refused(host, port, *bad)

    async def _route(self, host: str, port: int) -> Route:
        name = host.strip("[]").lower()
        addrs = await self._addresses(name, port)
        self._judge(name, port, addrs)

        async def opened(
            addr: str, stream: httpcore.AsyncNetworkStream
        ) -> httpcore.AsyncNetworkStream:
            peer = stream.get_extra_info("server_addr")
            try:
                connected = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
            except (TypeError, IndexError, ValueError):
                await stream.aclose()
                raise DownloadRefused(
                    f"download refused: cannot tell which address {name}:{port} connected to"
                ) from None
            try:
                self._judge(name, port, [connected])
            except DownloadRefused:
                await stream.aclose()
                raise
            return stream

        return Route([str(addr) for addr in addrs], opened)


def _tcp_only() -> DownloadRefused:
    return DownloadRefused("download refused: a download goes over TCP only")


def guarded_client(
    *,
    timeout: httpx.Timeout | float = 30.0,
    verify: ssl.SSLContext | None = None,
    allow: Collection[str] = (),
    allow_origins: Iterable[tuple[str, int]] = (),
    resolver: Resolver = system_resolver,
) -> httpx.AsyncClient:
    """The download client: follows redirects, connects through :class:`GuardedBackend`."""
    transport = transport_over(
        GuardedBackend(allow=allow, allow_origins=allow_origins, resolver=resolver),
        ssl_context=verify,
    )
    return httpx.AsyncClient(
        transport=transport, follow_redirects=True, timeout=timeout, trust_env=False
    )
