"""The bytes kept by keyed SDK attempts' streams are bounded all together, not per stream.

Found 2026-12-05 (review32, docs/security.md "Clients"): each kept stream
(``relay.SseRelay.keep``) held up to the cache's ``max_bytes`` of its own, so N concurrent
keyed SDK streams (any client can send the SDK's headers) held N × 64 MiB. Now they share
the cache's :class:`~LLM_Mesh.registry.idempotency.StreamBudget`: past it a stream keeps
none (its retry refused as before), and a stream's bytes go back once it is cut off,
failed, or its answer was taken for the cache.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

from LLM_Mesh.registry.idempotency import IdempotencyCache
from LLM_Mesh.registry.relay import SseRelay
from LLM_Mesh.registry.stream_part import DATA, DONE, Event


def _chunk(i: int) -> Event:
    obj = {"id": "c", "choices": [{"index": 0, "delta": {"content": "x" * 40}}], "n": i}
    return Event(DATA, b"data: " + json.dumps(obj).encode(), obj)


def _final() -> Event:
    obj = {"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    return Event(DATA, b"data: " + json.dumps(obj).encode(), obj)


async def _source(n: int, done: bool = True) -> AsyncGenerator[list[Event], None]:
    for i in range(n):
        yield [_chunk(i)]
    if done:
        yield [_final(), Event(DONE)]


def _relay(n: int, done: bool = True) -> SseRelay:
    return SseRelay(_source(n, done), lambda _o, _c: None)


async def test_concurrent_kept_streams_share_one_budget() -> None:
    cache = IdempotencyCache(max_bytes=1500)
    a, b = _relay(10), _relay(10)  # each about 1 KiB: one fits the budget, two do not
    a.keep(cache.streams)
    b.keep(cache.streams)
    body_a = b"".join([d async for d in a.events()])  # completed, its answer not yet taken
    body_b = b"".join([d async for d in b.events()])  # meanwhile: over the shared budget
    assert len(body_a) + len(body_b) > cache.max_bytes >= len(body_a)
    assert cache.streams.used <= cache.max_bytes
    assert b.answer() is None  # none kept: its retry is refused as before
    assert a.answer() == body_a  # the first kept whole
    assert cache.streams.used == 0  # the answer taken: its bytes went back


async def test_interleaved_kept_streams_never_hold_more_than_the_budget() -> None:
    cache = IdempotencyCache(max_bytes=1500)
    relays = [_relay(10) for _ in range(4)]
    gens = [r.events() for r in relays]
    for r in relays:
        r.keep(cache.streams)
    for _ in range(12):  # all four running at once
        for g in gens:
            await anext(g, None)
            assert cache.streams.used <= cache.max_bytes
    kept = [r.answer() for r in relays]
    assert sum(len(k) for k in kept if k is not None) <= cache.max_bytes
    assert cache.streams.used == 0


async def test_a_cut_off_kept_stream_gives_its_bytes_back() -> None:
    cache = IdempotencyCache(max_bytes=1500)
    r = _relay(3, done=False)  # ends without [DONE]: nothing to replay
    r.keep(cache.streams)
    assert [d async for d in r.events()]
    assert r.answer() is None
    assert cache.streams.used == 0
    again = _relay(10)  # the whole budget free for the next one
    again.keep(cache.streams)
    body = b"".join([d async for d in again.events()])
    assert again.answer() == body
