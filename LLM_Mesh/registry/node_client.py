"""The gateway's one outbound HTTP client to nodes: a small interface, two transports.

:class:`NodeClient` is all the gateway asks of HTTP: ``post`` (body read),
``stream`` (body left open for :meth:`NodeResponse.aiter_lines`) and ``get``
(health checks). :class:`AiohttpNodeClient` serves in production: on this hot
path it costs about a quarter of ``httpx.AsyncClient``'s CPU per request, and its
hot calls, a POST to a plain-HTTP node read whole or streamed, go on the leaner
:class:`~LLM_Mesh.registry.http1.Http1Pool` (``fast_post``; GET and https stay on
aiohttp).
:class:`~LLM_Mesh.registry.node_client_httpx.HttpxNodeClient` wraps any
``httpx.AsyncClient``, so tests keep passing an ``httpx.MockTransport``. Both raise one exception tree, which
:mod:`LLM_Mesh.registry.send` maps to router outcomes::

    NodeTransportError          any failure to get an answer (kind = the library's class name)
     +-- NodeConnectError       refused, unreachable, connect timeout: nothing was sent
     +-- NodeTimeout            no byte within the read timeout
     +-- NodeProtocolError      the connection broke or the answer is not valid HTTP

Timeouts per call: ``timeout_s`` bounds each read (as httpx's read timeout
does), ``connect_s`` the TCP connect. ``post_by`` (the send stage's non-streamed call)
bounds the whole call by ``left`` too (:func:`within`, a :class:`NodeTimeout` of
:data:`DEADLINE_PASSED`; on an idle pooled plain-HTTP connection the pool's one timer
does it). ``get`` (the health check) has one budget instead:
``timeout_s`` in all, from the address check of a URL not pinned yet through the connect
to the last byte of the answer.

No SSRF: given the registry's :class:`~LLM_Mesh.registry.address_pins.AddressPins`
(``pins=``), a client calls only node URLs the pins admitted (checked at
registration, or on first use after a restart; a refused one is a
:class:`NodeConnectError` of kind ``AddressRefused``, nothing sent) and connects
only to their pinned addresses: :class:`AiohttpNodeClient` through a resolver
that answers from the pins (the URL, ``Host`` header and TLS server name stay
the node's name), an httpx client through
:func:`~LLM_Mesh.registry.node_client_httpx.pinned_httpx_transport`.
Neither ever follows a redirect (aiohttp's default would).

TLS: a node whose signed registration carried a certificate fingerprint
(:meth:`AddressPins.pin_certificate`) is accepted only with that certificate:
:class:`AiohttpNodeClient` passes ``aiohttp.Fingerprint`` (SHA-256 of the DER
certificate) as ``ssl=`` on every request to it; the httpx backend fetches the
node's certificate over the pinned address, compares its fingerprint and then
handshakes with that certificate as the only trust anchor (host name checked).
Any other certificate is a :class:`NodeConnectError` of kind
``CertificateMismatch`` (nothing sent). An ``https`` node without a fingerprint
is verified against the system's CA bundle; verification is never off.
"""

from __future__ import annotations

import abc
import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.address_pins import AddressPins
from LLM_Mesh.registry.http1 import (
    MAX_BODY_BYTES,
    Http1ConnectError,
    Http1Error,
    Http1Pool,
    Http1Response,
    Http1Stream,
    Http1Timeout,
)

__all__ = [
    "DEADLINE_PASSED",
    "MAX_GET_BYTES",
    "AiohttpNodeClient",
    "NodeClient",
    "NodeConnectError",
    "NodeProtocolError",
    "NodeResponse",
    "NodeTimeout",
    "NodeTransportError",
    "within",
]

USER_AGENT = "llm-mesh-gateway"
# the most of a GET's answer read (decoded): a node's health answer is ~150 bytes; a node
# streaming more (or a gzip bomb) fails its check instead of filling the gateway's memory
MAX_GET_BYTES = 1 << 20


