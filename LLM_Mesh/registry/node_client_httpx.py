"""The gateway's node client over any ``httpx.AsyncClient`` (:class:`HttpxNodeClient`):
the :class:`~LLM_Mesh.registry.node_client.NodeClient` contract (its exception tree, no
redirects, admitted URLs only) for tests with an ``httpx.MockTransport`` and for the
registry's own health checks; and :func:`pinned_httpx_transport`, an httpx transport that
connects only to the pinned addresses of admitted node hosts and checks a pinned TLS
certificate (see :mod:`~LLM_Mesh.registry.node_client` for the rules both clients keep;
the connect itself: :mod:`LLM_Mesh.address_connect`, shared with the node's downloads).

An answer's body is decoded by :func:`LLM_Mesh.bounded_http.decoded`, never by httpx: its
decoders inflate a whole read at once, and stacked ones (``Content-Encoding: gzip, gzip``)
made hundreds of MiB of a few hundred bytes before any bound counted them. ``identity``,
``gzip`` or ``deflate`` only (the request offers those), decoded in bounded pieces; anything
else is a :class:`NodeProtocolError` (``ContentEncoding``), read no further.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator, Mapping

import httpcore
import httpx

from LLM_Mesh.address_connect import ChosenAddressBackend, Route, transport_over
from LLM_Mesh.bounded_http import DECODED, AnswerRefused, decoded
from LLM_Mesh.registry.address_pins import AddressPins
from LLM_Mesh.registry.http1 import MAX_BODY_BYTES
from LLM_Mesh.registry.node_client import (
    MAX_GET_BYTES,
    NodeClient,
    NodeConnectError,
    NodeProtocolError,
    NodeResponse,
    NodeTimeout,
    NodeTransportError,
    _admit,
)
from LLM_Mesh.tls import trust_certificate_context

__all__ = ["HttpxNodeClient", "pinned_httpx_transport"]


def _from_httpx(exc: httpx.HTTPError) -> NodeTransportError:
    kind = type(exc).__name__
    msg = str(exc) or kind
    if msg.startswith("CertificateMismatch"):
        return NodeConnectError(msg, "CertificateMismatch")
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return NodeConnectError(msg, kind)
    if isinstance(exc, httpx.TimeoutException):
        return NodeTimeout(msg, kind)
    return NodeProtocolError(msg, kind)


def _offer(headers: Mapping[str, str] | None) -> httpx.Headers:
    """``headers``, offering the encodings :func:`~LLM_Mesh.bounded_http.decoded` reads
    unless they say otherwise (httpx's default offers br and zstd too when installed)."""
    out = httpx.Headers(DECODED)
    out.update(headers or {})
    return out


class _HttpxResponse(NodeResponse):
    def __init__(self, resp: httpx.Response, *, read: bool) -> None:
        self._resp = resp
        self.status_code = resp.status_code
        self.headers = resp.headers
        self._done = read
        if read:
            self.content = resp.content

    async def aread(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The whole answer, decoded, at most ``limit`` bytes (as ``AiohttpNodeClient``'s)."""
        if self._done:
            return self.content
        body = bytearray()
        try:
            async for data in self.aiter_raw():
                body += data
                if len(body) > limit:
                    raise NodeProtocolError(f"an answer over {limit} bytes", "PayloadTooLarge")
        finally:
            await self._resp.aclose()
        self.content, self._done = bytes(body), True
        return self.content

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, decoded here in bounded pieces (the module docstring)."""
        try:
            async for data in decoded(self._resp, what="the node's answer"):
                yield data
        except AnswerRefused as exc:
            raise NodeProtocolError(str(exc), "ContentEncoding") from exc
        except httpx.HTTPError as exc:
            raise _from_httpx(exc) from exc

    async def aclose(self) -> None:
        await self._resp.aclose()


class HttpxNodeClient(NodeClient):
    """A :class:`NodeClient` over an ``httpx.AsyncClient`` (tests: ``MockTransport``)."""

    def __init__(
        self, client: httpx.AsyncClient, *, owns: bool = True, pins: AddressPins | None = None
    ) -> None:
        self.client = client
        self._owns = owns
        self._pins = pins

    async def post(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        connect_s: float,
        limit: int = MAX_BODY_BYTES,
    ) -> NodeResponse:
        """:meth:`stream`, its answer read whole (at most ``limit`` bytes, decoded)."""
        out = await self.stream(url, content, headers, timeout_s=timeout_s, connect_s=connect_s)
        await out.aread(limit)
        return out

    async def stream(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        connect_s: float,
    ) -> NodeResponse:
        if self._pins is not None and not self._pins.admitted(url):
            await _admit(self._pins, url)
        timeout = httpx.Timeout(timeout_s, connect=connect_s)
        req = self.client.build_request(
            "POST", url, content=content, headers=_offer(headers), timeout=timeout
        )
        try:
            resp = await self.client.send(req, stream=True, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise _from_httpx(exc) from exc
        return _HttpxResponse(resp, read=False)

    async def get(
        self, url: str, *, timeout_s: float, headers: Mapping[str, str] | None = None
    ) -> NodeResponse:
        try:  # in all (the address check too), at most MAX_GET_BYTES decoded (as aiohttp's)
            return await asyncio.wait_for(self._get(url, timeout_s, headers), timeout_s)
        except asyncio.TimeoutError as exc:
            raise NodeTimeout(f"no whole answer within {timeout_s} s", "TimeoutError") from exc
        except httpx.HTTPError as exc:
            raise _from_httpx(exc) from exc

    async def _get(
        self, url: str, timeout_s: float, headers: Mapping[str, str] | None
    ) -> NodeResponse:
        if self._pins is not None and not self._pins.admitted(url):
            await _admit(self._pins, url)
        req = self.client.build_request("GET", url, headers=_offer(headers), timeout=timeout_s)
        out = _HttpxResponse(await self.client.send(req, stream=True, follow_redirects=False),
                             read=False)  # fmt: skip
        await out.aread(MAX_GET_BYTES)  # decoded: a gzip bomb counts whole
        return out

    async def aclose(self) -> None:
        if self._owns:
            await self.client.aclose()

    @property
    def is_closed(self) -> bool:
        return self.client.is_closed


class _CertPinnedStream(httpcore.AsyncNetworkStream):
    """A TCP stream to a node whose TLS certificate is pinned by fingerprint."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, addr: str, port: int, fp: str):
        self._inner, self._addr, self._port, self._fp = inner, addr, port, fp

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            pem = await asyncio.to_thread(
                ssl.get_server_certificate, (self._addr, self._port), timeout=timeout or 10.0
            )
        except (OSError, ssl.SSLError) as exc:
            await self._inner.aclose()
            raise httpcore.ConnectError(f"TLS: no certificate from the node ({exc!r})") from exc
        if hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest() != self._fp:
            await self._inner.aclose()  # nothing was sent on it
            raise httpcore.ConnectError(
                "CertificateMismatch: the node's TLS certificate is not the one it registered"
            )
        return await self._inner.start_tls(trust_certificate_context(pem), server_hostname, timeout)


def _pinned_backend(pins: AddressPins) -> ChosenAddressBackend:
    """httpcore's TCP connect, to a host name's pinned addresses only (TLS keeps the name)."""

    async def route(host: str, port: int) -> Route:
        addrs = pins.addresses(host.strip("[]"))
        if addrs is None:
            raise httpcore.ConnectError(f"{host} has no pinned address (not an admitted node)")
        fp = pins.host_fingerprint(host, port)
        if fp is None:
            return Route(addrs)

        async def opened(
            addr: str, stream: httpcore.AsyncNetworkStream
        ) -> httpcore.AsyncNetworkStream:
            return _CertPinnedStream(stream, addr, port, fp)

        return Route(addrs, opened)

    return ChosenAddressBackend(route, tcp_only=_tcp_only)


def _tcp_only() -> httpcore.ConnectError:
    return httpcore.ConnectError("nodes are reached over TCP only")


def pinned_httpx_transport(
    pins: AddressPins, *, limits: httpx.Limits | None = None
) -> httpx.AsyncHTTPTransport:
    """An httpx transport that connects to pinned node addresses only (for :class:`HttpxNodeClient`)."""
    return transport_over(_pinned_backend(pins), limits=limits)
