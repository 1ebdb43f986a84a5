"""A stream's request id is held until the stream ends, however long it runs, and a release
names its claim (``idempotency.py``, ``shared_idempotency.py``, found 2026-12-03).

A stream's id used to be written ``done`` when the stream *opened*, so it expired the
replay window (10 min) after its start while the stream still ran: a retry with the same
id after that ran the stream, and paid for it, a second time, on a lone registry as on
replicas. And a replica's release of an id deleted that replica's running row of the id,
whichever claim it was: a try of the release that reached the store late deleted the
replica's own later claim. The clocks here are the tests' own: nothing waits 10 minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.requests import Request
from starlette.responses import Response

from LLM_Mesh.core.pricing import request_cost
from LLM_Mesh.registry import relay
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.shared_idempotency import SharedIdempotency
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import (
    FakeNodes,
    Harness,
    ManualClock,
    anonymous_key,
    running,
    sse_chunks,
)
from tests.registry.test_charge import MODEL, PRICE, bearer, new_user, register, settlement
from tests.registry.test_shared_idempotency import _register_everywhere, store_url

__all__ = ["store_url"]  # the fixture

CHAT = "/v1/chat/completions"
STREAM: dict[str, Any] = {
    "model": "gemma-3-270m",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}


class LongStream:
    """Fake nodes whose first stream sends its first events, then waits for :attr:`go`
    (it runs on: longer than the replay window, by the tests' clocks); later streams
    run through at once."""

    def __init__(self) -> None:
        self.nodes = FakeNodes()
        self.go = asyncio.Event()
        self.blocked = asyncio.Event()
        self.first = True
        self.nodes.stream_factory = self._factory

    def _factory(self, node: Any, model: str) -> httpx.Response:
        chunks = sse_chunks(model, node.node_id, node.words)
        if not self.first:
            return _sse(b"".join(chunks))
        self.first = False

        async def body() -> AsyncIterator[bytes]:
            for c in chunks[:3]:
                yield c
            self.blocked.set()
            await self.go.wait()
            for c in chunks[3:]:
                yield c

        return _sse(body())

    async def opened(self) -> None:
        """Until the first stream runs (its answer is out, its events going to the client)."""
        await asyncio.wait_for(self.blocked.wait(), 10)
        for _ in range(10):  # let the relay pass on what it has
            await asyncio.sleep(0.02)


def _sse(content: Any) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)


class WallClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def lone_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A lone registry's store: memory, or SQLite (both: the process's own cache)."""
    if request.param == "memory":
        yield MemoryStore()
    else:
        yield SqlStore(f"sqlite:///{tmp_path / 'lone.db'}")


async def test_a_lone_registrys_long_stream_is_never_run_twice_under_its_id(
    tmp_path: Path, lone_store: Any
) -> None:
    """A lone registry: on SQLite its process's cache (``IdempotencyCache``), on the memory
    store the store-backed one (``SharedIdempotency``); both clocks the test's."""
    long = LongStream()
    clock, wall = ManualClock(), WallClock()

    def advance(s: float) -> None:
        clock.advance(s)
        wall.now += s

    async with running(
        tmp_path, store=lone_store, clock=clock, nodes=long.nodes, wall_clock=wall
    ) as h:
        await h.register("n1")
        hdr = {"X-Request-Id": "long-1"}
        first = asyncio.create_task(h.client.post(CHAT, json=STREAM, headers=hdr))
        await long.opened()
        advance(700.0)  # past the replay window (600 s), the stream still running
        node = await h.register("n1")  # (the node heard from again: it is up)
        for body in (STREAM, {**STREAM, "stream": False}):
            again = await h.client.post(CHAT, json=body, headers=hdr)
            assert again.status_code == 409, again.text  # before: ran (and paid) again
            assert again.json()["error"]["code"] == "duplicate_request"
        assert not node.calls
        long.go.set()
        r1 = await asyncio.wait_for(first, 10)
        assert r1.status_code == 200 and "[DONE]" in r1.text
        advance(599.0)  # inside the window after its end
        assert (await h.client.post(CHAT, json=STREAM, headers=hdr)).status_code == 409
        advance(2.0)  # its end + the window: the id is free
        node = await h.register("n1")
        r3 = await h.client.post(CHAT, json=STREAM, headers=hdr)
        assert r3.status_code == 200 and len(node.calls) == 1, r3.text


@asynccontextmanager
async def _replicas(
    tmp_path: Path, url: str | None, nodes: FakeNodes, wall: WallClock
) -> AsyncIterator[tuple[Harness, Harness]]:
    shared = MemoryStore()
    key = Ed25519PrivateKey.generate()
    async with AsyncExitStack() as stack:
        hs = []
        for name in ("a", "b"):
            store: Any = SqlStore(url) if url else shared
            h = await stack.enter_async_context(
                running(tmp_path / name, store=store, nodes=nodes, gateway_key=key, wall_clock=wall)
            )
            hs.append(h)
        yield hs[0], hs[1]


async def test_a_long_stream_holds_its_id_on_every_replica_until_it_ends(
    tmp_path: Path, store_url: str | None
) -> None:
    long = LongStream()
    wall = WallClock()
    async with _replicas(tmp_path, store_url, long.nodes, wall) as (a, b):
        await _register_everywhere(a, b)
        ia, ib = a.runtime.idempotency, b.runtime.idempotency
        assert isinstance(ia, SharedIdempotency) and isinstance(ib, SharedIdempotency)
        ib.stream_wait_s = 0.1
        ia.refresh_s = 0.02  # (every minute in production)
        hdr = {"X-Request-Id": "long-2"}
        first = asyncio.create_task(a.client.post(CHAT, json=STREAM, headers=hdr))
        await long.opened()
        await ia.flush()
        wall.now += 700.0  # past the replay window (600 s) after it opened, still running
        again = await b.client.post(CHAT, json=STREAM, headers=hdr)
        assert again.status_code == 409, again.text  # before: ran (and paid) again at b
        assert long.nodes.calls() == 1
        h = ia.key_hash(anonymous_key(CHAT, "long-2", STREAM))
        # a pushes its open stream's row back while it runs (every minute; here at once)
        for _ in range(100):
            await asyncio.sleep(0.02)
            row = await ia.store.get_request_key(h)
            if row is not None and row.expires_at.timestamp() >= wall.now + ia.running_s - 1:
                break
        assert row is not None and row.state == "running", row
        wall.now += 700.0  # past the claim's own deadline (running_s, 720 s)
        for body in (STREAM, {**STREAM, "stream": False}):
            again = await b.client.post(CHAT, json=body, headers=hdr)
            assert again.status_code == 409, again.text
            assert (await a.client.post(CHAT, json=body, headers=hdr)).status_code == 409
        assert long.nodes.calls() == 1
        long.go.set()
        r1 = await asyncio.wait_for(first, 10)
        assert r1.status_code == 200 and "[DONE]" in r1.text
        await ia.flush()
        row = await ia.store.get_request_key(h)
        assert row is not None and row.state == "done" and row.stream
        wall.now += 599.0  # inside the window after its end
        assert (await b.client.post(CHAT, json=STREAM, headers=hdr)).status_code == 409
        wall.now += 2.0  # its end + the window: free everywhere
        r3 = await b.client.post(CHAT, json=STREAM, headers=hdr)
        assert r3.status_code == 200, r3.text
        assert long.nodes.calls() == 2


async def test_a_stopped_replicas_open_stream_frees_its_id_once_no_longer_pushed(
    tmp_path: Path, store_url: str | None
) -> None:
    """The hold of an open stream is a lease, pushed back while it runs: a replica that
    stopped (crashed) mid-stream stops pushing, and its id is free ``running_s`` after the
    last push, never held for ever."""
    long = LongStream()
    wall = WallClock()
    async with _replicas(tmp_path, store_url, long.nodes, wall) as (a, b):
        await _register_everywhere(a, b)
        ia, ib = a.runtime.idempotency, b.runtime.idempotency
        assert isinstance(ia, SharedIdempotency) and isinstance(ib, SharedIdempotency)
        ib.stream_wait_s = 0.1
        hdr = {"X-Request-Id": "long-3"}
        first = asyncio.create_task(a.client.post(CHAT, json=STREAM, headers=hdr))
        await long.opened()
        await ia.refresh_open()
        ia._open.clear()  # a stops pushing (as a crashed replica would)
        wall.now += ia.running_s - 1.0
        assert (await b.client.post(CHAT, json=STREAM, headers=hdr)).status_code == 409
        wall.now += 2.0
        r2 = await b.client.post(CHAT, json=STREAM, headers=hdr)
        assert r2.status_code == 200, r2.text
        long.go.set()
        await asyncio.wait_for(first, 10)


async def test_a_late_release_never_deletes_a_later_claim_of_the_same_id(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _replicas(tmp_path, store_url, FakeNodes(), WallClock()) as (a, b):
        ia, ib = a.runtime.idempotency, b.runtime.idempotency
        assert isinstance(ia, SharedIdempotency) and isinstance(ib, SharedIdempotency)
        ib.stream_wait_s = 0.1
        key = anonymous_key(CHAT, "stale-1", STREAM)
        h = ia.key_hash(key)
        release = ia.store.release_request_key
        first_done = asyncio.Event()

        async def lost_answer(*args: Any) -> None:
            await release(*args)
            if not first_done.is_set():  # it committed; its answer is lost: tried again
                first_done.set()
                raise OSError("connection lost after the commit")

        monkeypatch.setattr(ia.store, "release_request_key", lost_answer)
        assert await ia.begin(key, False) is None
        ia.finish(key, Response(b"{}", 502))  # a 502: the id is freed (in the background)
        await asyncio.wait_for(first_done.wait(), 5)
        assert await ia.begin(key, False) is None  # the client's retry, here: a new claim
        await ia.flush()  # the release's retry reaches the store now
        row = await ia.store.get_request_key(h)
        assert row is not None and row.state == "running", row  # before: deleted
        with pytest.raises(Exception, match="running on another replica"):
            await ib.begin(key, True)  # held by a's second run: not run a third time
        ia.finish(key, Response(b"{}", 200))
        await ia.flush()


async def test_a_long_streams_retry_after_the_window_is_not_paid_again(tmp_path: Path) -> None:
    """docs/security.md, "Settlement (money)": one request id, one payment. Before, the
    retry after the window ran the stream again and its payer paid twice. (The lone
    registry on the memory store: its ids' rows live by the wall clock, moved here alone,
    so the running stream is not cut off by the gateway's own clock.)"""
    long = LongStream()
    wall = WallClock()
    async with running(tmp_path, nodes=long.nodes, wall_clock=wall) as h:
        node = await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        s = settlement(h)
        hdr = {**bearer(key), "X-Request-Id": "long-paid"}
        body = {**STREAM, "model": MODEL, "max_tokens": 5}
        first = asyncio.create_task(h.client.post(CHAT, json=body, headers=hdr))
        await long.opened()
        await h.runtime.idempotency.flush()  # type: ignore[attr-defined]
        wall.now += 700.0  # past the replay window, still running
        again = await h.client.post(CHAT, json=body, headers=hdr)
        assert again.status_code == 409, again.text  # before: run, and paid, again
        long.go.set()
        r1 = await asyncio.wait_for(first, 10)
        assert r1.status_code == 200 and "[DONE]" in r1.text
        await s.flush()
        cost = request_cost(PRICE, 4, 3)  # sse_chunks' usage: 4 prompt, 3 completion
        assert len(node.calls) == 1
        assert (await s.balance(account))[0] == 1000 - cost  # paid once


async def _serve_unrun(h: Harness, body: dict[str, Any], hdr: dict[str, str]) -> Response:
    """The gateway's handler for ``body``, whose response the server never runs (the
    connection dropped between the handler returning and the response starting)."""
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in hdr.items()]
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": CHAT, "headers": headers,
             "client": ("127.0.0.1", 5000), "app": h.app, "query_string": b""}  # fmt: skip
    return await h.app.state.pipeline.serve(Request(scope, receive), CHAT)


