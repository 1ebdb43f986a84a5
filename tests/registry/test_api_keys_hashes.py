"""The key cache remembers a live key's hash (SHA-256 costs ~9 µs a request on the loop)
without going stale: a revoked key is refused at the next request after the poll, an
expired one is asked for again, a key the store does not know is hashed every time, and
the memory is bounded."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from LLM_Mesh.core.identity import hash_secret
from LLM_Mesh.core.ratelimit import RateLimiter
from LLM_Mesh.errors import InvalidApiKey
from LLM_Mesh.registry import api_keys
from LLM_Mesh.registry.access import Authenticate
from LLM_Mesh.registry.api_keys import KeyCache, create_api_key
from LLM_Mesh.registry.job import Client
from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import ManualClock

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def counting(secret: str) -> str:
        seen.append(secret)
        return hash_secret(secret)

    monkeypatch.setattr(api_keys, "hash_secret", counting)
    return seen


async def test_a_live_keys_hash_is_made_once(hashes: list[str]) -> None:
    store, clock = MemoryStore(), ManualClock()
    made = await create_api_key(store, name="a")
    assert made is not None
    cache = KeyCache(store, clock, ttl_s=60.0)
    await cache.lookup(made[0])
    n = len(hashes)
    for _ in range(5):
        assert cache.cached(made[0]) == (True, made[1])
    assert len(hashes) <= n + 1  # the first hit remembers it; none after


async def test_a_revoked_key_is_refused_at_the_next_request(hashes: list[str]) -> None:
    store, clock = MemoryStore(), ManualClock()
    made = await create_api_key(store, name="a")
    assert made is not None
    key = made[0]
    cache = KeyCache(store, clock, ttl_s=3600.0, wall_now=lambda: NOW)
    auth = Authenticate(cache, RateLimiter(), clock)
    for _ in range(3):  # served from memory, its hash remembered
        assert await auth.identify(Client("10.0.0.1", f"Bearer {key}")) == made[1]
    await store.revoke_api_key("a", NOW + timedelta(seconds=1))
    assert await cache.poll() == [made[1].key_id]
    for _ in range(2):
        with pytest.raises(InvalidApiKey, match="revoked"):
            await auth.identify(Client("10.0.0.1", f"Bearer {key}"))
    assert key not in cache._hashes  # a revoked key's is not kept


async def test_an_expired_key_is_asked_for_again_and_an_unknown_one_hashed_each_time(
    hashes: list[str],
) -> None:
    store, clock = MemoryStore(), ManualClock()
    made = await create_api_key(store, name="a")
    assert made is not None
    cache = KeyCache(store, clock, ttl_s=60.0, negative_ttl_s=2.0)
    await cache.lookup(made[0])
    assert cache.cached(made[0])[0]
    clock.advance(61.0)
    assert cache.cached(made[0]) == (False, None)
    assert made[0] not in cache._hashes
    await cache.lookup("lmk_guess")
    n = len(hashes)
    assert cache.cached("lmk_guess") == (True, None)
    assert cache.cached("lmk_guess") == (True, None)
    assert len(hashes) == n + 2 and "lmk_guess" not in cache._hashes


async def test_the_remembered_hashes_are_bounded() -> None:
    store = MemoryStore()
    cache = KeyCache(store, ManualClock(), max_entries=3)
    keys = []
    for i in range(7):
        made = await create_api_key(store, name=f"k{i}")
        assert made is not None
        keys.append(made)
        await cache.lookup(made[0])
        assert cache.cached(made[0]) == (True, made[1])
        assert len(cache._hashes) <= 3
    for key, rec in keys[-3:]:
        assert cache.cached(key) == (True, rec)
