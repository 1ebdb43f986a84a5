"""A node refuses what the headers alone refuse before it reads a byte of the body
(``node/gateway_guard.py``, ``GatewayVerifier.precheck``; found 2026-12-03: a registered
node read and hashed up to its 16 MiB body limit for anyone's request first).

The real node app is called as ASGI with a ``receive`` that hands the body out in 64 KiB
chunks and counts them: a refused stranger must have been handed none. One test runs it on
a real socket: the client sends the headers of a 16 MiB request and gets its 401 without
sending the body. Every test runs against a signing registry and one with a session key
(the ``registry`` fixture of ``test_gateway_guard.py``)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.config import Settings
from LLM_Mesh.core.gateway_auth import (
    HDR_GATEWAY,
    HDR_GATEWAY_MAC,
    HDR_GATEWAY_SIGNATURE,
    HDR_GATEWAY_TIME,
    GatewaySigner,
)
from LLM_Mesh.core.limits import GATEWAY_MARGIN_BYTES
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.service import NodeService
from tests.node import test_gateway_guard as tg
from tests.node.conftest import node_config, sim_engine

registry = tg.registry
registered = tg.registered
Registry = tg.Registry

CHUNK = 64 * 1024
LIMIT = 16 * 1024 * 1024  # NodeConfig.max_body_bytes
REMOTE = ("203.0.113.7", 5555)
LOOPBACK = ("127.0.0.1", 4321)


class CountedBody:
    """An ASGI ``receive``: ``body`` (or ``size`` zero bytes, made as asked for) in 64 KiB
    chunks, counted in ``handed``; then it waits (the client stays)."""

    def __init__(self, body: bytes | None = None, size: int = 0) -> None:
        self.body = body
        self.size = len(body) if body is not None else size
        self.handed = 0
        self.offset = 0

    async def __call__(self) -> dict[str, Any]:
        if self.offset < self.size or (self.size == 0 and self.handed == 0):
            end = min(self.offset + CHUNK, self.size)
            chunk = (
                self.body[self.offset : end] if self.body is not None else bytes(end - self.offset)
            )
            self.offset = end
            self.handed += 1
            return {"type": "http.request", "body": chunk, "more_body": end < self.size}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def _exchange(svc: NodeService, headers: dict[str, str], body: CountedBody, *,
                    declared: int | None, client: tuple[str, int] = REMOTE,
                    path: str = tg.CHAT_PATH) -> list[dict[str, Any]]:  # fmt: skip
    """POST through the real node app (``declared``: its Content-Length, ``None``: chunked);
    the messages it sent."""
    app = create_node_app(svc, manage_lifespan=False)
    raw = [(b"host", b"127.0.0.1:8801")]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if declared is not None:
        raw.append((b"content-length", str(declared).encode()))
    else:
        raw.append((b"transfer-encoding", b"chunked"))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": raw, "client": client, "server": ("127.0.0.1", 8801),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, body, send), 30)
    return sent


async def _call(svc: NodeService, headers: dict[str, str], body: CountedBody, *,
                declared: int | None, client: tuple[str, int] = REMOTE,
                path: str = tg.CHAT_PATH) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """:func:`_exchange`: (status, JSON answer)."""
    sent = await _exchange(svc, headers, body, declared=declared, client=client, path=path)
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), json.loads(data)


def _code(answer: dict[str, Any]) -> str:
    err = answer["error"]
    assert set(err) >= {"message", "type", "param", "code"}  # OpenAI's error shape
    return str(err["code"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# each: how a stranger's headers are made from an honest request's -> the code refused with
HEADER_ONLY: dict[str, Callable[[dict[str, str]], tuple[dict[str, str], str]]] = {
    "no_gateway_headers": lambda h: ({"Content-Type": "application/json"}, "invalid_signature"),
    "another_registry": lambda h: (
        {**h, HDR_GATEWAY: GatewaySigner(Ed25519PrivateKey.generate(), time.time).registry_id},
        "invalid_signature",
    ),
    "malformed_timestamp": lambda h: ({**h, HDR_GATEWAY_TIME: "17x"}, "invalid_signature"),
    "malformed_tag": lambda h: ({**h, tg._auth_header(h): "not base64!"}, "invalid_signature"),
    "short_tag": lambda h: ({**h, tg._auth_header(h): _b64(b"x" * 16)}, "invalid_signature"),
    "stale": lambda h: (
        {**h, HDR_GATEWAY_TIME: str(int((time.time() - 121) * 1000))},
        "stale_message",
    ),
}


@pytest.mark.parametrize("declared", [LIMIT, LIMIT + LIMIT // 4, None],
                         ids=["16MiB", "over_the_limit", "chunked"])  # fmt: skip
@pytest.mark.parametrize("case", sorted(HEADER_ONLY))
async def test_a_strangers_request_is_refused_before_its_body_is_read(
    registered: NodeService, registry: Registry, case: str, declared: int | None
) -> None:
    honest = registry.headers(registered.node_id, tg._raw(tg.CHAT))
    headers, code = HEADER_ONLY[case](honest)
    body = CountedBody(size=declared if declared is not None else LIMIT)
    status, answer = await _call(registered, headers, body, declared=declared)
    assert (status, _code(answer)) == (401, code)
    assert body.handed == 0  # before: all of it read (and hashed), or drained for a 413
    assert registered.requests_served == 0


async def test_a_mac_to_a_node_without_a_session_is_refused_unread(
    registered: NodeService, registry: Registry
) -> None:
    honest = registry.headers(registered.node_id, tg._raw(tg.CHAT))
    headers = {k: v for k, v in honest.items() if k != HDR_GATEWAY_SIGNATURE}
    headers[HDR_GATEWAY_MAC] = _b64(b"m" * 32)
    registered.gateway.verifier.session_key = None  # type: ignore[union-attr]
    body = CountedBody(size=LIMIT)
    status, answer = await _call(registered, headers, body, declared=LIMIT)
    assert (status, _code(answer)) == (401, "invalid_signature")
    assert "no session key" in answer["error"]["message"]
    assert body.handed == 0


async def test_honest_requests_are_served_and_a_replay_is_refused_unread(
    registered: NodeService, registry: Registry
) -> None:
    raw = tg._raw({**tg.CHAT, "stream": True})
    headers = registry.headers(registered.node_id, raw, rid="req-2")
    body = CountedBody(raw)
    sent = await _exchange(registered, headers, body, declared=len(raw))
    assert sent[0]["status"] == 200
    assert b"[DONE]" in b"".join(m.get("body", b"") for m in sent[1:])
    assert body.offset == len(raw)
    raw = tg._raw(tg.CHAT)
    headers = registry.headers(registered.node_id, raw)
    body = CountedBody(raw)
    status, answer = await _call(registered, headers, body, declared=len(raw))
    assert status == 200 and answer["choices"][0]["message"]["content"]
    assert body.offset == len(raw)
    assert registered.requests_served == 2
    # the same headers again, now with 16 MiB: refused on the headers as a replay
    replay = CountedBody(size=LIMIT)
    status, answer = await _call(registered, headers, replay, declared=LIMIT)
    assert (status, _code(answer)) == (401, "replayed_message")
    assert replay.handed == 0
    # and with the body it was signed for: refused as well
    again = CountedBody(raw)
    status, answer = await _call(registered, headers, again, declared=len(raw))
    assert (status, _code(answer)) == (401, "replayed_message")
    assert registered.requests_served == 2


async def test_a_signed_request_over_the_limit_is_still_413(
    registered: NodeService, registry: Registry
) -> None:
    """Headers that pass the pre-check, a declared length over the limit: the 413 as before
    (the body drained up to twice the limit, so the client reads it)."""
    over = LIMIT + GATEWAY_MARGIN_BYTES + 1  # the gateway's room above the limit, and a byte
    headers = registry.headers(registered.node_id, b"x" * over)
    body = CountedBody(size=over)
    status, answer = await _call(registered, headers, body, declared=over)
    assert (status, _code(answer)) == (413, "request_too_large")


async def test_no_key_yet_and_a_standalone_nodes_remote_peer_are_refused_unread(
    settings: Settings,
) -> None:
    for register, client in ((True, LOOPBACK), (False, REMOTE)):
        svc = NodeService(node_config(register=register), settings, engine=sim_engine(),
                          hardware=Hardware(cpu_count=2, memory_bytes=1 << 30))  # fmt: skip
        assert svc.gateway.verifier is None
        body = CountedBody(size=LIMIT)
        status, answer = await _call(svc, {"Content-Type": "application/json"}, body,
                                     declared=LIMIT, client=client)  # fmt: skip
        assert (status, _code(answer)) == (401, "invalid_signature")
        assert body.handed == 0


async def test_the_operator_endpoints_refuse_a_remote_body_unread(registered: NodeService) -> None:
    """``/mesh/admin/*`` never reads the body; a declared length over the limit is no longer
    drained (up to 32 MiB) for its 413 before the 403."""
    body = CountedBody(size=LIMIT + LIMIT // 4)
    status, answer = await _call(registered, {}, body, declared=LIMIT + LIMIT // 4,
                                 path="/mesh/admin/pause")  # fmt: skip
    assert (status, _code(answer)) == (403, "forbidden")
    assert body.handed == 0
    assert registered.health()["state"] != "paused"


async def test_on_a_real_socket_the_401_comes_before_the_body_is_sent(
    registered: NodeService, registry: Registry
) -> None:
    """A client sends the head of a 16 MiB request and waits: it gets its 401 without
    sending a byte of the body (before: the node waited for the 16 MiB); the gateway's
    signed request on the same server is served."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_node_app(registered, manage_lifespan=False),
                            lifespan="off", log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn says so by a flag only
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"POST {tg.CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {LIMIT}\r\n\r\n".encode()
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        finally:
            writer.close()
        assert head.startswith(b"HTTP/1.1 401 "), head
        raw = tg._raw(tg.CHAT)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.post(tg.CHAT_PATH, content=raw,
                                  headers=registry.headers(registered.node_id, raw))  # fmt: skip
        assert r.status_code == 200, r.text
    finally:
        server.should_exit = server.force_exit = True
        await task


async def _serve(svc: NodeService) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_node_app(svc, manage_lifespan=False),
                            lifespan="off", log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn says so by a flag only
        await asyncio.sleep(0.01)
    return server, task, sock.getsockname()[1]


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 answer with a Content-Length: (its head, lower case; its body)."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).lower()
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.startswith(b"content-length:"))  # fmt: skip
    return head, await asyncio.wait_for(reader.readexactly(length), 10)


def _request(port: int, headers: dict[str, str], body: bytes, declared: int | None = None) -> bytes:
    lines = [f"POST {tg.CHAT_PATH} HTTP/1.1", f"Host: 127.0.0.1:{port}",
             f"Content-Length: {len(body) if declared is None else declared}"]  # fmt: skip
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_a_header_refusal_keeps_the_gateways_connection_usable(
    registered: NodeService, registry: Registry
) -> None:
    """The gateway keeps its connection to a node alive: after a request refused on its
    headers (a replay of one served; a stale one with a 300 KiB body, past uvicorn's 64 KiB
    read pause), its body unread by the node, the next request on the same connection is
    served."""
    server, task, port = await _serve(registered)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            raw = tg._raw(tg.CHAT)
            headers = registry.headers(registered.node_id, raw, rid="ka-1")
            big = b"x" * (300 * 1024)
            stale = {**registry.headers(registered.node_id, big, rid="ka-2"),
                     HDR_GATEWAY_TIME: str(int((time.time() - 121) * 1000))}  # fmt: skip
            fresh = registry.headers(registered.node_id, raw, rid="ka-3")
            answers = []
            for h, body in ((headers, raw), (headers, raw), (stale, big), (fresh, raw)):
                writer.write(_request(port, h, body))
                await writer.drain()
                head, data = await _answer(reader)
                answers.append((int(head.split(b" ")[1]), json.loads(data)))
                assert b"connection: close" not in head
        finally:
            writer.close()
        assert [status for status, _ in answers] == [200, 401, 401, 200]
        assert [_code(a) for _, a in answers[1:3]] == ["replayed_message", "stale_message"]
        assert registered.requests_served == 2
    finally:
        server.should_exit = server.force_exit = True
        await task


async def test_a_refusal_of_an_oversized_declared_body_closes_the_connection(
    registered: NodeService,
) -> None:
    """A stranger declares a body over the limit and is refused on its headers (401, body
    unread): the node closes the connection (found 2026-12-03, review: it was kept alive
    and the node read and discarded whatever the stranger sent, up to the declared length,
    until the keep-alive timeout; before on_read its 413 closed it)."""
    server, task, port = await _serve(registered)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_request(port, {"Content-Type": "application/json"}, b"",
                                  declared=3 * LIMIT))  # fmt: skip
            await writer.drain()
            head, _ = await _answer(reader)
            assert head.startswith(b"http/1.1 401 ")
            assert b"connection: close" in head
            writer.write(bytes(CHUNK))  # the body it declared: not read, the connection ends
            assert await asyncio.wait_for(reader.read(), 2) == b""
        finally:
            writer.close()
    finally:
        server.should_exit = server.force_exit = True
        await task