async def test_a_stream_whose_response_is_never_run_ends_its_hold_after_the_bound(
    tmp_path: Path, lone_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-03: the stream's end (``ProxyStream.when_ended``) never fired, so its id
    was held ``stream_hold_s``, 24 h. Now it is ended ``relay.START_S`` after it was made:
    the node closed, the normal window after a stream's end (the node was called)."""
    monkeypatch.setattr(relay, "START_S", 0.2)
    clock, wall = ManualClock(), WallClock()
    async with running(tmp_path, store=lone_store, clock=clock, wall_clock=wall) as h:
        await h.register("n1")
        hdr = {"X-Request-Id": "unrun-1"}
        resp = await _serve_unrun(h, STREAM, hdr)
        assert isinstance(resp, relay.ProxyStream)
        assert h.in_flight("n1") == 1
        for _ in range(50):
            await asyncio.sleep(0.02)
            if h.in_flight("n1") == 0:
                break
        assert h.in_flight("n1") == 0  # ended: the node's stream closed
        assert (await h.client.post(CHAT, json=STREAM, headers=hdr)).status_code == 409
        clock.advance(601.0)  # the window after its end: the id is free (before: 24 h)
        wall.now += 601.0
        node = await h.register("n1")
        again = await h.client.post(CHAT, json=STREAM, headers=hdr)
        assert again.status_code == 200 and len(node.calls) == 1, again.text
        # a server that runs it after all gets a 502, nothing of the node's
        sent: list[dict[str, Any]] = []

        async def send(msg: Any) -> None:
            sent.append(msg)

        async def never() -> Any:
            await asyncio.Event().wait()

        await resp({"type": "http"}, never, send)
        assert sent[0]["status"] == 502


async def test_a_stream_slow_to_its_first_byte_keeps_its_hold(
    tmp_path: Path, lone_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node slow to its first byte is no stream never started: the response started at
    once and waits for the node; its id stays held past the bound and the window."""
    monkeypatch.setattr(relay, "START_S", 0.1)
    nodes = FakeNodes()
    go, waiting = asyncio.Event(), asyncio.Event()

    def factory(node: Any, model: str) -> httpx.Response:
        chunks = sse_chunks(model, node.node_id, node.words)

        async def body() -> AsyncIterator[bytes]:
            waiting.set()
            await go.wait()
            for c in chunks:
                yield c

        return _sse(body())

    nodes.stream_factory = factory
    clock, wall = ManualClock(), WallClock()
    async with running(tmp_path, store=lone_store, clock=clock, nodes=nodes, wall_clock=wall) as h:
        await h.register("n1")
        hdr = {"X-Request-Id": "slow-1"}
        first = asyncio.create_task(h.client.post(CHAT, json=STREAM, headers=hdr))
        await asyncio.wait_for(waiting.wait(), 10)
        await asyncio.sleep(0.5)  # past the bound, no byte yet
        clock.advance(700.0)
        wall.now += 700.0
        await h.register("n1")
        again = await h.client.post(CHAT, json=STREAM, headers=hdr)
        assert again.status_code == 409, again.text
        go.set()
        r1 = await asyncio.wait_for(first, 10)
        assert r1.status_code == 200 and "[DONE]" in r1.text


async def test_a_stream_never_run_on_one_replica_frees_its_id_everywhere_after_the_window(
    tmp_path: Path, store_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replicas' store: the unrun stream's row is written ``done`` when it is ended
    (``relay.START_S`` after it was made), so another replica refuses it for the window
    after that end, then runs it (before: ``running``, pushed every minute for 24 h)."""
    monkeypatch.setattr(relay, "START_S", 0.2)
    nodes, wall = FakeNodes(), WallClock()
    async with _replicas(tmp_path, store_url, nodes, wall) as (a, b):
        await _register_everywhere(a, b)
        ia, ib = a.runtime.idempotency, b.runtime.idempotency
        assert isinstance(ia, SharedIdempotency) and isinstance(ib, SharedIdempotency)
        ib.stream_wait_s = 0.1
        hdr = {"X-Request-Id": "unrun-2"}
        assert isinstance(await _serve_unrun(a, STREAM, hdr), relay.ProxyStream)
        await asyncio.sleep(0.5)  # past the bound
        await ia.flush()
        row = await ia.store.get_request_key(ia.key_hash(anonymous_key(CHAT, "unrun-2", STREAM)))
        assert row is not None and row.state == "done" and row.stream, row
        assert (await b.client.post(CHAT, json=STREAM, headers=hdr)).status_code == 409
        wall.now += 601.0  # the window after its end
        r2 = await b.client.post(CHAT, json=STREAM, headers=hdr)
        assert r2.status_code == 200, r2.text
        assert nodes.calls() == 2
