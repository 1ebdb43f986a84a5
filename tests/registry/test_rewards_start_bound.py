"""A registry's start waits for the due reward period's close at most
``Settings.reward_start_close_s`` (``RewardTask.close_first``; ``registry/app.py``).

Found 2026-12-05 (``small31``, session 30's note): the start awaited that close with no time
bound of its own, so a store that hung in it (a lock held elsewhere, a stalled disk) held the
replica's start for ever: it never served, and ``registry serve --workers N`` killed the
worker that never beat and started it again, into the same hang. Now the start logs and serves
after the bound; the close goes on beside serving as the loop's first tick (a failure of it
tried again next tick). The store here hangs in the close's read of the period's requests
until the test lets it go: no real time is waited but the bound (50 ms).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.identity import encode_public_key, public_key_of
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.rewards import RewardTask
from LLM_Mesh.registry.store import SqlStore
from tests.registry.helpers import make_settings
from tests.registry.test_rewards import (
    EXPIRY_S,
    PERIOD_S,
    RATE,
    Clock,
    S,
    _at,
    _beat,
    _operator,
    _rows,
)
from tests.registry.test_store import node
from tests.waiting import SOON_S, scaled


class HangingStore(SqlStore):
    """A store whose read of a period's requests (the close's, nobody else's at start) waits
    until ``gate`` is set; ``fail``: then it raises once instead of answering."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gate = asyncio.Event()
        self.reads = 0
        self.fail = False

    async def request_totals(self, since: datetime, until: datetime) -> Any:
        self.reads += 1
        await self.gate.wait()
        if self.fail:
            self.fail = False
            raise RuntimeError("the database went away")
        return await super().request_totals(since, until)


async def _up_before_the_stop(url: str) -> None:
    before = SqlStore(url)  # a node up from S to S + P/2, then every registry stopped
    await before.open()
    await _operator(before, "op")
    key = encode_public_key(public_key_of(Ed25519PrivateKey.generate()))
    await before.claim_node_key("flaky", key, "op", 1, _at(0))
    await before.upsert_node(
        node("flaky", state="online", registered_at=_at(0), last_heartbeat_at=_at(0))
    )
    await _beat(before, "flaky", 0, PERIOD_S / 2)
    await before.close()


async def _until(check: Any) -> None:
    end = time.monotonic() + scaled(SOON_S)  # 2000 turns of 5 ms before flakes40
    while time.monotonic() < end:  # the loop's first tick finishing the close: a few turns
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not reached")


async def test_a_store_that_hangs_in_the_close_does_not_hold_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    await _up_before_the_stop(url)
    store = HangingStore(url)
    settings = make_settings(
        tmp_path / "home", reward_rate=RATE, reward_period_s=PERIOD_S, reward_start_close_s=0.05
    )
    app = create_registry_app(settings, store=store, wall_clock=Clock(S + 3 * PERIOD_S + 15))
    rewards = app.state.runtime.rewards
    lifespan = app.router.lifespan_context(app)
    caplog.set_level(logging.WARNING, "LLM_Mesh.registry.rewards")
    await asyncio.wait_for(lifespan.__aenter__(), 10)  # before: never, the close hung
    try:
        # the close goes on beside serving: on a loaded box it may not have reached its read
        # within the 50 ms bound (CI, 2026-12-06: ``reads`` was still 0 here), so it is waited
        # for; it then hangs there, the period unclosed
        await _until(lambda: store.reads == 1)
        assert rewards._done is None  # serving, the close still going on
        assert "took over 0.05 s; serving" in caplog.text
        store.gate.set()  # the store answers: the loop's first tick is that very close
        await _until(lambda: rewards._done == S + 2 * PERIOD_S)
        assert store.reads == 1  # not run twice
    finally:
        await lifespan.__aexit__(None, None, None)
    after = SqlStore(url)
    await after.open()
    try:
        rows = await _rows(after.engine)
    finally:
        await after.close()
    assert set(rows) == {("flaky", S)}  # closed in its own period, as a close before serving


def _hanging_task(store: Any, sleeps: list[float]) -> RewardTask:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)

    async def engine() -> Any:
        return store.engine

    return RewardTask(
        store, SqlLedger(engine), rate=RATE, period_s=PERIOD_S, grace_s=10,
        wall_clock=lambda: S + PERIOD_S + 20, sleep=sleep,
    )  # fmt: skip


async def test_a_close_past_its_bound_that_fails_is_tried_again_next_tick(tmp_path: Path) -> None:
    store = HangingStore(f"sqlite:///{tmp_path / 'r.db'}")
    await store.open()
    try:
        await store.upsert_node(
            node("n", state="online", registered_at=_at(0), last_heartbeat_at=_at(0))
        )
        await store.touch_heartbeat("n", _at(10), "online", credit_limit_s=EXPIRY_S)
        sleeps: list[float] = []
        task = _hanging_task(store, sleeps)
        assert await asyncio.wait_for(task.close_first(0.05), 10) is False
        task.start()
        store.fail = True
        store.gate.set()  # the start's close fails: the loop sleeps a tick, then closes again
        await _until(lambda: task._done == S)
        await task.stop()
        assert sleeps[0] == 60.0 and store.reads == 2
    finally:
        await store.close()


async def test_a_close_within_its_bound_is_waited_for_and_0_waits_not_at_all() -> None:
    store = MemoryStore()  # no node has uptime: the close ends at once, nothing to read
    sleeps: list[float] = []
    task = _hanging_task(store, sleeps)
    assert await task.close_first(5.0) is True and task._done == S
    again = _hanging_task(store, sleeps)
    assert await again.close_first(0) is False and again._done is None  # left to the loop
    again.start()
    await _until(lambda: again._done == S)
    await again.stop()


async def test_stop_ends_a_start_close_the_loop_never_took(tmp_path: Path) -> None:
    store = HangingStore(f"sqlite:///{tmp_path / 'r.db'}")
    await store.open()
    try:
        await store.upsert_node(
            node("n", state="online", registered_at=_at(0), last_heartbeat_at=_at(0))
        )
        await store.touch_heartbeat("n", _at(10), "online", credit_limit_s=EXPIRY_S)
        task = _hanging_task(store, [])
        assert await task.close_first(0.05) is False
        first = task._first
        await asyncio.wait_for(task.stop(), 10)  # the start failed after it: no loop started
        assert first is not None and first.cancelled()
    finally:
        await store.close()
