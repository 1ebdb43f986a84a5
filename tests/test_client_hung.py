"""A hung gateway replica is left for the next URL; a slow live one is waited for
(``client_hang.py``, ``core/hang_watch.py``), on loopback sockets.

"Hung" is what a SIGSTOPped gateway looks like from outside: the kernel still takes its
connections (the listen backlog), nothing reads or answers them, ``GET /healthz`` neither.
Before the fix ``MeshClient`` waited out its read timeout (300 s) on such a replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.client import MeshClient
from LLM_Mesh.client_hang import Hung as HungError
from LLM_Mesh.core.hang_watch import HangPolicy
from LLM_Mesh.core.registry_identity import IdentityProver
from LLM_Mesh.errors import ModelUnavailable, RegistryUnreachable
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh
from tests.registry.test_shared_idempotency import _register_everywhere as register_everywhere
from tests.registry.test_shared_idempotency import two_replicas

# quick probes: a hung gateway is left after ~0.2 + 0.3 + 0.3 s (each probe 0.3 s)
QUICK = HangPolicy(first_s=0.2, every_s=0.2, probe_s=0.3, misses=2)
BOUND_S = 5.0  # well under the read timeout (300 s) the client waited before
CHAT_PATH = "/v1/chat/completions"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class Gateway:
    """A live gateway: ``/healthz`` at once; chat completions after ``delay_s``; with a
    ``prover``, the admin calls too (its identity proof, a health-check pass)."""

    def __init__(self, name: str, delay_s: float = 0.0) -> None:
        self.name = name
        self.delay_s = delay_s
        self.prover: IdentityProver | None = None
        self.not_up = False  # completions: 503 model_unavailable (naming the models up)
        self.calls: list[str | None] = []  # each completion's X-Request-Id
        self.probes = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/healthz":
            self.probes += 1
            await _json(send, {"status": "ok"})
            return
        if scope["path"] == "/mesh/identity" and self.prover is not None:
            query = dict(parse_qsl(scope["query_string"].decode()))
            await _json(send, dict(self.prover.answer(query["origin"], query["nonce"])))
            return
        headers = dict(scope["headers"])
        self.calls.append(headers.get(b"x-request-id", b"").decode() or None)
        await asyncio.sleep(self.delay_s)
        if self.not_up and scope["path"] == CHAT_PATH:
            error = {"message": "m is not up", "code": "model_unavailable", "model": "m"}
            await _json(send, {"error": {**error, "available": [self.name]}}, 503)
        elif scope["path"] == "/mesh/models":
            await _json(send, {"models": [{"id": self.name}]})
        elif scope["path"] == "/mesh/health-check":
            await _json(send, {"results": [{"node_id": self.name, "ok": True}]})
        elif json.loads(body).get("stream"):
            event = {"choices": [{"delta": {"content": self.name}}]}
            sse = f"data: {json.dumps(event)}\n\ndata: [DONE]\n\n".encode()
            start = {"type": "http.response.start", "status": 200}
            await send({**start, "headers": [(b"content-type", b"text/event-stream")]})
            await send({"type": "http.response.body", "body": sse})
        else:
            answer = {"id": self.name, "object": "chat.completion", "choices": [], "mesh": {}}
            await _json(send, answer)


async def _json(send: Any, data: dict[str, Any], status: int = 200) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve(app: Gateway) -> tuple[str, uvicorn.Server, asyncio.Task[None]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn says so by a flag only
        await asyncio.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, task


class Hung:
    """A stopped gateway. ``backlog``: it listens and never accepts (the kernel completes
    the connections); ``silent``: it accepts and reads, and never answers (what each
    connection sent is kept, to read its request id)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.received: list[bytes] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._sock = socket.socket()

    async def start(self) -> str:
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        if self.kind in ("silent", "one_live"):
            self._server = await asyncio.start_server(self._hold, sock=self._sock)
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = len(self.received)
        self.received.append(b"")
        self._writers.append(writer)
        if self.kind == "one_live" and got == 1:  # a live process on the same port
            await _answer_probes(reader, writer)
            return
        try:
            while data := await reader.read(65536):
                self.received[got] += data
        finally:
            writer.close()

    def request_ids(self, path: str) -> list[str]:
        """The X-Request-Id of each request for ``path`` it received."""
        out = []
        for raw in self.received:
            head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            if head and head[0].split(" ")[1:2] == [path]:
                out += [
                    h.split(":", 1)[1].strip()
                    for h in head
                    if h.lower().startswith("x-request-id:")
                ]
        return out

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._sock.close()


