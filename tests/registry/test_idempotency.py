"""A client request id runs once: concurrent duplicates share the answer, later ones replay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import Response

from LLM_Mesh.registry.idempotency import DuplicateRequest, IdempotencyCache
from tests.registry.helpers import ManualClock, running, streams_after_one
from tests.waiting import SOON_S, scaled

CHAT = "/v1/chat/completions"
BODY: dict[str, Any] = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("header", ["X-Request-Id", "Idempotency-Key"])
async def test_same_id_twice_is_executed_once(tmp_path: Path, header: str) -> None:
    async with running(tmp_path) as h:
        await h.register("a")
        h1 = {header: "job-1"}
        r1, r2 = await asyncio.gather(
            h.client.post(CHAT, json=BODY, headers=h1), h.client.post(CHAT, json=BODY, headers=h1)
        )
        r3 = await h.client.post(CHAT, json=BODY, headers=h1)
        assert r1.status_code == r2.status_code == r3.status_code == 200
        assert r1.json() == r2.json() == r3.json()
        assert h.nodes.calls() == 1
        assert r3.headers["x-mesh-replayed"] == "true"
        r4 = await h.client.post(CHAT, json=BODY, headers={header: "job-2"})
        assert r4.status_code == 200 and h.nodes.calls() == 2


async def test_stream_duplicate_is_409_and_failures_are_not_kept(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        node = await h.register("a", behavior="500")
        hdr = {"X-Request-Id": "s-1"}
        assert (await h.client.post(CHAT, json=BODY, headers=hdr)).status_code == 502
        node.behavior = "ok"
        assert (await h.client.post(CHAT, json=BODY, headers=hdr)).status_code == 200  # ran again
        stream = {**BODY, "stream": True}
        assert (await h.client.post(CHAT, json=stream, headers={"X-Request-Id": "s-2"})).is_success
        r = await h.client.post(CHAT, json=stream, headers={"X-Request-Id": "s-2"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_request"


@pytest.mark.parametrize("status", [204, 302])
async def test_a_stream_whose_node_answers_a_non_200_2xx_or_3xx_frees_its_id(
    tmp_path: Path, status: int
) -> None:
    """A stream whose node answers 204 or 302 instead of opening its stream is passed on as
    a 502, like any 5xx: its id is freed, so the client's retry runs (found 2026-12-03:
    the id stayed held as if the stream had run, and the retry got 409 for ten minutes)."""
    nodes = streams_after_one(status)
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("a")
        stream = {**BODY, "stream": True}
        hdr = {"X-Request-Id": f"s-{status}"}
        r1 = await h.client.post(CHAT, json=stream, headers=hdr)
        assert r1.status_code == 502, r1.text
        r2 = await h.client.post(CHAT, json=stream, headers=hdr)
        assert r2.status_code == 200, r2.text  # ran again, not 409 duplicate_request
        assert "data: [DONE]" in r2.text and h.nodes.calls() == 2


def answer(size: int, status: int = 200) -> Response:
    return Response(b"x" * size, status, media_type="application/json")


async def test_cache_is_bounded_in_entries_and_expires() -> None:
    clock = ManualClock()
    cache = IdempotencyCache(clock, ttl_s=10.0, max_entries=2)
    for key in ("a", "b", "c"):
        assert await cache.begin(key, False) is None
        cache.finish(key, answer(10))
    assert len(cache) == 2  # the bound was reached: "a", the oldest, went
    assert await cache.begin("a", False) is None  # forgotten: runs again
    cache.finish("a", answer(10))
    replay = await cache.begin("c", False)
    assert replay is not None and replay.headers["x-mesh-replayed"] == "true"
    assert await cache.begin("x", True) is None
    cache.finish("x", None)  # the stream opened
    cache.stream_ended("x")
    clock.advance(11.0)
    assert await cache.begin("x", True) is None  # expired: may run again
    with pytest.raises(ValueError):
        IdempotencyCache(clock, ttl_s=0)
    with pytest.raises(ValueError):
        IdempotencyCache(clock, max_bytes=0)


async def test_cache_is_bounded_in_bytes() -> None:
    cache = IdempotencyCache(ManualClock(), max_entries=1000, max_bytes=1000)
    for i in range(5):
        assert await cache.begin(f"k{i}", False) is None
        cache.finish(f"k{i}", answer(300))
        assert cache.bytes <= 1000
    size = cache.bytes // len(cache)
    assert size >= 300 and len(cache) == 1000 // size  # the oldest went, the newest stay
    assert await cache.begin("k0", False) is None  # evicted: runs again
    cache.finish("k0", answer(300))
    assert await cache.begin("k4", False) is not None  # kept: replayed
    assert cache.bytes <= 1000


async def test_answer_over_the_byte_bound_is_not_kept_but_never_runs_twice() -> None:
    cache = IdempotencyCache(ManualClock(), max_bytes=1000)
    assert await cache.begin("small", False) is None
    cache.finish("small", answer(100))
    assert await cache.begin("big", False) is None
    cache.finish("big", answer(5000))
    assert cache.bytes < 1000 and await cache.begin("small", False) is not None
    with pytest.raises(DuplicateRequest):
        await cache.begin("big", False)


async def test_running_entries_are_never_evicted() -> None:
    cache = IdempotencyCache(ManualClock(), max_entries=1, max_bytes=1000)
    assert await cache.begin("running", False) is None
    assert await cache.begin("done", False) is None
    cache.finish("done", answer(900))
    assert await cache.begin("other", False) is None
    cache.finish("other", answer(900))
    cache.finish("running", answer(10))  # still found by key, and kept
    assert await cache.begin("running", False) is not None


async def test_duplicates_waiting_on_a_running_key_all_get_its_answer() -> None:
    cache = IdempotencyCache(ManualClock())
    assert await cache.begin("k", False) is None
    waiters = [asyncio.create_task(cache.begin("k", False)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)  # they wait on the running request
    cache.finish("k", Response(b'{"a":1}', 200, headers={"X-Mesh-Node": "n1"}))
    replays = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    for r in replays:
        assert r is not None and r.body == b'{"a":1}' and r.headers["x-mesh-node"] == "n1"
    late = await cache.begin("k", False)  # after the end: replayed at once
    assert late is not None and late.body == b'{"a":1}'


async def test_a_refused_or_abandoned_key_wakes_its_waiters() -> None:
    cache = IdempotencyCache(ManualClock())
    assert await cache.begin("r", False) is None
    waiter = asyncio.create_task(cache.begin("r", False))
    await asyncio.sleep(0)
    cache.refuse("r", DuplicateRequest("held by another replica", param="X-Request-Id"))
    with pytest.raises(DuplicateRequest, match="another replica"):
        await asyncio.wait_for(waiter, scaled(SOON_S))
    assert await cache.begin("a", False) is None
    waiter = asyncio.create_task(cache.begin("a", False))
    await asyncio.sleep(0)
    cache.abandon("a")  # failed before it ran: the waiter runs it itself
    assert await asyncio.wait_for(waiter, scaled(SOON_S)) is None


async def test_a_replay_keeps_the_headers_and_sets_its_own_length() -> None:
    cache = IdempotencyCache(ManualClock())
    assert await cache.begin("h", False) is None
    first = Response(
        b'{"x":2}', 200, headers={"X-Mesh-Receipt": "abc"}, media_type="application/json"
    )
    cache.finish("h", first)
    kept = cache.kept("h")
    assert kept is not None and kept[0] is not None
    names = {k.lower() for k, _ in kept[0].headers}
    assert "x-mesh-receipt" in names and not names & {"content-length", "content-type"}
    replay = await cache.begin("h", False)
    assert replay is not None
    assert replay.headers["content-length"] == "7"
    assert replay.headers["content-type"] == "application/json"
    assert replay.headers["x-mesh-receipt"] == "abc"


async def test_a_stream_running_past_the_window_is_held_until_it_ends() -> None:
    """Found 2026-12-03: a stream's id expired ``ttl_s`` after it *opened*, while it still
    ran: a retry with its id after the window (10 min) ran it, and paid for it, again. Now
    it is held (409) while it runs, however long, and ``ttl_s`` after its end; nor is an
    open stream dropped to keep the cache in bounds."""
    clock = ManualClock()
    cache = IdempotencyCache(clock, ttl_s=10.0, max_entries=1)
    assert await cache.begin("long", True) is None
    cache.finish("long", None)  # the stream opened, and runs on
    clock.advance(11.0)  # past the window, still running
    for stream in (True, False):
        with pytest.raises(DuplicateRequest, match="is running"):
            await cache.begin("long", stream)
    assert await cache.begin("other", False) is None  # over max_entries: not evicted
    cache.finish("other", answer(10))
    with pytest.raises(DuplicateRequest):
        await cache.begin("long", True)
    cache.stream_ended("long")
    clock.advance(9.0)  # inside the window after its end
    with pytest.raises(DuplicateRequest, match="finished"):
        await cache.begin("long", True)
    clock.advance(2.0)
    assert await cache.begin("long", True) is None  # end + window: the id is free


def test_a_refusal_names_the_clients_id_not_its_prompts_digest() -> None:
    """Found 2026-12-07 (replica41): a 409 named a key's last word as the request's id, so an
    anonymous client was told its prompt's digest (the same at every run of ``llm-mesh ask``
    with that prompt: as if the CLI sent one id again), and an id with a space only its end."""
    from LLM_Mesh.core.sdk_retry import implicit_key
    from LLM_Mesh.registry.idempotency import paid_refusal, said_id

    digest = "ab" * 32
    assert said_id(f"/v1/completions ip:10.0.0.1 req-7 {digest}") == "req-7"
    assert said_id(f"/v1/completions ip:::1 my id 7 {digest}") == "my id 7"
    assert said_id("/v1/completions key:k1 my id 7") == "my id 7"
    assert said_id("k1") == "k1"
    assert said_id(implicit_key("/v1/completions", "key:k1", digest)) == digest
    said = paid_refusal(f"/v1/completions ip:10.0.0.1 req-7 {digest}").message
    assert "with id 'req-7' was paid" in said and digest not in said
