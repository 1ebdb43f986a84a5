"""A replica's graceful stop (SIGTERM: the lifespan's ``usage_audit.stop()``) writes every
answer it relayed. Found 2026-12-06 (audit33): ``UsageAuditSync.stop`` cancelled its loop
wherever it was; in a run's write of the pending sums (taken out of ``pending``), the
cancel rolled the batch back and it was never written again, up to 2 s of a replica's
answers lost at each stop or redeploy. Now the stop lets a run under way end (its batch
written once), then writes what came meanwhile. A replica killed (SIGKILL, a crash) still
loses its pending sums, at most the last ``flush_s``."""

from __future__ import annotations

import asyncio
import logging

import pytest

from LLM_Mesh.core.usage_audit import AuditSample
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import UsageWindowRow
from LLM_Mesh.registry.usage_audit_sync import UsageAuditSync
from tests.registry.test_usage_audit_shared import MODEL, POLICY, Clock

SAMPLE = AuditSample(completion=30, completion_cap=116, prompt=50, prompt_cap=200)


class Slow(MemoryStore):
    """A store whose first batch waits until released (a write under way)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def add_usage_windows(self, rows: list[UsageWindowRow]) -> None:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        await super().add_usage_windows(rows)


async def _requests(store: MemoryStore) -> int:
    return sum(w.requests for w in (await store.usage_audit_rows(MODEL)).windows)


async def test_a_stop_during_a_write_loses_no_answer() -> None:
    store = Slow()
    sync = UsageAuditSync(store, POLICY, lambda v: None, clock=Clock(), flush_s=0.001)
    for _ in range(3):
        sync.add(MODEL, "a", SAMPLE)
    sync.start()
    await store.entered.wait()  # the loop's run is writing the 3 answers
    sync.add(MODEL, "a", SAMPLE)  # one more, pending
    stopping = asyncio.get_running_loop().create_task(sync.stop())
    await asyncio.sleep(0)  # the stop under way (before: it cancelled the write here)
    store.release.set()
    await stopping
    assert await _requests(store) == 4  # before: 1, the batch under way rolled back


async def test_a_stop_while_the_loop_sleeps_writes_the_pending_sums() -> None:
    store = MemoryStore()
    sync = UsageAuditSync(store, POLICY, lambda v: None, clock=Clock(), flush_s=3600)
    sync.start()
    sync.add(MODEL, "a", SAMPLE)
    await sync.stop()
    assert await _requests(store) == 1 and not sync.pending


async def test_a_failed_last_write_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Down(MemoryStore):
        async def add_usage_windows(self, rows: list[UsageWindowRow]) -> None:
            raise OSError("database down")

    sync = UsageAuditSync(Down(), POLICY, lambda v: None, clock=Clock())
    sync.add(MODEL, "a", SAMPLE)
    with caplog.at_level(logging.WARNING):
        await sync.stop()
    assert "1 answer" in caplog.text  # before: dropped without a word


class Hung(MemoryStore):
    """A store that never answers a write (PostgreSQL unreachable, a lock never granted)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def add_usage_windows(self, rows: list[UsageWindowRow]) -> None:
        self.entered.set()
        await asyncio.Event().wait()


async def test_a_stop_while_a_write_hangs_ends_within_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-06 (review33): the stop waited for the run under way with no bound, so
    a store that never answered (down, a lock never granted) hung the replica's shutdown
    (SIGTERM) for good. Now the run gets ``stop_s``, then is cancelled, its answers logged."""
    store = Hung()
    sync = UsageAuditSync(store, POLICY, lambda v: None, clock=Clock(), flush_s=0.001,
                          stop_s=0.01)  # fmt: skip
    sync.add(MODEL, "a", SAMPLE)
    sync.start()
    await store.entered.wait()  # the loop's run is writing, and never will
    sync.add(MODEL, "a", SAMPLE)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(sync.stop(), 30)  # before: TimeoutError, the stop hung
    assert "not written at stop" in caplog.text


async def test_a_last_write_that_hangs_ends_within_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sync = UsageAuditSync(Hung(), POLICY, lambda v: None, clock=Clock(), flush_s=3600,
                          stop_s=0.01)  # fmt: skip
    sync.start()
    sync.add(MODEL, "a", SAMPLE)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(sync.stop(), 30)  # before: TimeoutError, the stop hung
    assert "1 answer(s) not written at stop" in caplog.text
