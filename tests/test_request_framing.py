"""Request smuggling between a balancer and a replica (or a node): a request whose framing
two parsers could read two ways (``Content-Length`` with ``Transfer-Encoding``, two lengths,
an obfuscated ``Transfer-Encoding``) is refused 400 by the servers' protocol
(``slow_clients.guarded_http``, uvicorn's httptools) and never reaches the app, so no
second request hides in its body. Tried 2026-12-06 (attack35b): no hole (docs/security.md)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from LLM_Mesh.slow_clients import guarded_http

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD = b"POST /a HTTP/1.1\r\nHost: x\r\n"
CASES = {
    "cl_te": b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_cl": b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n",
    "two_cl": b"Content-Length: 0\r\nContent-Length: 35\r\n\r\n",
    "cl_list": b"Content-Length: 0, 35\r\n\r\n",
    "te_space_before_colon": b"Content-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "te_xchunked": b"Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "te_chunked_identity": b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "te_obs_fold": b"Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "te_twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "cl_plus": b"Content-Length: +5\r\n\r\n0\r\n\r\n",
}
seen: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    seen.append(scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="critical", http=guarded_http())
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn says so by a flag only
        await asyncio.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = server.force_exit = True
    await task


@pytest.mark.parametrize("framing", list(CASES), ids=list(CASES))
async def test_an_ambiguous_framing_is_refused_and_hides_no_request(
    port: int, framing: str
) -> None:
    seen.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HEAD + CASES[framing] + SMUGGLED)
        await writer.drain()
        try:
            got = await asyncio.wait_for(reader.read(), 10)
        except ConnectionResetError:
            got = b""
    finally:
        writer.close()
    statuses = [line.split(b" ")[1] for line in got.split(b"\r\n") if line.startswith(b"HTTP/1.")]
    assert statuses == [b"400"], got
    assert seen == []


async def test_a_plain_request_and_a_pipelined_one_are_both_served(port: int) -> None:
    """The control: the same bytes framed one way are two requests, both answered."""
    seen.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HEAD + b"Content-Length: 0\r\n\r\n" + SMUGGLED)
        await writer.drain()
        got = b""
        while got.count(b"HTTP/1.1 200") < 2:
            got += await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()
    assert seen == ["/a", "/smuggled"]
