"""Uptime credits and per-period request totals in the stores (SQLite, PostgreSQL, memory).

The SQL credit (``store_rewards.heartbeat_credit``, computed inside the heartbeat's
``UPDATE``) must agree with the pure rule (``core/rewards.heartbeat_credit_ms``) that
the in-memory store runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from LLM_Mesh.core.rewards import ModelStats, heartbeat_credit_ms
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.registry.store import SqlStore
from tests.registry.conftest import DIALECTS
from tests.registry.test_store import T0, node, request

EXPIRY_S = 30.0


@pytest.fixture(params=[*DIALECTS, "memory"])
def store_kind(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL (SQLite, PostgreSQL), or ``"memory"``."""
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url = request.getfixturevalue("pg_database_url")
    if not isinstance(url, str):
        raise TypeError(f"pg_database_url gave {url!r}")
    return url


@pytest.fixture
async def any_store(store_kind: str) -> AsyncIterator[Store]:
    """A SqlStore on SQLite, one on PostgreSQL, and a MemoryStore."""
    if store_kind == "memory":
        yield MemoryStore()
        return
    s = SqlStore(store_kind)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _healthy(store: Store, node_id: str = "n1") -> int:
    rec = await store.get_node(node_id)
    assert rec is not None
    return rec.healthy_ms


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def _touch(store: Store, batched: bool, at: datetime, state: str, limit: float) -> None:
    if batched:  # the heartbeat path's batches (heartbeat_writes.py): one UPDATE on PostgreSQL
        await store.touch_heartbeats([("n1", at, state, int(limit * 1000))])  # type: ignore[attr-defined]
    else:
        assert await store.touch_heartbeat("n1", at, state, credit_limit_s=limit)


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
async def test_heartbeats_credit_the_routable_time_as_the_pure_rule_says(
    any_store: Store, batched: bool
) -> None:
    """A script of heartbeats (time, state reported, credit limit) after a registration at
    T0; after each, the stored counter equals the pure rule's running sum (to the ms), one
    heartbeat at a time and in the batches' statement alike."""
    await any_store.upsert_node(node(state="online", last_heartbeat_at=T0))
    script = [
        (10.0, "online", EXPIRY_S),  # +10 s
        (20.5, "online", EXPIRY_S),  # +10.5 s: fractions kept
        (30.0, "paused", EXPIRY_S),  # +9.5 s: online until this heartbeat said paused
        (40.0, "online", EXPIRY_S),  # +0: it was paused
        (50.0, "online", 0.0),  # +0: the active check failed (limit 0)
        (200.0, "online", EXPIRY_S),  # +30 s only: silent longer than the expiry
        (199.0, "online", EXPIRY_S),  # +0: a clock that went back
        (209.0, "online", EXPIRY_S),  # +10 s
    ]
    expected, since, online = 0, 0, True
    for at, state, limit in script:
        expected += heartbeat_credit_ms(
            was_online=online,
            since_ms=since,
            at_ms=round(at * 1000),
            limit_ms=int(limit * 1000),
        )
        await _touch(any_store, batched, _at(at), state, limit)
        since, online = round(at * 1000), state == "online"
        assert abs(await _healthy(any_store) - expected) <= 1, (at, state)
    assert expected == 70_000


async def test_a_registration_keeps_the_counter_and_starts_no_credit(any_store: Store) -> None:
    """A node restart: it registers again (state, last heartbeat = now). Its counter is
    kept; the time it was down is not credited; later heartbeats count again."""
    await any_store.upsert_node(node(state="online", last_heartbeat_at=T0))
    await any_store.touch_heartbeat("n1", _at(10), "online", credit_limit_s=EXPIRY_S)
    await any_store.touch_heartbeat("n1", _at(20), "online", credit_limit_s=EXPIRY_S)
    assert await _healthy(any_store) == 20_000
    await any_store.upsert_node(node(state="online", last_heartbeat_at=_at(100)))  # healthy_ms 0
    assert await _healthy(any_store) == 20_000
    await any_store.touch_heartbeat("n1", _at(110), "online", credit_limit_s=EXPIRY_S)
    assert await _healthy(any_store) == 30_000


async def test_a_departed_node_earns_nothing_until_it_is_back(any_store: Store) -> None:
    await any_store.upsert_node(node(state="online", last_heartbeat_at=T0))
    await any_store.set_node_state("n1", "offline")
    await any_store.touch_heartbeat("n1", _at(10), "online", credit_limit_s=EXPIRY_S)
    assert await _healthy(any_store) == 0
    # a heartbeat without a credit limit (no rewards) changes nothing either
    await any_store.touch_heartbeat("n1", _at(20), "online")
    assert await _healthy(any_store) == 0


async def test_concurrent_heartbeats_of_many_nodes_each_count_once(any_store: Store) -> None:
    for i in range(20):
        await any_store.upsert_node(node(f"n{i}", state="online", last_heartbeat_at=T0))
    await asyncio.gather(
        *(
            any_store.touch_heartbeat(f"n{i}", _at(5 + i % 3), "online", credit_limit_s=EXPIRY_S)
            for i in range(20)
        )
    )
    assert [await _healthy(any_store, f"n{i}") for i in range(20)] == [
        (5 + i % 3) * 1000 for i in range(20)
    ]


async def test_request_totals_of_a_period(any_store: Store) -> None:
    since, until = _at(0), _at(100)
    await any_store.record_requests(
        [
            request(1, "a", latency_ms=1000.0, completion_tokens=50),
            request(2, "a", latency_ms=500.0, completion_tokens=30),
            request(3, "a", outcome="error"),
            request(4, "a", outcome="cancelled"),  # neither
            request(5, "a", model="other", latency_ms=None, completion_tokens=7),
            request(6, "b", latency_ms=200.0, completion_tokens=10),
            request(7, None),  # no node
            request(100, "a"),  # at ``until``: the next period's
            request(-1, "b"),  # before ``since``
        ]
    )
    got = await any_store.request_totals(since, until)
    assert got == {
        "a": {
            "gemma-3-270m": ModelStats(ok=2, failed=1, tokens=80, latency_ms=1500.0),
            "other": ModelStats(ok=1, failed=0, tokens=7, latency_ms=0.0),
        },
        "b": {"gemma-3-270m": ModelStats(ok=1, failed=0, tokens=10, latency_ms=200.0)},
    }
    assert await any_store.request_totals(_at(1000), _at(2000)) == {}


async def test_one_batch_credits_each_node_by_its_own_row(any_store: Store) -> None:
    """Nodes in different situations in one batch: each gets what the pure rule gives it."""
    states = {"a": "online", "b": "paused", "c": "online", "d": "online"}
    for nid, state in states.items():
        await any_store.upsert_node(node(nid, state=state, last_heartbeat_at=T0))
    items = [
        ("a", _at(12.25), "online", 30_000),  # +12.25 s
        ("b", _at(12), "online", 30_000),  # +0: it was paused
        ("c", _at(99), "online", 30_000),  # +30 s: the limit
        ("d", _at(5), "online", 0),  # +0: no credit (its check failed)
    ]
    await any_store.touch_heartbeats(items)  # type: ignore[attr-defined]
    for nid, at, _, limit in items:
        want = heartbeat_credit_ms(
            was_online=states[nid] == "online",
            since_ms=0,
            at_ms=round((at - T0).total_seconds() * 1000),
            limit_ms=limit,
        )
        assert abs(await _healthy(any_store, nid) - want) <= 1, nid
    assert [await _healthy(any_store, n) for n in "abcd"] == [12_250, 0, 30_000, 0]
