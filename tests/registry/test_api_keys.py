"""The gateway's key cache: one store query per key and TTL, revocations polled from the store."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from LLM_Mesh.registry.api_keys import KeyCache, create_api_key
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import RequestRecord
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import ManualClock


def _request_record() -> RequestRecord:
    return RequestRecord(
        request_id="req-1", node_id="n1", model="m", stream=False, outcome="ok",
        error_code=None, prompt_tokens=1, completion_tokens=1, latency_ms=1.0, ttft_ms=1.0,
        cost=0, created_at=datetime.now(timezone.utc),
    )  # fmt: skip


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def api_key_by_hash(self, key_hash: str) -> Any:
        self.lookups += 1
        return await super().api_key_by_hash(key_hash)


async def test_a_key_is_looked_up_once_then_served_from_memory() -> None:
    store, clock = CountingStore(), ManualClock()
    made = await create_api_key(store, name="a")
    assert made is not None
    key, rec = made
    cache = KeyCache(store, clock, ttl_s=60.0)
    assert cache.cached(key) == (False, None)
    assert (await cache.lookup(key)) == rec
    for _ in range(5):
        assert (await cache.lookup(key)) == rec
    assert store.lookups == 1 and cache.cached(key) == (True, rec)
    clock.advance(61.0)  # expired: asked again
    await cache.lookup(key)
    assert store.lookups == 2


async def test_an_unknown_key_is_remembered_briefly() -> None:
    store, clock = CountingStore(), ManualClock()
    cache = KeyCache(store, clock, negative_ttl_s=2.0)
    assert await cache.lookup("lmk_guess") is None
    assert await cache.lookup("lmk_guess") is None
    assert store.lookups == 1
    clock.advance(2.5)
    assert await cache.lookup("lmk_guess") is None
    assert store.lookups == 2


async def test_the_cache_is_bounded() -> None:
    cache = KeyCache(MemoryStore(), ManualClock(), max_entries=3)
    for i in range(10):
        await cache.lookup(f"lmk_{i}")
    assert len(cache) == 3


async def test_a_revocation_in_the_store_reaches_a_cached_key_at_the_next_poll() -> None:
    store, clock = MemoryStore(), ManualClock()
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    made = await create_api_key(store, name="a")
    other = await create_api_key(store, name="b")
    assert made is not None and other is not None
    cache = KeyCache(store, clock, ttl_s=3600.0, wall_now=lambda: now)
    await cache.lookup(made[0])
    await cache.lookup(other[0])
    assert await cache.poll() == []
    await store.revoke_api_key("a", now + timedelta(seconds=1))  # e.g. the CLI, elsewhere
    assert await cache.poll() == [made[1].key_id]
    hit, rec = cache.cached(made[0])
    assert hit and rec is not None and rec.revoked_at is not None
    hit, rec = cache.cached(other[0])
    assert hit and rec is not None and rec.revoked_at is None
    assert await cache.poll() == []  # already marked: nothing new


async def test_on_sqlite_the_revocation_poll_reads_the_store_only_after_a_key_was_written(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    async with SqlStore(url) as store, SqlStore(url) as admin:
        made = await create_api_key(store, name="a")
        assert made is not None
        cache = KeyCache(store, ManualClock(), ttl_s=3600.0)
        cache.changes = functools.partial(store.poll_version, "api_keys")  # as the app does
        await cache.lookup(made[0])
        assert await cache.tick() is True  # the first poll
        assert await cache.tick() is False  # no commit since: no query
        # the gateway's own commits under traffic (request log, settlement): no query
        await store.record_requests([_request_record()])
        assert await cache.tick() is False
        await admin.revoke_api_key("a", datetime.now(timezone.utc))  # the CLI, elsewhere
        assert await cache.tick() is True
        hit, rec = cache.cached(made[0])
        assert hit and rec is not None and rec.revoked_at is not None
        assert await cache.tick() is False


async def test_a_new_keys_id_and_account_are_derived_from_the_key() -> None:
    """Its holder computes the account settlement debits for it (``core/key_account.py``;
    before 2026-12-05 the id was random and only the registry could name the account)."""
    from LLM_Mesh.core.key_account import derived_account, derived_key_id
    from LLM_Mesh.registry.settlement import user_account

    store = MemoryStore()
    made = [await create_api_key(store, name=f"k{i}") for i in range(3)]
    ids = set()
    for m in made:
        assert m is not None
        key, rec = m
        assert key.startswith("lmk_") and len(key) == 4 + 44
        assert rec.key_id == derived_key_id(key) and rec.key_id.startswith("key_")
        assert len(rec.key_id) == 4 + 12
        assert user_account(rec.key_id) == derived_account(key)
        assert key[4:] not in rec.key_id
        ids.add(rec.key_id)
    assert len(ids) == 3


async def test_a_new_keys_id_taken_by_another_key_is_drawn_again(monkeypatch: Any) -> None:
    """The id is 48 bits of a hash of the key: one already taken (a collision, at a few
    million keys a real chance) refused the insert and ``keys create`` said the *name*
    was taken (found 2026-12-05, review29); a fresh key is drawn instead. A name really
    taken is still ``None``."""
    from LLM_Mesh.registry import api_keys

    store = MemoryStore()
    first = await create_api_key(store, name="a")
    assert first is not None
    draws = iter([first[0][4:], "x" * 44])  # the same key (its id taken), then another
    monkeypatch.setattr(api_keys.secrets, "token_urlsafe", lambda n: next(draws))
    made = await create_api_key(store, name="b")
    assert made is not None and made[0] == "lmk_" + "x" * 44 and made[1].name == "b"
    assert made[1].key_id != first[1].key_id
    monkeypatch.undo()
    assert await create_api_key(store, name="a") is None
    assert len(await store.list_api_keys()) == 2