async def _answer_probes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each request on this connection ``200 {"status": "ok"}``, keeping it open."""
    body, buf = b'{"status": "ok"}', b""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    try:
        while data := await reader.read(65536):
            buf += data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                writer.write(head % len(body) + body)
                await writer.drain()
    finally:
        writer.close()


class Live:
    """Live gateways started on loopback, stopped at the test's end."""

    def __init__(self) -> None:
        self.servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(self, app: Gateway) -> str:
        url, server, task = await serve(app)
        self.servers.append((server, task))
        return url


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    running = Live()
    yield running
    for server, task in running.servers:
        server.should_exit = server.force_exit = True
        await task


def refusing() -> socket.socket:
    """A port bound but not listening: connection refused (close it after)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def stopped_at_end(h: Hung) -> AsyncIterator[Hung]:
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def hung(request: pytest.FixtureRequest) -> AsyncIterator[Hung]:
    async with stopped_at_end(Hung(getattr(request, "param", "silent"))) as h:
        yield h


@pytest.mark.parametrize("hung", ["backlog", "silent"], indirect=True)
@pytest.mark.parametrize("call", ["chat", "stream", "models"])
async def test_a_hung_gateway_is_left_for_the_next_with_the_same_request_id(
    hung: Hung, live: Live, call: str
) -> None:
    second = Gateway("b")
    urls = [await hung.start(), await live.start(second)]
    async with MeshClient(urls, hang_policy=QUICK) as c, asyncio.timeout(BOUND_S):
        if call == "chat":
            assert (await c.chat(CHAT, request_id="mine-1"))["id"] == "b"
        elif call == "stream":
            items = [x async for x in c.stream("/v1/chat/completions", CHAT, request_id="mine-1")]
            assert items[1]["choices"][0]["delta"]["content"] == "b"
        else:
            assert (await c.models())[0]["id"] == "b"
    assert c.base_url == urls[1] and c.failovers == 1
    if call != "models":
        assert second.calls == ["mine-1"]
        if hung.kind == "silent":  # the stopped one got the same id (and its probes)
            assert hung.request_ids("/v1/chat/completions") == ["mine-1"]
            assert len(hung.request_ids("/healthz")) == 0  # (probes carry no id)
            assert sum(r.startswith(b"GET /healthz ") for r in hung.received) == QUICK.misses


async def test_a_port_where_one_process_is_hung_and_another_answers_is_left(live: Live) -> None:
    """``registry serve --workers N`` with one worker stopped: the request's connection
    reached the stopped worker, the first probe's a live one, the later probes' the stopped
    one again. Each probe takes a fresh connection (found 2026-12-04: the probes after the
    first reused its kept-alive connection to the live worker, so the stopped one was never
    left: ``llm-mesh ask`` with two URLs waited its whole timeout)."""
    async with stopped_at_end(Hung("one_live")) as port:
        second = Gateway("b")
        urls = [await port.start(), await live.start(second)]
        async with MeshClient(urls, hang_policy=QUICK) as c, asyncio.timeout(BOUND_S):
            assert (await c.chat(CHAT, request_id="mine-3"))["id"] == "b"
        assert second.calls == ["mine-3"] and c.failovers == 1


async def test_a_made_request_id_is_the_same_on_both(hung: Hung, live: Live) -> None:
    second = Gateway("b")
    urls = [await hung.start(), await live.start(second)]
    async with MeshClient(urls, hang_policy=QUICK) as c, asyncio.timeout(BOUND_S):
        assert (await c.chat(CHAT))["id"] == "b"
    made = second.calls[0]
    assert made and made.startswith("req-")
    assert hung.request_ids("/v1/chat/completions") == [made]


@pytest.mark.parametrize("call", ["chat", "stream"])
async def test_a_slow_live_gateway_is_waited_for(live: Live, call: str) -> None:
    first, second = Gateway("a", delay_s=1.5), Gateway("b")
    urls = [await live.start(first), await live.start(second)]
    async with MeshClient(urls, hang_policy=QUICK) as c, asyncio.timeout(BOUND_S):
        if call == "chat":
            assert (await c.chat(CHAT, request_id="slow-1"))["id"] == "a"
        else:
            items = [x async for x in c.stream("/v1/chat/completions", CHAT, request_id="slow-1")]
            assert items[1]["choices"][0]["delta"]["content"] == "a"
    assert first.calls == ["slow-1"] and second.calls == [] and c.failovers == 0
    assert first.probes >= 3  # it was probed, and answered, while it worked


async def test_one_url_keeps_waiting_on_a_hung_gateway(hung: Hung) -> None:
    url = await hung.start()
    async with MeshClient(url, hang_policy=QUICK) as c:
        with pytest.raises(TimeoutError):  # nothing to move to: it waits, as before
            await asyncio.wait_for(c.chat(CHAT), 1.5)
    assert hung.request_ids("/healthz") == [] and not any(
        r.startswith(b"GET /healthz ") for r in hung.received
    )


async def test_the_last_url_left_is_waited_on(hung: Hung) -> None:
    """A dead first URL, then a hung one: nothing left after it, so no probe gives it up."""
    dead = refusing()
    urls = [f"http://127.0.0.1:{dead.getsockname()[1]}", await hung.start()]
    try:
        async with MeshClient(urls, hang_policy=QUICK) as c:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(c.chat(CHAT), 1.5)
    finally:
        dead.close()
    assert not any(r.startswith(b"GET /healthz ") for r in hung.received)


async def test_a_post_without_request_id_is_not_moved(hung: Hung, live: Live) -> None:
    """A canary round carries no id: another gateway would run it twice (a completion on
    every node), so it waits."""
    second = Gateway("b")
    urls = [await hung.start(), await live.start(second)]
    async with MeshClient(urls, hang_policy=QUICK, admin_key="k") as c:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(c.canary_run(), 1.5)
    assert second.calls == []


@pytest.mark.parametrize("proof", [False, True])
async def test_the_health_check_is_moved_off_a_hung_gateway(
    hung: Hung, live: Live, proof: bool
) -> None:
    """Found 2026-12-05: the admin health check (a POST without a request id) waited on a
    hung first gateway (300 s), and so did its admin proof (``GET /mesh/identity``, the home's
    key). A pass only checks the nodes again: it is moved like a read."""
    second = Gateway("b")
    urls = [await hung.start(), await live.start(second)]
    second.prover = IdentityProver(Ed25519PrivateKey.generate(), [urls[1]])
    holder = second.prover.public_key if proof else None
    async with MeshClient(
        urls, hang_policy=QUICK, admin_key="admin-k", admin_registry_key=holder
    ) as c, asyncio.timeout(BOUND_S):  # fmt: skip
        assert await c.health_check() == [{"node_id": "b", "ok": True}]
    assert c.base_url == urls[1] and c.failovers == 1 and second.calls == [None]
    if proof:  # the hung one was asked its proof, never sent the key
        assert not any(b"admin-k" in r for r in hung.received)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_not_up_is_not_waited_on_a_hung_gateway_after_it(
    hung: Hung, live: Live, stream: bool
) -> None:
    """Found 2026-12-05: a call begins at the gateway that answered last; when it says the
    model is not up, the next (hung) one was the last left, so not watched: 300 s, and then
    not its "not up" (the models up) but the hung one's timeout. Now it is left (~1 s here)
    and the live one's ModelUnavailable raised, as fallback=True needs."""
    first = Gateway("b")
    first.not_up = True
    urls = [await live.start(first), await hung.start()]
    async with MeshClient(urls, hang_policy=QUICK) as c, asyncio.timeout(BOUND_S):
        with pytest.raises(ModelUnavailable) as info:
            if stream:
                _ = [x async for x in c.stream(CHAT_PATH, CHAT)]
            else:
                await c.chat(CHAT)
    assert info.value.available == ["b"] and info.value.model == "m"


