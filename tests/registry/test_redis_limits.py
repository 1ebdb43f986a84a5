"""Rate-limit buckets shared by replicas in Redis (``redis_limits.py``).

Needs Redis at ``LLM_MESH_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``); skipped
when it does not answer, unless ``LLM_MESH_REQUIRE_REDIS=1``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.ratelimit import Limits, RateLimiter
from LLM_Mesh.core.scope_names import ScopeNames
from LLM_Mesh.registry.access import RateLimit
from LLM_Mesh.registry.job import Client
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import ApiKeyRecord
from LLM_Mesh.registry.redis_limits import PREFIX, RedisLimiter
from tests.registry.helpers import FakeNodes, running, served_at_once
from tests.registry.redis_replicas import replicas_sharing_redis

redis_asyncio = pytest.importorskip("redis.asyncio")

REDIS_URL = os.environ.get("LLM_MESH_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
CHAT = "/v1/chat/completions"
BODY: dict[str, Any] = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    client = redis_asyncio.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as exc:
        if os.environ.get("LLM_MESH_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc!r}", pytrace=False)
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc!r}")
    finally:
        await client.aclose()
    yield REDIS_URL


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def scope() -> str:
    return "test:" + uuid.uuid4().hex


async def test_same_verdicts_as_the_pure_buckets(redis_url: str) -> None:
    """One sequence of checks and settlements through core's RateLimiter and through the
    Lua script, on one clock: every verdict, wait and header agrees."""
    clock = Clock()
    shared = RedisLimiter.from_url(redis_url, RateLimiter(), redis_clock=clock, clock=clock)
    pure = RateLimiter()
    limits = Limits(rpm=5, tpm=100)
    s = scope()
    steps = [(0, 10, 4), (0, 30, 50), (1, 30, 0), (0, 40, 40), (2, 50, 10), (0, 200, 0),
             (0, 5, 5), (0, 5, 5), (30, 60, 60), (0, 1, 1), (61, 99, 200), (5, 10, 10)]  # fmt: skip
    try:
        for dt, tokens, used in steps:
            clock.now += dt
            want = pure.check(s, limits, clock.now, tokens)
            got = await shared.check(s, limits, clock.now, tokens)
            assert (got.allowed, got.exceeded, got.charged) == (
                want.allowed, want.exceeded, want.charged,
            ), (dt, tokens)  # fmt: skip
            assert got.retry_after_s == pytest.approx(want.retry_after_s)
            assert got.headers == want.headers
            if want.allowed and want.charged:
                pure.settle(s, limits, clock.now, want.charged, used)
                out = await shared._run(s, limits, "settle", used - want.charged)
                assert out is not None
    finally:
        await shared.aclose()


async def test_two_replicas_share_one_limit(redis_url: str) -> None:
    names = ScopeNames.of_registry_key(Ed25519PrivateKey.generate())  # one registry.key
    a = RedisLimiter.from_url(redis_url, RateLimiter(), names=names)
    b = RedisLimiter.from_url(redis_url, RateLimiter(), names=names)
    s, limits = scope(), Limits(rpm=3)
    try:
        verdicts = [(await r.check(s, limits, 0.0)).allowed for r in (a, b, a, b, a)]
        assert verdicts == [True, True, True, False, False]
        refused = await b.check(s, limits, 0.0)
        assert refused.exceeded == "requests" and 0 < refused.retry_after_s <= 20
        assert ("x-ratelimit-remaining-requests", "0") in refused.headers
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_down_limits_per_process_and_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limiter = RedisLimiter.from_url("redis://127.0.0.1:1/0", RateLimiter(), clock=clock)
    limits = Limits(rpm=2)
    try:
        got = [(await limiter.check("x", limits, clock.now)).allowed for _ in range(3)]
        assert got == [True, True, False]  # the local buckets decided
        assert "Redis rate limits unavailable" in caplog.text
        assert clock.now < limiter._down_until  # not asked again for a while
        clock.now = limiter._down_until + 1
        assert await limiter._run("x", limits, "check", 0) is None  # tried again, still down
    finally:
        await limiter.aclose()


async def test_gateway_replicas_with_a_redis_url_give_a_client_one_limit(
    tmp_path: Path, redis_url: str
) -> None:
    nodes = FakeNodes()
    key = Ed25519PrivateKey.generate()  # replicas share registry.key (and so Redis' names)
    client = redis_asyncio.from_url(redis_url)
    names = ScopeNames.of_registry_key(key)
    await client.delete(PREFIX + names.name("ip:127.0.0.1"))  # the test clients' scope
    await client.aclose()
    async with AsyncExitStack() as stack:
        a, b = await replicas_sharing_redis(
            stack, tmp_path, redis_url, nodes, gateway_key=key, anonymous_rpm=3
        )
        # slots enough that the anonymous share (one slot of a one-slot node, its end's
        # removal in the background) cannot refuse one: this is the rate limit's test
        await a.register("n1", max_concurrency=4)
        await b.app.state.node_sync.poll()
        for h in (a, b):  # it has served its 4 at once through each (share35: counted so)
            served_at_once(h.runtime.routing.router, "n1", BODY["model"], 4, h.clock())
        codes = [(await h.client.post(CHAT, json=BODY)).status_code for h in (a, b, a, b, a)]
        assert codes == [200, 200, 200, 429, 429]  # one limit of 3, not 3 per replica


async def test_a_charge_is_settled_where_it_was_made_across_a_redis_outage(
    redis_url: str,
) -> None:
    """Found 2026-12-03: a check the local buckets made while Redis was out, settled once
    Redis answered again, gave Redis back tokens it never charged; and every settle also
    adjusted the local buckets, charged there or not. Now a decision remembers where it was
    charged (``Decision.shared``) and its settle goes there only."""
    clock = Clock()
    local = RateLimiter()
    shared = RedisLimiter.from_url(redis_url, local, redis_clock=clock, clock=clock)
    stage = RateLimit(local, None, clock, shared=shared)
    key = ApiKeyRecord(
        "k" + uuid.uuid4().hex, "hash", datetime.now(timezone.utc), rpm=None, tpm=1000
    )
    job: Any = SimpleNamespace(choices=1, prompt_text="hi", max_tokens=100, messages=1, context=0)
    redis = redis_asyncio.from_url(redis_url)
    hash_key = shared.key("key:" + key.key_id)

    async def request() -> Client:
        client = Client("127.0.0.1")
        client.key = key
        await stage(job, client)
        return client

    async def settled() -> None:
        await asyncio.gather(*list(shared._tasks))

    async def redis_tokens() -> float:
        return float(await redis.hget(hash_key, "tl"))

    def local_tokens() -> str:
        return dict(local.headers("key:" + key.key_id, Limits(tpm=1000), clock.now))[
            "x-ratelimit-remaining-tokens"
        ]

    try:
        await request()  # charged in Redis, not settled yet
        in_redis = await redis_tokens()
        assert in_redis < 1000
        shared._down_until = clock.now + 60  # Redis out: the local buckets decide
        during = await request()
        assert local_tokens() == str(round(in_redis))  # the same charge, taken locally
        shared._down_until = 0.0  # Redis answers again
        during.used(0)  # the local charge given back: to the local buckets only
        await settled()
        assert local_tokens() == "1000"
        assert await redis_tokens() == in_redis  # Redis never charged it: nothing given
        after = await request()  # charged in Redis again
        left = await redis_tokens()
        after.used(1000 - round(in_redis) + 50)  # used 50 more than charged: taken from Redis
        await settled()
        assert await redis_tokens() == left - 50
        assert local_tokens() == "1000"  # the local buckets never charged it
    finally:
        await redis.delete(hash_key)
        await redis.aclose()
        await shared.aclose()


async def test_an_anonymous_clients_address_is_never_written_to_redis(
    tmp_path: Path, redis_url: str
) -> None:
    """Found 2026-12-05: an anonymous client's bucket was the Redis hash
    ``llm-mesh:rl:ip:<its address>``, kept an hour after its last request (and in Redis'
    RDB/AOF files on disk): whoever reads Redis had every anonymous client's address, with
    the time of its last request. Now a scope's key is a keyed hash of it (HMAC under a key
    derived from ``registry.key``, which Redis never holds)."""
    store, nodes = MemoryStore(), FakeNodes()
    client = redis_asyncio.from_url(redis_url)
    await client.delete(PREFIX + "ip:127.0.0.1")  # an older version's, if any
    await client.aclose()
    async with running(
        tmp_path, store=store, nodes=nodes, anonymous_rpm=5, redis_url=redis_url
    ) as h:
        await h.register("n1")
        answer = await h.client.post(CHAT, json=BODY)
        assert answer.status_code == 200
        assert answer.headers["x-ratelimit-limit-requests"] == "5"  # a bucket was charged
    client = redis_asyncio.from_url(redis_url)
    try:
        seen = []
        async for name in client.scan_iter(match=PREFIX + "*"):
            fields = await client.hgetall(name)
            if b"127.0.0.1" in name or any(b"127.0.0.1" in k + v for k, v in fields.items()):
                seen.append(name)
        assert seen == []
    finally:
        await client.aclose()


async def test_a_bucket_is_kept_in_redis_until_it_is_full_again_not_an_hour(
    redis_url: str,
) -> None:
    """Found 2026-12-05: every client's bucket was kept an hour after its last request
    (a minute's limit), so Redis held (the keyed hash of) every anonymous address of the
    last hour. Now it expires once its buckets are full again, when no key is the same
    bucket (at least a minute, at most the hour as before); a settlement that finds no key
    is made on full buckets, as it was on the kept full ones."""
    limiter = RedisLimiter.from_url(redis_url, RateLimiter())
    client = redis_asyncio.from_url(redis_url)
    s, debt, gone = scope(), scope(), scope()
    try:
        assert (await limiter.check(s, Limits(rpm=5), 0.0)).allowed  # full in 12 s
        assert 0 < await client.ttl(limiter.key(s)) <= 60
        # 1,000 tokens over a limit of 100 a minute: full in 11 min
        assert (await limiter.check(debt, Limits(tpm=100), 0.0, 100)).allowed
        assert await limiter._run(debt, Limits(tpm=100), "settle", 1000) is not None
        assert 600 < await client.ttl(limiter.key(debt)) <= 661
        # expired (full) before its request's usage came: charged on full
        assert await limiter._run(gone, Limits(tpm=100), "settle", 30) is not None
        assert float(await client.hget(limiter.key(gone), "tl")) == pytest.approx(70, abs=1)
    finally:
        await client.delete(limiter.key(s), limiter.key(debt), limiter.key(gone))
        await client.aclose()
        await limiter.aclose()
