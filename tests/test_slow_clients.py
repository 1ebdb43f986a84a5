"""Slow clients (slowloris, slow POST) on a real socket: a connection that takes longer than
the read timeout to send one request is closed, whatever it sends; a quick one is served."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from LLM_Mesh.slow_clients import guarded_http

READ_TIMEOUT_S = 0.3
GIVE_UP_S = 20.0  # generous: the test asserts that the server closes, not how fast


WRITE_STALL_S = 1.0  # a reader taking 64 KiB every 5 ms sees pauses of ~0.1 s on loopback
CHUNK = b"x" * 65_536
ended: list[str] = []  # how each endless answer ended


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/endless":  # 64 KiB writes for as long as the client is there
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(100_000):  # ~6 GB: "for ever"
            if gone.is_set():
                ended.append("gone")
                return
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        watcher.cancel()
        ended.append("finished")
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        http=guarded_http(READ_TIMEOUT_S, write_stall_s=WRITE_STALL_S),
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


async def test_a_client_that_reads_nothing_is_let_go(port: int) -> None:
    """A slow consumer: it asks for an answer and never reads it. The server's writes stand
    still (its buffers full); after ``write_stall_s`` the connection is aborted and the
    handler's ``send`` goes on as for a client that left (found 2026-12-05: held for ever)."""
    ended.clear()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(int(GIVE_UP_S / 0.05)):  # and reads nothing
            if ended:
                break
            await asyncio.sleep(0.05)
        assert ended and ended[0] != "finished"  # before: still writing at GIVE_UP_S
    finally:
        sock.close()


async def test_a_client_reading_steadily_is_not_let_go(port: int) -> None:
    """A client that keeps taking the answer (64 KiB every 5 ms, slower than the server
    makes it: the server's writes pause again and again) is served for twice the bound."""
    ended.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    try:
        writer.write(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        got, until = 0, loop.time() + 2 * WRITE_STALL_S
        while loop.time() < until:
            got += len(await asyncio.wait_for(reader.read(65_536), GIVE_UP_S))
            await asyncio.sleep(0.005)
        assert not ended and got > 10 * len(CHUNK)
    finally:
        writer.close()


@pytest.fixture
async def patient_port() -> AsyncIterator[int]:
    """The server with the real read timeout (30 s): only the head's bound can close early."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", http=guarded_http())
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn says so by a flag only
        await asyncio.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = server.force_exit = True
    await task


MOST = 64 << 20  # what the client would send


@pytest.mark.parametrize(
    ("head", "piece"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n", b"X-A: " + b"a" * 1000 + b"\r\n"),  # many lines
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ", b"a" * 4096),  # one value that never ends
        (b"GET /", b"a" * 4096),  # a URL that never ends
    ],
    ids=["header_lines", "one_value", "url"],
)
async def test_a_head_past_its_bound_ends_the_connection(
    patient_port: int, head: bytes, piece: bytes
) -> None:
    """A head sent as fast as the server reads it: the connection is ended (431) once it
    passes ``MAX_HEAD_BYTES`` (before, found 2026-12-05: kept, with every byte of it, until the
    read timeout, 30 s: 64 MiB of header lines went in, and 100 MiB of them grew the server's
    RSS by 100 MiB; a long URL or value is joined piece by piece, a copy each)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", patient_port)
    loop = asyncio.get_running_loop()
    sent, began = 0, loop.time()
    try:
        writer.write(head)
        while sent < MOST and not reader.at_eof():
            writer.write(piece)
            await asyncio.wait_for(writer.drain(), GIVE_UP_S)
            sent += len(piece)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    # the server closed after the bound and one read (the rest is what the kernels buffered),
    # at once, not at the read timeout (30 s)
    assert sent < MOST // 2 and loop.time() - began < GIVE_UP_S / 2, sent


async def test_a_large_head_within_the_bound_is_served(port: int) -> None:
    """48 KiB of headers, sent in pieces: served as before."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n")
        for _ in range(48):
            writer.write(b"X-A: " + b"a" * 1017 + b"\r\n")  # 1 KiB a line
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"\r\n{}")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_S)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def test_the_431_is_openai_shaped_with_a_request_id(patient_port: int) -> None:
    """What a client reads of the 431: OpenAI's error shape and a request id, as every
    error answer of the gateway (found 2026-12-05: plain text without one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", patient_port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        for _ in range(80):  # 80 KiB of header lines, past MAX_HEAD_BYTES (64 KiB)
            await asyncio.sleep(0.002)
            writer.write(b"X-A: " + b"a" * 1017 + b"\r\n")
            await writer.drain()
            if reader.at_eof() or reader._buffer:  # the answer came: stop sending
                break
        got = await closed_by_server(reader)
    finally:
        writer.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), got[:200]
    lines = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert (
        lines[b"x-request-id"].startswith(b"req-") and lines[b"content-type"] == b"application/json"
    )
    assert json.loads(body)["error"]["code"] == "request_header_fields_too_large"
    assert lines[b"x-should-retry"] == b"false"  # the client's own head (core/client_retry.py)