async def test_no_policy_never_probes(hung: Hung, live: Live) -> None:
    urls = [await hung.start(), await live.start(Gateway("b"))]
    async with MeshClient(urls, hang_policy=None) as c:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(c.chat(CHAT), 1.0)


async def test_two_hung_then_a_dead_one_raises_the_dead_ones_error() -> None:
    """Both hung gateways are left in turn; the last URL's own error is the call's."""
    a, b = Hung("backlog"), Hung("silent")
    with contextlib.closing(refusing()) as dead:
        async with stopped_at_end(a), stopped_at_end(b):
            last = f"http://127.0.0.1:{dead.getsockname()[1]}"
            urls = [await a.start(), await b.start(), last]
            async with MeshClient(urls, hang_policy=QUICK) as c, asyncio.timeout(BOUND_S):
                with pytest.raises(RegistryUnreachable, match=last):
                    await c.chat(CHAT)
            assert c.failovers == 2
            assert len(b.request_ids("/v1/chat/completions")) == 1


def test_the_hung_error_says_what_was_seen() -> None:
    text = str(HungError("http://r1", 0.7, QUICK))
    assert text.startswith("the registry at http://r1 sent no answer in 0.7 s")
    assert "2 GET /healthz in a row" in text and "taken for hung" in text


def test_the_real_gateway_answers_its_probes_while_a_slow_node_works(
    inprocess_mesh: InProcessMesh,
) -> None:
    """The registry app's own ``GET /healthz`` is answered while a completion waits on a
    slow node (1.2 s to its first token): the gateway is not left, no other URL is asked."""
    mesh = inprocess_mesh
    mesh.add_node("m", ttft_s=1.2, sleep=asyncio.sleep)
    other = "http://other.mesh.test"

    async def ask() -> dict[str, Any]:
        urls = [REGISTRY_URL, other]
        async with MeshClient(urls, http_client=mesh.client(), hang_policy=QUICK) as c:
            answer = await asyncio.wait_for(c.chat(CHAT, request_id="slow-2"), BOUND_S)
            assert c.failovers == 0
            return answer

    answer = mesh.call(ask())
    assert answer["object"] == "chat.completion" and answer["choices"]
    probes = [r for r in mesh.requests if r.path == "/healthz"]
    assert len(probes) >= 3 and all(r.host == "registry.mesh.test" for r in probes)
    assert not [r for r in mesh.requests if "other" in r.host]


