"""The background request writer: batches, flush on stop, never blocks requests."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import pytest

from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.ports import RequestRecord
from LLM_Mesh.registry.request_log import RequestWriter


def rec(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{i}",
        node_id="a",
        model="m",
        stream=False,
        outcome="ok",
        error_code=None,
        prompt_tokens=1,
        completion_tokens=2,
        latency_ms=1.0,
        ttft_ms=None,
        cost=0,
        created_at=datetime.now(timezone.utc),
    )


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def record_requests(self, recs: list[RequestRecord]) -> None:
        self.batches.append(len(recs))
        await super().record_requests(recs)


async def test_background_flush_in_batches() -> None:
    store = CountingStore()
    w = RequestWriter(store, flush_interval_s=0.01, max_batch=3)
    w.start()
    for i in range(7):
        w.submit(rec(i))
    assert store.requests == []  # nothing written on the caller's path
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(store.requests) == 7:
            break
    await w.stop()
    assert [r.request_id for r in store.requests] == [f"r{i}" for i in range(7)]
    assert max(store.batches) <= 3 and w.written == 7


async def test_stop_writes_what_is_queued() -> None:
    store = MemoryStore()
    w = RequestWriter(store, flush_interval_s=60)
    w.start()
    for i in range(5):
        w.submit(rec(i))
    await w.stop()
    assert len(store.requests) == 5


async def test_full_queue_drops() -> None:
    w = RequestWriter(MemoryStore(), max_queue=2)
    for i in range(5):
        w.submit(rec(i))
    assert w.dropped == 3


async def test_store_error_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryStore):
        async def record_requests(self, recs: list[RequestRecord]) -> None:
            raise RuntimeError("db down")

    w = RequestWriter(Broken())
    w.submit(rec(1))
    assert await w.flush() == 0
    assert w.dropped == 1
    assert "could not store 1 requests; dropped" in caplog.text


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        RequestWriter(MemoryStore(), flush_interval_s=0)


async def test_observers_see_every_submitted_record_even_when_the_queue_is_full() -> None:
    w = RequestWriter(MemoryStore(), max_queue=1)
    seen: list[str] = []
    w.observers.append(lambda r: seen.append(r.request_id))
    w.submit(rec(1))
    w.submit(rec(2))  # dropped from the store's queue, still counted by the observers
    assert seen == ["r1", "r2"]
    assert w.dropped == 1


async def test_a_flush_takes_the_oldest_batch_and_leaves_the_rest_in_order() -> None:
    store = MemoryStore()
    w = RequestWriter(store, max_batch=3, max_queue=5)
    for i in range(6):
        w.submit(rec(i))
    assert (w.queued, w.dropped) == (5, 1)  # the sixth found the queue full
    assert await w.flush() == 3
    assert w.queued == 2
    assert await w.flush() == 2
    assert await w.flush() == 0
    assert [r.request_id for r in store.requests] == [f"r{i}" for i in range(5)]


async def test_ten_failed_rounds_of_the_writer_are_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """loops43: the request log's writer (a write every 0.5 s) said each failed round at
    WARNING till the run's ERROR 60 s in; now its first only (``first_only``, as the store
    polls), the rest at DEBUG."""

    class Away(MemoryStore):
        async def record_requests(self, recs: list[RequestRecord]) -> None:
            raise ConnectionRefusedError(111, "Connection refused")

    caplog.set_level(logging.DEBUG, logger="LLM_Mesh.registry.request_log")
    w = RequestWriter(Away())
    for i in range(10):
        w.submit(rec(i))
        assert await w.flush() == 0
    said = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert [(r.levelno, r.exc_info) for r in said] == [(logging.WARNING, None)]
    assert said[0].getMessage() == (
        "could not store 1 requests, the database's connection lost or refused "
        "(ConnectionRefusedError: [Errno 111] Connection refused); dropped"
    )
    assert w.dropped == 10
