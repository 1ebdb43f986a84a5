"""Client API keys in the store (SQLite, PostgreSQL, and the memory store, which must behave
the same): only hashes, unique names, revocation seen by every reader."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from LLM_Mesh.core.identity import hash_secret
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.api_keys import create_api_key, parse_regions
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import ApiKeyRecord
from LLM_Mesh.registry.store import SqlStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _rec(key_id: str, key_hash: str, name: str | None = None, **kw: Any) -> ApiKeyRecord:
    return ApiKeyRecord(key_id=key_id, key_hash=key_hash, created_at=T0, name=name, **kw)


async def check_api_keys(s: Any) -> None:
    rec = _rec(
        "key_1", "h1", "alice", rpm=5, tpm=100, avoid_regions=["us", "eu"], strict_regions=True
    )
    assert await s.add_api_key(rec)
    assert not await s.add_api_key(_rec("key_2", "h2", "alice"))  # name taken
    assert not await s.add_api_key(_rec("key_3", "h1"))  # same key
    assert not await s.add_api_key(_rec("key_1", "h4"))  # same id
    assert await s.add_api_key(_rec("key_5", "h5"))  # no name: fine
    assert await s.add_api_key(_rec("key_6", "h6"))  # several without a name
    got = await s.api_key_by_hash("h1")
    assert got is not None and (got.key_id, got.name, got.rpm, got.tpm) == (
        "key_1",
        "alice",
        5,
        100,
    )
    assert got.avoid_regions == ["eu", "us"] and got.strict_regions and got.revoked_at is None
    assert await s.api_key_by_hash("nope") is None
    assert [k.key_id for k in await s.list_api_keys()] == ["key_1", "key_5", "key_6"]
    assert await s.revoked_api_keys_since(T0) == []
    at = T0 + timedelta(minutes=1)
    revoked = await s.revoke_api_key("alice", at)  # by name
    assert revoked is not None and revoked.key_id == "key_1" and revoked.revoked_at == at
    again = await s.revoke_api_key("key_1", at + timedelta(hours=1))  # by id; keeps the first time
    assert again is not None and again.revoked_at == at
    assert await s.revoke_api_key("nobody", at) is None
    assert await s.revoked_api_keys_since(T0) == ["key_1"]
    assert await s.revoked_api_keys_since(at + timedelta(seconds=1)) == []
    found = await s.api_key_by_hash("h1")
    assert found is not None and found.revoked_at == at


async def test_api_keys_sql(store: SqlStore) -> None:
    await check_api_keys(store)


async def test_api_keys_memory() -> None:
    await check_api_keys(MemoryStore())


async def test_create_api_key_stores_only_the_hash(store: SqlStore) -> None:
    made = await create_api_key(store, name="bob", rpm=10, avoid_regions=["eu", " us", "eu"])
    assert made is not None
    key, rec = made
    assert key.startswith("lmk_") and len(key) > 40 and rec.key_id.startswith("key_")
    assert rec.key_hash == hash_secret(key) and rec.avoid_regions == ["eu", "us"]
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(tables.api_keys))).all()
    assert len(rows) == 1 and key not in repr(tuple(rows[0]))  # the key itself is nowhere
    assert await create_api_key(store, name="bob") is None  # name taken


def test_parse_regions() -> None:
    assert parse_regions("eu, us,,eu ") == ["eu", "us"]
    assert parse_regions(None) == []
    assert parse_regions(["b", "a"]) == ["a", "b"]