def _request_at(raw: bytes) -> tuple[dict[str, str], bytes]:
    """A request's headers and body, as the stopped gateway's socket holds them."""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")[1:]
    skip = {"host", "content-length", "connection"}
    headers = dict(line.split(": ", 1) for line in lines)
    return {k: v for k, v in headers.items() if k.lower() not in skip}, body


@pytest.mark.parametrize("stream", [False, True])
async def test_the_request_the_stopped_replica_reads_when_it_resumes_does_not_run_again(
    tmp_path: Path, stream: bool
) -> None:
    """Two replicas on one store; the client's first URL is a stopped one, its second
    replica B. B runs the request. Replica A then gets the very bytes the stopped one holds
    on its socket (what it reads when it resumes): the id is taken in the store, so A
    replays B's answer (a stream: 409 ``duplicate_request``), and the node ran it once."""
    body = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}
    hung = Hung("silent")
    async with two_replicas(tmp_path) as (a, b), stopped_at_end(hung):
        await register_everywhere(a, b)
        stopped = await hung.start()
        mounts = {
            stopped: httpx.AsyncHTTPTransport(),
            "http://b.replica": httpx.ASGITransport(app=b.app),
        }
        http = httpx.AsyncClient(mounts=mounts)
        urls = [stopped, "http://b.replica"]
        async with http, MeshClient(urls, http_client=http, hang_policy=QUICK) as c:
            async with asyncio.timeout(BOUND_S):
                if stream:
                    items = [x async for x in c.stream(CHAT_PATH, body, request_id="job-h")]
                    assert any(x.get("choices") for x in items[1:])
                else:
                    answer = await c.chat(body, request_id="job-h")
        assert c.failovers == 1 and a.nodes.calls() == 1
        await b.runtime.idempotency.flush()  # type: ignore[attr-defined]
        sent = [r for r in hung.received if r.startswith(b"POST " + CHAT_PATH.encode())]
        headers, content = _request_at(sent[0])
        assert httpx.Headers(headers)["x-request-id"] == "job-h"
        again = await a.client.post(CHAT_PATH, content=content, headers=headers)
        if stream:
            assert again.status_code == 409, again.text
            assert again.json()["error"]["code"] == "duplicate_request"
        else:
            assert again.status_code == 200, again.text
            assert again.headers["x-mesh-replayed"] == "true"
            assert again.json() == answer
        assert a.nodes.calls() == 1  # run once, by B
