"""The gateway's outbound client against real loopback TLS servers: a node's certificate is
pinned by the fingerprint it registered, another certificate is refused before anything is
sent, and a node without a fingerprint is verified normally (so a self-signed one fails)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.node.tls import NodeCertificate, make_self_signed
from LLM_Mesh.registry.address_pins import AddressPins
from LLM_Mesh.registry.node_client import (
    AiohttpNodeClient,
    NodeClient,
    NodeConnectError,
)
from LLM_Mesh.registry.node_client_httpx import HttpxNodeClient, pinned_httpx_transport

HEADERS = {"Content-Type": "application/json"}


def _cert(tmp_path: Path, name: str, hosts: list[str] | None = None) -> NodeCertificate:
    return make_self_signed(
        tmp_path / f"{name}.crt", tmp_path / f"{name}.key", hosts or ["127.0.0.1", "localhost"]
    )


@asynccontextmanager
async def tls_server(cert: NodeCertificate) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A one-route HTTPS server on loopback; yields its URL and the bodies it received."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert.cert_path, cert.key_path)
    received: list[bytes] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive, as uvicorn: the client closes its pooled connections
                head = await r.readuntil(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":")[1])
                received.append(await r.readexactly(n) if n else b"")
                body = b'{"ok":true}'
                w.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                await w.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}", received
    finally:
        server.close()


async def _pins(url: str, fingerprint: str | None) -> AddressPins:
    pins = AddressPins(allow_private=True)
    await pins.admit(url)
    pins.pin_certificate(url, fingerprint)
    return pins


def _aiohttp(pins: AddressPins) -> NodeClient:
    return AiohttpNodeClient(pins=pins)


def _httpx(pins: AddressPins) -> NodeClient:
    client = httpx.AsyncClient(transport=pinned_httpx_transport(pins))
    return HttpxNodeClient(client, pins=pins)


CLIENTS = [pytest.param(_aiohttp, id="aiohttp"), pytest.param(_httpx, id="httpx")]


@pytest.mark.parametrize("make", CLIENTS)
async def test_pinned_certificate_is_accepted(tmp_path: Path, make: object) -> None:
    cert = _cert(tmp_path, "node")
    async with tls_server(cert) as (url, received):
        client = make(await _pins(url, cert.fingerprint))  # type: ignore[operator]
        try:
            resp = await client.post(
                url + "/v1/completions", b'{"x":1}', HEADERS, timeout_s=5, connect_s=5
            )
            assert resp.status_code == 200
            assert resp.content == b'{"ok":true}'
            got = await client.get(url + "/health", timeout_s=5)  # health checks too
            assert got.status_code == 200
        finally:
            await client.aclose()
    assert received[0] == b'{"x":1}'


@pytest.mark.parametrize("make", CLIENTS)
async def test_another_certificate_is_refused_before_sending(tmp_path: Path, make: object) -> None:
    """A MITM (or a swapped node) presenting a different certificate: nothing is sent."""
    registered = _cert(tmp_path, "registered")
    impostor = _cert(tmp_path, "impostor")
    assert registered.fingerprint != impostor.fingerprint
    async with tls_server(impostor) as (url, received):
        client = make(await _pins(url, registered.fingerprint))  # type: ignore[operator]
        try:
            with pytest.raises(NodeConnectError) as info:
                await client.post(
                    url + "/v1/completions", b'{"x":1}', HEADERS, timeout_s=5, connect_s=5
                )
            assert info.value.kind == "CertificateMismatch"
            with pytest.raises(NodeConnectError):
                await client.get(url + "/health", timeout_s=5)
        finally:
            await client.aclose()
    assert received == []


@pytest.mark.parametrize("make", CLIENTS)
async def test_no_fingerprint_means_normal_verification(tmp_path: Path, make: object) -> None:
    """An https node that registered no fingerprint must have a CA-issued certificate:
    a self-signed one fails verification (it is never skipped)."""
    cert = _cert(tmp_path, "selfsigned")
    async with tls_server(cert) as (url, received):
        client = make(await _pins(url, None))  # type: ignore[operator]
        try:
            with pytest.raises(NodeConnectError):
                await client.post(url + "/v1/completions", b"{}", HEADERS, timeout_s=5, connect_s=5)
        finally:
            await client.aclose()
    assert received == []


@pytest.mark.parametrize("make", CLIENTS)
async def test_pin_follows_re_registration(tmp_path: Path, make: object) -> None:
    """A node that registers a new certificate is pinned to the new one at once."""
    old, new = _cert(tmp_path, "old"), _cert(tmp_path, "new")
    async with tls_server(new) as (url, _received):
        pins = await _pins(url, old.fingerprint)
        client = make(pins)  # type: ignore[operator]
        try:
            with pytest.raises(NodeConnectError):
                await client.post(url + "/x", b"{}", HEADERS, timeout_s=5, connect_s=5)
            pins.pin_certificate(url, new.fingerprint)
            resp = await client.post(url + "/x", b"{}", HEADERS, timeout_s=5, connect_s=5)
            assert resp.status_code == 200
        finally:
            await client.aclose()
