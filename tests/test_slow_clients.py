"""Slow clients (slowloris, slow POST) on a real socket: a connection that takes longer than
the read timeout to send one request is closed, whatever it sends; a quick one is served."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from LLM_Mesh.slow_clients import guarded_http

READ_TIMEOUT_S = 0.3
GIVE_UP_S = 20.0  # generous: the test asserts that the server closes, not how fast


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", http=guarded_http(READ_TIMEOUT_S)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn says so by a flag only
        await asyncio.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = server.force_exit = True  # connections a failed test left open
    await task


async def read_to_close(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before it closed the connection. A server that closes with bytes of
    ours still unread makes the kernel send a reset, not a FIN: that is a close too, with
    nothing more to read."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before it closed the connection (raises on GIVE_UP_S)."""
    return await asyncio.wait_for(read_to_close(reader), GIVE_UP_S)


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connects and says nothing
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n",  # headers never end
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",  # slow body
    ],
    ids=["silent", "slow_headers", "slow_body"],
)
async def test_a_slow_request_is_cut_off(port: int, sent: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(sent)
        await writer.drain()
        got = await closed_by_server(reader)  # before: held open for ever
    finally:
        writer.close()
    assert b"200" not in got


async def test_trickled_header_bytes_do_not_restart_the_clock(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    done = asyncio.ensure_future(read_to_close(reader))  # we write on after the server gave up
    try:
        for _ in range(int(GIVE_UP_S / (READ_TIMEOUT_S / 3))):
            if done.done():
                break
            writer.write(b"X-A: b\r\n")  # a header line every third of the timeout
            await asyncio.sleep(READ_TIMEOUT_S / 3)
        assert done.done() and b"200" not in await done
    finally:
        done.cancel()
        writer.close()


async def test_quick_requests_are_served_on_one_keepalive_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_S)
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(2) == b"ok"
    writer.close()


@pytest.mark.parametrize("together", [False, True], ids=["next_read", "same_read"])
async def test_a_slow_request_after_a_quick_one_is_cut_off(port: int, together: bool) -> None:
    """The timer is set when a read ends within a request (a whole request in one read sets
    none): a slow request after a quick one on the same connection, begun in a read of its
    own or in the read that ended the quick one, is cut off all the same."""
    quick = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    slow = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(quick + slow if together else quick)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_S)
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(2) == b"ok"
        if not together:
            writer.write(slow)
            await writer.drain()
        got = await closed_by_server(reader)
    finally:
        writer.close()
    assert b"200" not in got
