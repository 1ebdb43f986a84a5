"""A lone registry's keyed SDK attempt stays a repeat across the registry's restart.

A registry on SQLite keeps its idempotency keys in its process; an OpenAI SDK attempt's
implicit key (``core/sdk_retry.py``) was forgotten by a restart, so the SDK's retry that
reached the new process (its connection broke as the old one stopped) ran on a node and
was paid a second time. Found 2026-12-05 (``sdkstore32``, docs/security.md "Clients"):
now the attempt's end is kept in the store (``registry/lone_idempotency.py``) and the retry
is replayed. Each test restarts the app in process over the same SQLite file and home.
Fake nodes only.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from starlette.responses import Response

from LLM_Mesh.core.sdk_retry import implicit_key
from LLM_Mesh.registry.lone_idempotency import LoneIdempotency
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import running
from tests.registry.test_charge import BODY, CHAT, COST, new_user, register
from tests.registry.test_paid_ids import _settled
from tests.registry.test_sdk_retry_replay import RAW, attempt, settlement

STREAM = json.dumps({**BODY, "stream": True}).encode()


async def test_an_sdk_retry_after_a_restart_is_replayed_and_paid_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lone.db'}"
    async with running(tmp_path, store=SqlStore(url)) as h:
        await register(h, "a", "alice")
        key, account = await new_user(h, 1000)
        first = await h.client.post(CHAT, content=RAW, headers=attempt(key, 0))
        assert first.status_code == 200, first.text
        streamed = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 0))
        assert streamed.status_code == 200, streamed.text
        assert isinstance(h.runtime.idempotency, LoneIdempotency)
        paid = 1000 - COST - json.loads(streamed.text.split("data: ")[-2])["mesh"]["cost"]
        assert await _settled(settlement(h), account, (paid, 0)) == (paid, 0)
    text = first.json()["choices"][0]["message"]["content"].encode()
    kept = await asyncio.to_thread(
        lambda: b"".join(p.read_bytes() for p in tmp_path.glob("lone.db*"))
    )
    assert b"chatcmpl" not in kept and text not in kept  # kept sealed, never in clear
    async with running(tmp_path, store=SqlStore(url)) as h:  # the registry restarted
        node = await register(h, "a", "alice")
        again = await h.client.post(CHAT, content=RAW, headers=attempt(key, 1))
        assert again.status_code == 200, again.text
        assert again.headers.get("x-mesh-replayed") == "true"  # before: run, paid again
        assert again.json() == first.json()
        stream_again = await h.client.post(CHAT, content=STREAM, headers=attempt(key, 2))
        assert stream_again.headers.get("x-mesh-replayed") == "true", stream_again.text
        assert stream_again.content == streamed.content
        assert not node.calls
        assert await _settled(settlement(h), account, (paid, 0)) == (paid, 0)
        # the attack: another key's identical retry is its own, never handed this answer
        other, _ = await new_user(h, 1000)
        theirs = await h.client.post(CHAT, content=RAW, headers=attempt(other, 1))
        assert theirs.status_code == 200 and "x-mesh-replayed" not in theirs.headers
        assert len(node.calls) == 1


async def test_a_first_attempt_after_a_restart_runs_and_its_retries_refer_to_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'lone.db'}"
    async with running(tmp_path, store=SqlStore(url)) as h:
        await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        old = await h.client.post(CHAT, content=RAW, headers=attempt(key, 0))
        assert old.status_code == 200
    async with running(tmp_path, store=SqlStore(url)) as h:
        node = await register(h, "a", "alice", behavior="500")
        failed = await h.client.post(CHAT, content=RAW, headers=attempt(key, 0))
        assert failed.status_code >= 500  # a new request: run, not the old row's replay
        node.behavior = "ok"
        retry = await h.client.post(CHAT, content=RAW, headers=attempt(key, 1))
        assert retry.status_code == 200 and "x-mesh-replayed" not in retry.headers
        assert len(node.calls) == 2  # its retry ran: it refers to the failed attempt


async def test_a_retry_past_the_window_after_a_restart_runs_and_reads_nothing(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'lone.db'}"
    wall = [time.time()]
    async with running(tmp_path, store=SqlStore(url), wall_clock=lambda: wall[0]) as h:
        await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        assert (await h.client.post(CHAT, content=RAW, headers=attempt(key, 0))).is_success
    wall[0] += 61.0
    async with running(tmp_path, store=SqlStore(url), wall_clock=lambda: wall[0]) as h:
        node = await register(h, "a", "alice")
        reads: list[str] = []
        real = h.store.get_request_key

        async def spy(key_hash: str) -> object:
            reads.append(key_hash)
            return await real(key_hash)

        h.store.get_request_key = spy  # type: ignore[method-assign]
        late = await h.client.post(CHAT, content=RAW, headers=attempt(key, 1))
        assert late.status_code == 200 and "x-mesh-replayed" not in late.headers
        assert len(node.calls) == 1
        wall[0] += 60.0  # past the window after this start: no read at all
        other = json.dumps({**BODY, "max_tokens": 4}).encode()  # (a key not seen here)
        assert (await h.client.post(CHAT, content=other, headers=attempt(key, 1))).is_success
        assert len(reads) == 1 and len(node.calls) == 2


async def test_the_kept_ends_are_deleted_once_expired(tmp_path: Path) -> None:
    """No sealed answer stays in the store past its window: the rows of the process before
    are purged once the window after the start passed, this process's own once the last
    one written expired."""
    url = f"sqlite:///{tmp_path / 'lone.db'}"
    store = SqlStore(url)
    await store.open()
    try:
        wall = [1_000_000.0]
        waits: list[float] = []

        go = asyncio.Event()

        async def sleep(seconds: float) -> None:  # the purge's wait, on the test's clock
            waits.append(seconds)
            await go.wait()
            go.clear()
            wall[0] += seconds

        earlier = LoneIdempotency(store, wall_clock=lambda: wall[0], retry_window_s=60.0)
        k = implicit_key(CHAT, "key:k1", "ab" * 32)
        assert await earlier.begin_fresh(k, False)
        earlier.finish(k, Response(b'{"n":1}', 200))
        await earlier.close()
        assert len(await _rows(store)) == 1  # kept for a retry after a restart
        cache = LoneIdempotency(store, wall_clock=lambda: wall[0], retry_window_s=60.0, sleep=sleep)
        cache.start()
        assert cache._purger is not None
        await asyncio.sleep(0)
        assert waits == [61.0] and len(await _rows(store)) == 1  # not before they expired
        go.set()
        await cache._purger
        assert await _rows(store) == []
        k2 = implicit_key(CHAT, "key:k1", "cd" * 32)
        assert await cache.begin_fresh(k2, False)
        cache.finish(k2, Response(b'{"n":2}', 200))
        await cache.flush()
        assert waits == [61.0, 61.0] and len(await _rows(store)) == 1
        go.set()
        await cache._purger
        assert await _rows(store) == []
        await cache.close()
    finally:
        await store.close()


async def _rows(store: SqlStore) -> list[object]:
    from sqlalchemy import select

    from LLM_Mesh.registry import tables

    async with store.engine.connect() as conn:
        return list((await conn.execute(select(tables.idempotency_keys))).all())


class _StuckStore:
    """A store whose writes hang (a disk stalled, SQLite locked by another process)."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.written: list[object] = []

    async def get_request_key(self, key_hash: str) -> None:
        return None

    async def keep_request_keys(self, records: list[object], now: object) -> None:
        await self.go.wait()
        self.written += records

    async def purge_request_keys(self, now: object) -> int:
        return 0


async def test_the_ends_waiting_for_a_stuck_store_are_bounded() -> None:
    """Found 2026-12-05 (review32): the ends waiting to be written were held without bound
    (each a sealed copy of its answer, past the cache's own bytes) while a write hung. Now
    at most the cache's ``max_entries`` and ``max_bytes`` wait; past them an end is not
    kept (its retry after a restart runs as before, as when the store fails)."""
    store = _StuckStore()
    wall = [1_000_000.0]
    cache = LoneIdempotency(store, wall_clock=lambda: wall[0], retry_window_s=60.0)  # type: ignore[arg-type]
    cache.max_bytes = 20_000
    for i in range(60):
        k = implicit_key(CHAT, "key:k1", f"{i:064x}")
        assert await cache.begin_fresh(k, False)
        cache.finish(k, Response(b"x" * 1_000, 200))
        await asyncio.sleep(0)  # the writer takes its first batch and hangs
    waiting = list(cache._pending.values())
    assert 0 < sum(len(r.body or b"") for r in waiting) <= cache.max_bytes
    store.go.set()
    await cache.flush()
    assert 0 < len(store.written) < 60
    await cache.close()
