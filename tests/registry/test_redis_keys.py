"""The Redis tests' sweep of their own keys (``redis_keys.swept``, hygiene44): a key left with
no TTL fails the test that left it, and nothing under its prefix stays in Redis either way.

Needs Redis as ``test_redis_limits.py`` does (skipped when it does not answer)."""

from __future__ import annotations

import uuid

import pytest

from LLM_Mesh.registry.redis_limits import PREFIX
from tests.registry.redis_keys import swept
from tests.registry.test_redis_limits import redis_asyncio, redis_url  # noqa: F401 (fixture)


async def test_a_key_with_no_ttl_fails_and_nothing_under_the_prefix_stays(
    redis_url: str,  # noqa: F811
) -> None:
    prefix = f"hygiene44:{uuid.uuid4().hex}:"
    client = redis_asyncio.from_url(redis_url)
    try:
        await client.set(prefix + "timed", "1", ex=60)
        await client.hset(prefix + "for-ever", mapping={"a": "1"})
        await client.set(prefix + "*glob", "1", ex=60)  # a glob character in a name
        with pytest.raises(AssertionError, match="for-ever"):
            await swept(redis_url, prefix)
        assert [k async for k in client.scan_iter(match=prefix + "*")] == []
        await client.set(prefix + "timed", "1", ex=60)
        await swept(redis_url, prefix)  # timed keys only: swept, no failure
        assert [k async for k in client.scan_iter(match=prefix + "*")] == []
    finally:
        await client.aclose()


async def test_a_glob_in_a_prefix_is_taken_literally(redis_url: str) -> None:  # noqa: F811
    """``[ab]`` in a prefix sweeps that prefix, not ``a``'s and ``b``'s keys."""
    base = f"hygiene44:{uuid.uuid4().hex}:"
    client = redis_asyncio.from_url(redis_url)
    try:
        await client.set(base + "a:k", "1", ex=60)
        await client.set(base + "[ab]:k", "1", ex=60)
        await swept(redis_url, base + "[ab]:")
        assert await client.exists(base + "a:k") == 1  # another prefix's: kept
        assert await client.exists(base + "[ab]:k") == 0
    finally:
        await client.delete(base + "a:k")
        await client.aclose()


@pytest.mark.parametrize("prefix", [PREFIX, "", "no-colon"])
async def test_only_a_tests_own_prefix_is_swept(prefix: str) -> None:
    with pytest.raises(ValueError, match="not a test's own prefix"):
        await swept("redis://127.0.0.1:1/0", prefix)
