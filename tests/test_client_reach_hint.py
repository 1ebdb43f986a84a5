"""MeshClient and the CLI's synchronous fetch name the fix when a registry URL reaches a
server spoken to wrongly (found 2026-12-03 walking docs/deploy.md: ``http://`` for a replica
serving https said only ``Server disconnected without sending a response.``; a private CA
not given said ``Start one with `llm-mesh up` `` while a registry was running)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from LLM_Mesh.client import MeshClient, fetch_json_sync
from LLM_Mesh.errors import MeshError, RegistryUnreachable


def _raising(exc: type[httpx.TransportError], said: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc(said, request=request)

    return httpx.MockTransport(handler)


async def test_an_http_url_for_an_https_replica_says_https() -> None:
    http = httpx.AsyncClient(
        transport=_raising(
            httpx.RemoteProtocolError, "Server disconnected without sending a response."
        )
    )
    async with MeshClient("http://r1.test:8800", http_client=http) as client:
        with pytest.raises(MeshError) as caught:
            await client.nodes()
    assert "https://" in caught.value.message and "--tls-cert" in caught.value.message


async def test_an_untrusted_certificate_names_the_ca_not_llm_mesh_up() -> None:
    said = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
    http = httpx.AsyncClient(transport=_raising(httpx.ConnectError, said))
    async with MeshClient("https://r1.test:8800", http_client=http) as client:
        with pytest.raises(RegistryUnreachable) as caught:
            await client.nodes()
    assert "--registry-ca" in caught.value.message
    assert "llm-mesh up" not in caught.value.message
    # nor "no registry answered": one did, its certificate failed (cli36; failed before)
    assert caught.value.message.startswith("the registry at https://r1.test:8800 could not be")
    assert "certificate of r1.test is not trusted" in caught.value.message


async def test_nothing_listening_still_says_start_one() -> None:
    http = httpx.AsyncClient(transport=_raising(httpx.ConnectError, "connection refused"))
    async with MeshClient("http://r1.test:8800", http_client=http) as client:
        with pytest.raises(RegistryUnreachable) as caught:
            await client.nodes()
    assert "llm-mesh up" in caught.value.message and "https" not in caught.value.message


@pytest.fixture
def hangs_up() -> Iterator[int]:
    """A real server that closes each connection unanswered, as an https server does with a
    plain-http request; its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            conn.recv(65536)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(2)
    sock.close()


def test_the_clis_fetch_says_https_for_a_server_that_hangs_up(hangs_up: int) -> None:
    with pytest.raises(MeshError) as caught:
        fetch_json_sync(f"http://127.0.0.1:{hangs_up}", "/mesh/models", timeout=5.0)
    assert "https://" in caught.value.message