class NodeTransportError(Exception):
    """No (complete) answer from a node; ``kind`` names the underlying error class."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind or type(self).__name__


class NodeConnectError(NodeTransportError):
    """Could not connect (refused, unreachable, connect timeout)."""


class NodeTimeout(NodeTransportError):
    """Connected, but the node sent nothing within the read timeout."""


class NodeProtocolError(NodeTransportError):
    """The connection broke, or what came back is not a valid answer."""


class NodeResponse(abc.ABC):
    """A node's answer: status and headers at once; the body read (``post``) or open."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes = b""  # the whole body once read

    @abc.abstractmethod
    async def aread(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The whole body (read once, then cached in ``content``), at most ``limit`` bytes."""

    @abc.abstractmethod
    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each piece is what came in since the reader last asked
        (a reader that fell behind gets it all in one piece)."""

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body's lines as they arrive, without their line endings."""
        async for batch in self.aiter_line_batches():
            for line in batch:
                yield line

    async def aiter_line_batches(self) -> AsyncIterator[list[str]]:
        """:meth:`aiter_lines` in batches: the lines that arrived together (one piece of
        :meth:`aiter_raw`), so a reader that fell behind handles them in one go."""
        async for batch in _line_batches(self.aiter_raw()):
            yield batch

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Let go of the connection (idempotent)."""

    async def done_reading(self) -> None:
        """The reader needs no more of the body (a stream's ``[DONE]``): let go of the
        connection, reused only if it ends cleanly at once (``Http1Stream.linger``)."""
        await self.aclose()


_T = TypeVar("_T")
# a call cut at the request's deadline (:meth:`NodeClient.post_by`): message and kind
DEADLINE_PASSED = ("the request's deadline passed", "DeadlineExceeded")


async def within(seconds: float, pending: Awaitable[_T]) -> _T:
    """``pending``, cut after ``seconds`` (``TimeoutError``): ``asyncio.timeout`` where the
    interpreter has it (about half of ``anyio.fail_after``'s cost per call, measured)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await pending
    import anyio  # pragma: no cover - Python 3.10

    with anyio.fail_after(seconds):  # pragma: no cover
        return await pending


class NodeClient(abc.ABC):
    """What the gateway needs from HTTP. One per process, created in the app's lifespan."""

    async def post_by(
        self, url: str, content: bytes, headers: Mapping[str, str], *, left: float,
        connect_s: float, limit: int = MAX_BODY_BYTES,
    ) -> NodeResponse:  # fmt: skip
        """:meth:`post` (each read within ``left``, the connect within ``connect_s``, at
        most ``limit`` bytes of answer), the whole call within ``left`` seconds: past it a
        :class:`NodeTimeout` of :data:`DEADLINE_PASSED` (the send stage's deadline of a
        non-streamed request)."""
        pending = self.post(url, content, headers, timeout_s=left, connect_s=connect_s, limit=limit)
        try:
            return await within(left, pending)
        except TimeoutError:
            raise NodeTimeout(*DEADLINE_PASSED) from None

    @abc.abstractmethod
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
        """POST and read the whole answer: past ``limit`` bytes (decoded) a
        :class:`NodeProtocolError` ``PayloadTooLarge``, read no further."""

    @abc.abstractmethod
    async def stream(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        connect_s: float,
    ) -> NodeResponse:
        """POST and return once the status and headers are in; the caller closes it."""

    @abc.abstractmethod
    async def get(
        self, url: str, *, timeout_s: float, headers: Mapping[str, str] | None = None
    ) -> NodeResponse:
        """GET (with ``headers``: the health check's challenge) and read the whole answer,
        within ``timeout_s`` in all (:class:`NodeTimeout`), at most :data:`MAX_GET_BYTES`
        of it, decoded (:class:`NodeProtocolError` past it)."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every pooled connection."""

    @property
    @abc.abstractmethod
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` ran (for the owner's checks)."""


async def _admit(pins: AddressPins, url: str) -> None:
    """The slow path of the address check: admit ``url`` now or refuse to connect."""
    try:
        await pins.ensure(url)
    except MeshError as exc:
        raise NodeConnectError(f"not connecting: {exc.message}", "AddressRefused") from exc


async def _line_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[str]]:
    """The complete lines of each chunk read (a line cut by a read ends in the next
    batch), without line endings; the unterminated rest at the end as the last batch."""
    buf = b""
    async for data in chunks:
        buf += data
        if b"\n" not in buf:
            continue
        *lines, buf = buf.split(b"\n")
        yield [line.rstrip(b"\r").decode("utf-8", "replace") for line in lines]
    if buf:
        yield [buf.rstrip(b"\r").decode("utf-8", "replace")]


# --- aiohttp ----------------------------------------------------------------


_AIOHTTP_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
# below the node's keep-alive (uvicorn: 5 s), so the gateway never reuses a connection
# the node is closing
KEEPALIVE_S = 4.0


def _from_aiohttp(exc: BaseException) -> NodeTransportError:
    kind = type(exc).__name__
    msg = str(exc) or kind
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return NodeConnectError(
            "the node's TLS certificate is not the one it registered", "CertificateMismatch"
        )
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return NodeConnectError(msg, kind)
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return NodeTimeout(msg, kind)
    return NodeProtocolError(msg, kind)


class _AiohttpResponse(NodeResponse):
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self._read = False
        self.status_code = int(resp.status)
        self.headers = resp.headers

    async def aread(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The whole answer, decoded, at most ``limit`` bytes (``http1.MAX_BODY_BYTES``, as
        a plain-HTTP answer's): :class:`NodeProtocolError` past it, read no further (an
        https node's answer, or a gzip bomb, must not fill the gateway's memory)."""
        if self._read:
            return self.content
        body = bytearray()
        try:
            async for data in self._resp.content.iter_any():
                body += data
                if len(body) > limit:
                    self._resp.close()
                    raise NodeProtocolError(f"an answer over {limit} bytes", "PayloadTooLarge")
            self.content, self._read = bytes(body), True
        except _AIOHTTP_ERRORS as exc:
            raise _from_aiohttp(exc) from exc
        finally:
            self._resp.release()
        return self.content

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._resp.content.iter_any():
                yield data
        except _AIOHTTP_ERRORS as exc:
            raise _from_aiohttp(exc) from exc

    async def aclose(self) -> None:
        if not self._resp.closed:
            self._resp.close()


class _Http1Response(NodeResponse):
    """A plain-HTTP POST's answer from :class:`~LLM_Mesh.registry.http1.Http1Pool`: read whole."""

    def __init__(self, resp: Http1Response) -> None:
        self.status_code = resp.status
        self._resp = resp  # its headers decoded when first read (a refusal's Retry-After)
        self.content = resp.content

    @property
    def headers(self) -> Mapping[str, str]:  # type: ignore[override]
        return self._resp.headers

    async def aread(self, limit: int = MAX_BODY_BYTES) -> bytes:
        return self.content  # (read by the pool, within its limit)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        if self.content:
            yield self.content

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in self.content.split(b"\n"):
            yield line.rstrip(b"\r").decode("utf-8", "replace")

    async def aclose(self) -> None:
        return None


class _Http1StreamResponse(NodeResponse):
    """A plain-HTTP POST's answer from :meth:`~LLM_Mesh.registry.http1.Http1Pool.stream`:
    its body left open."""

    def __init__(self, stream: Http1Stream) -> None:
        self._stream = stream
        self._read = False
        self.status_code = stream.status
        self.headers = stream.headers

    async def aread(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The rest of the body, at most ``limit`` bytes (as a whole answer's)."""
        if not self._read:
            body = bytearray()
            try:
                async for chunk in self._stream.chunks():
                    body += chunk
                    if len(body) > limit:
                        raise NodeProtocolError(f"an answer over {limit} bytes", "PayloadTooLarge")
            except Http1Error as exc:
                raise _from_http1(exc) from exc
            finally:
                await self._stream.aclose()
            self.content, self._read = bytes(body), True
        return self.content

    def aiter_raw(self) -> AsyncIterator[bytes]:
        return self._stream.chunks(_from_http1)  # no generator of this one's in between

    async def done_reading(self) -> None:
        self._stream.linger()

    async def aclose(self) -> None:
        await self._stream.aclose()


def _from_http1(exc: Http1Error | ValueError) -> NodeTransportError:
    """The pool's error as this client's: by its kind, and a ``ValueError`` (a URL or a
    header the pool cannot send: nothing was sent) a ``NodeProtocolError`` ``InvalidURL``."""
    if isinstance(exc, Http1ConnectError):
        return NodeConnectError(str(exc), exc.kind)
    if isinstance(exc, Http1Timeout):
        return NodeTimeout(str(exc), exc.kind)
    if isinstance(exc, Http1Error):
        return NodeProtocolError(str(exc), exc.kind)
    return NodeProtocolError(str(exc), "InvalidURL")


class _PinnedResolver(AbstractResolver):
    """aiohttp's resolver for node hosts: the pinned addresses, never DNS."""

    def __init__(self, pins: AddressPins) -> None:
        self._pins = pins

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addrs = self._pins.addresses(host)
        if addrs is None:
            raise OSError(f"{host} has no pinned address (not an admitted node)")
        out: list[ResolveResult] = []
        for addr in addrs:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            if family in (socket.AF_UNSPEC, fam):
                out.append(
                    ResolveResult(
                        hostname=host,
                        host=addr,
                        port=port,
                        family=fam,
                        proto=0,
                        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                    )
                )
        if not out:
            raise OSError(f"{host} has no pinned address of family {family!r}")
        return out

    async def close(self) -> None:
        return None


class AiohttpNodeClient(NodeClient):
    """The production :class:`NodeClient`: one ``aiohttp.ClientSession``, keep-alive pool.

    Create it inside the running event loop (the app's lifespan). Its pooled
    connections expire after :data:`KEEPALIVE_S` idle. With ``pins`` it calls
    admitted node URLs only, at their pinned addresses.
    """

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        pins: AddressPins | None = None,
        fast_post: bool = True,
    ) -> None:
        self._pins = pins
        resolver: AbstractResolver | None = None if pins is None else _PinnedResolver(pins)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_connections,
                limit_per_host=0,
                keepalive_timeout=KEEPALIVE_S,
                resolver=resolver,
                use_dns_cache=pins is None,  # the pins are the cache; a re-pin counts at once
            ),
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
            # nodes set no state on the gateway: no cookie is kept or sent (and no
            # cookie filtering per request)
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}
        self._fingerprints: dict[str, aiohttp.Fingerprint] = {}
        # the hot call (a plain-HTTP POST read whole) on a leaner client: registry/http1.py
        self.http1: Http1Pool | None = (
            Http1Pool(
                user_agent=USER_AGENT,
                keepalive_s=KEEPALIVE_S,
                resolve=None if pins is None else pins.addresses,
            )
            if fast_post
            else None
        )

    def _ssl(self, url: str) -> aiohttp.Fingerprint | bool:
        """``ssl=`` for a request: the node's pinned certificate, else normal verification."""
        fp = None if self._pins is None else self._pins.fingerprint(url)
        if fp is None:
            return True
        pinned = self._fingerprints.get(fp)
        if pinned is None:
            pinned = aiohttp.Fingerprint(bytes.fromhex(fp))
            if len(self._fingerprints) >= 4096:
                self._fingerprints.clear()
            self._fingerprints[fp] = pinned
        return pinned

    def _timeout(self, read_s: float, connect_s: float) -> aiohttp.ClientTimeout:
        key = (read_s, connect_s)
        t = self._timeouts.get(key)
        if t is None:
            t = aiohttp.ClientTimeout(total=None, sock_read=read_s, sock_connect=connect_s)
            if len(self._timeouts) < 256:  # deadlines vary; keep only a few
                self._timeouts[key] = t
        return t

    async def _request(
        self, method: str, url: str, content: bytes | None, headers: Mapping[str, str] | None,
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:  # fmt: skip
        if self._pins is not None and not self._pins.admitted(url):
            await _admit(self._pins, url)
        try:
            return await self.session.request(
                method, url, data=content, headers=headers, timeout=timeout,
                allow_redirects=False, ssl=self._ssl(url),
            )  # fmt: skip
        except _AIOHTTP_ERRORS as exc:
            raise _from_aiohttp(exc) from exc

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
        pool = self.http1
        if pool is not None and url.startswith("http://"):
            if self._pins is not None and not self._pins.admitted(url):
                await _admit(self._pins, url)
            try:
                r = await pool.post(
                    url, content, headers, timeout_s=timeout_s, connect_s=connect_s, limit=limit
                )
            except (Http1Error, ValueError) as exc:
                raise _from_http1(exc) from exc
            return _Http1Response(r)
        resp = await self.stream(url, content, headers, timeout_s=timeout_s, connect_s=connect_s)
        await resp.aread(limit)
        return resp

    async def post_by(
        self, url: str, content: bytes, headers: Mapping[str, str], *, left: float,
        connect_s: float, limit: int = MAX_BODY_BYTES,
    ) -> NodeResponse:  # fmt: skip
        """On an idle pooled plain-HTTP connection to an admitted URL, the whole exchange
        under the pool's one timer (expiring as :data:`DEADLINE_PASSED`), without the
        cancel scope around it; else :meth:`NodeClient.post_by` (a connect is under the
        scope as before)."""
        pool = self.http1
        if (
            pool is not None
            and url.startswith("http://")
            and (self._pins is None or self._pins.admitted(url))
        ):
            try:
                r = await pool.post_pooled(
                    url, content, headers, timeout_s=left, expired=DEADLINE_PASSED, limit=limit
                )
            except (Http1Error, ValueError) as exc:
                raise _from_http1(exc) from exc
            if r is not None:
                return _Http1Response(r)
        return await super().post_by(url, content, headers, left=left, connect_s=connect_s,
                                     limit=limit)  # fmt: skip

    async def stream(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        connect_s: float,
    ) -> NodeResponse:
        pool = self.http1
        if pool is not None and url.startswith("http://"):
            if self._pins is not None and not self._pins.admitted(url):
                await _admit(self._pins, url)
            try:
                s = await pool.stream(
                    url, content, headers, timeout_s=timeout_s, connect_s=connect_s
                )
            except (Http1Error, ValueError) as exc:
                raise _from_http1(exc) from exc
            return _Http1StreamResponse(s)
        raw = await self._request(
            "POST", url, content, headers, self._timeout(timeout_s, connect_s)
        )
        return _AiohttpResponse(raw)

    async def get(
        self, url: str, *, timeout_s: float, headers: Mapping[str, str] | None = None
    ) -> NodeResponse:
        try:  # in all: an answer dripped a byte at a time does not hold the check
            return await asyncio.wait_for(self._get(url, timeout_s, headers), timeout_s)
        except asyncio.TimeoutError as exc:
            raise NodeTimeout(f"no whole answer within {timeout_s} s", "TimeoutError") from exc

    async def _get(
        self, url: str, timeout_s: float, headers: Mapping[str, str] | None
    ) -> NodeResponse:
        raw = await self._request("GET", url, None, headers, self._timeout(timeout_s, timeout_s))
        resp = _AiohttpResponse(raw)
        await resp.aread(MAX_GET_BYTES)  # decoded: a gzip bomb counts whole
        return resp

    async def aclose(self) -> None:
        if self.http1 is not None:
            await self.http1.aclose()
        await self.session.close()

    @property
    def is_closed(self) -> bool:
        return self.session.closed
