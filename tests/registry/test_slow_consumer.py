"""A client that opens a stream and never reads it (a slow consumer) on the gateway's real
socket: the connection is ended once the gateway's writes have stood still for the write
stall bound (``slow_clients.guarded_http(write_stall_s=...)``), its node's stream closed,
the router's slot on that node freed. Before (found 2026-12-05): held for ever, so a few
anonymous streams a minute, never read, took every slot of a model's nodes.
docs/security.md, "Request limits"."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn

from LLM_Mesh.slow_clients import guarded_http
from tests.registry.helpers import running
from tests.registry.test_hostile_node_streams import CHAT, MODEL, Nodes, _end, _role, _token

WRITE_STALL_S = 0.3
GIVE_UP_S = 20.0  # generous: the test asserts that the gateway lets go, not how fast
TOKENS = 2_000
WORD = "w" * 2_000 + " "  # ~2 KB an event: the socket's buffers fill within a few hundred


class Endless(httpx.AsyncByteStream):
    """A node's honest stream of :data:`TOKENS` large tokens, made as fast as it is read."""

    def __init__(self) -> None:
        self.pulled = 0
        self.closed = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield _role("ok")
        for _ in range(TOKENS):
            self.pulled += 1
            yield _token(CHAT, "ok", WORD)
            await asyncio.sleep(0)
        for ev in _end(CHAT, "ok", TOKENS):
            yield ev

    async def aclose(self) -> None:
        self.closed.set()


async def test_a_stream_its_client_never_reads_lets_its_node_go(tmp_path: Path) -> None:
    nodes = Nodes()
    stream = Endless()
    nodes.streams["ok"] = lambda node: stream  # type: ignore[assignment,return-value]
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("ok")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(h.app, lifespan="off", log_level="warning",
                                http=guarded_http(write_stall_s=WRITE_STALL_S))  # fmt: skip
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:  # noqa: ASYNC110 - uvicorn says so by a flag only
            await asyncio.sleep(0.01)
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the attacker's choice
        client.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(client, sock.getsockname())
            body = json.dumps({
                "model": MODEL, "stream": True, "max_tokens": TOKENS,
                "messages": [{"role": "user", "content": "hi"}],
            }).encode()  # fmt: skip
            head = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
            await asyncio.get_running_loop().sock_sendall(client, head + body)
            # ... and never reads a byte
            await asyncio.wait_for(stream.closed.wait(), GIVE_UP_S)  # before: never
            assert stream.pulled < TOKENS  # it was cut, not read to its end
            for _ in range(int(GIVE_UP_S / 0.05)):
                if h.in_flight("ok") == 0:
                    break
                await asyncio.sleep(0.05)
            assert h.in_flight("ok") == 0
        finally:
            client.close()
            server.should_exit = server.force_exit = True
            await task
