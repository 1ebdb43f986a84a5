"""The engine contract: GenerationRequest checks and the thread → loop bridge."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from LLM_Mesh.node.engines.base import (
    EngineWorker,
    GenerationRequest,
    Usage,
    batches_in_thread,
    iterate_in_thread,
    message_text,
)
from tests.node.engines.wakes import count_wakes
from tests.waiting import SOON_S, scaled


def test_generation_request_validation() -> None:
    with pytest.raises(ValueError):
        GenerationRequest(kind="chat", model="m")
    with pytest.raises(ValueError):
        GenerationRequest(kind="completion", model="m")
    with pytest.raises(ValueError):
        GenerationRequest(kind="completion", model="m", prompt="x", max_tokens=0)
    req = GenerationRequest(
        kind="chat",
        model="m",
        messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}],
    )
    assert req.text_for_estimate() == "ab"
    assert message_text({"role": "user"}) == ""
    assert Usage(3, 4).to_dict() == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


async def test_items_come_from_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def make(_gone: threading.Event) -> Iterator[int]:
        for i in range(5):
            seen.append(threading.get_ident())
            yield i

    out = [i async for i in iterate_in_thread(make, threading.Event())]
    assert out == [0, 1, 2, 3, 4]
    assert loop_thread not in seen


async def test_worker_errors_are_reraised() -> None:
    def make(_gone: threading.Event) -> Iterator[int]:
        yield 1
        raise KeyError("bad")

    got = []
    with pytest.raises(KeyError):
        async for i in iterate_in_thread(make, threading.Event()):
            got.append(i)
    assert got == [1]


async def test_cancel_flag_stops_the_worker() -> None:
    cancel = threading.Event()
    produced: list[int] = []
    closed = threading.Event()

    def make(_gone: threading.Event) -> Iterator[int]:
        try:
            for i in range(10_000):
                # item 4 after the consumer's cancel, not ahead of it (before flakes40 the
                # worker ran on meanwhile: a loop 20 ms late at item 3 made 19-23 items)
                if i == 4:
                    assert cancel.wait(scaled(SOON_S))
                produced.append(i)
                time.sleep(0.001)
                yield i
        finally:
            closed.set()

    async for i in iterate_in_thread(make, cancel):
        if i == 3:
            cancel.set()
    assert await asyncio.to_thread(closed.wait, scaled(SOON_S))
    assert len(produced) < 10  # item 4 made, then stopped (not 10,000)


async def test_consumer_leaving_stops_the_worker() -> None:
    closed = threading.Event()

    def make(gone: threading.Event) -> Iterator[int]:
        try:
            i = 0
            while not gone.is_set():
                time.sleep(0.001)
                i += 1
                yield i
        finally:
            closed.set()

    agen = iterate_in_thread(make, threading.Event())
    async for i in agen:
        if i >= 3:
            break
    await agen.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(closed.wait, scaled(SOON_S))


async def test_an_engine_worker_runs_every_generation_on_one_thread() -> None:
    """A model's generations share one long-lived thread (llama.cpp's OpenMP team is per thread)."""
    worker = EngineWorker("test-worker")
    threads: list[int] = []

    def make(_gone: threading.Event) -> Iterator[int]:
        threads.append(threading.get_ident())
        yield 1

    for _ in range(3):
        assert [i async for i in iterate_in_thread(make, threading.Event(), worker=worker)] == [1]
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    worker.close()
    worker.close()  # idempotent
    with pytest.raises(RuntimeError):
        worker.submit(lambda: None)


async def test_a_generation_whose_consumer_left_while_queued_never_starts() -> None:
    worker = EngineWorker()
    release = threading.Event()
    worker.submit(release.wait)  # the worker is busy
    started = threading.Event()

    def make(_gone: threading.Event) -> Iterator[int]:
        started.set()
        yield 1

    cancel = threading.Event()
    agen = iterate_in_thread(make, cancel, worker=worker)
    first = asyncio.ensure_future(agen.__anext__())
    await asyncio.sleep(0)
    cancel.set()  # the client left while the generation waited its turn
    release.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(first, scaled(SOON_S))
    assert not started.is_set()
    worker.close()


async def test_the_worker_holds_after_the_first_item_until_it_is_pulled() -> None:
    """The first token goes out before the next token's compute takes the cores."""
    second_started = threading.Event()

    def make(_gone: threading.Event) -> Iterator[int]:
        yield 1
        second_started.set()
        yield 2

    agen = iterate_in_thread(make, threading.Event(), hold_first_s=30.0)
    assert await agen.__anext__() == 1
    # the worker waits for the consumer (bounded check of a negative)
    assert not await asyncio.to_thread(second_started.wait, 0.1)
    assert await agen.__anext__() == 2
    assert second_started.is_set()
    await agen.aclose()


@pytest.mark.parametrize("settle_s", [0.0, 0.2])
async def test_after_the_pull_the_worker_leaves_the_relay_settle_s(settle_s: float) -> None:
    """Once the first item is written, the next item's compute waits ``settle_s`` more, so
    the processes relaying the first item get a core (engines on every core)."""
    pulled_at: list[float] = []
    second_at: list[float] = []

    def make(_gone: threading.Event) -> Iterator[int]:
        yield 1
        second_at.append(time.monotonic())
        yield 2

    agen = iterate_in_thread(make, threading.Event(), hold_first_s=30.0, settle_s=settle_s)
    assert await agen.__anext__() == 1
    pulled_at.append(time.monotonic())
    assert await agen.__anext__() == 2
    waited = second_at[0] - pulled_at[0]
    assert waited >= settle_s - 0.01
    if settle_s == 0.0:
        assert waited < 0.15
    await agen.aclose()


async def test_items_that_queue_up_while_the_loop_is_busy_come_as_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tokens faster than the loop drains them: one wake-up and one batch for all of them,
    every item kept, in order."""
    wakes = count_wakes(monkeypatch)
    go, produced = threading.Event(), threading.Event()

    def make(_gone: threading.Event) -> Iterator[int]:
        yield 0
        assert go.wait(scaled(SOON_S))
        yield from range(1, 6)
        produced.set()

    agen = batches_in_thread(make, threading.Event())
    assert await agen.__anext__() == [0]
    go.set()
    assert produced.wait(scaled(SOON_S))  # blocks the loop: items 1-5 queue up meanwhile
    assert await agen.__anext__() == [1, 2, 3, 4, 5]
    with pytest.raises(StopAsyncIteration):
        await agen.__anext__()
    assert len(wakes) <= 3  # item 0, items 1-5 together, perhaps the end: not one per item


async def test_a_worker_error_comes_after_the_items_before_it_in_batches() -> None:
    def make(_gone: threading.Event) -> Iterator[int]:
        yield from range(4)
        raise KeyError("bad")

    got: list[int] = []
    with pytest.raises(KeyError):
        async for batch in batches_in_thread(make, threading.Event()):
            assert batch  # never an empty batch
            got += batch
    assert got == [0, 1, 2, 3]


async def test_many_fast_items_all_arrive_in_order() -> None:
    def make(_gone: threading.Event) -> Iterator[int]:
        yield from range(5000)

    batches = [b async for b in batches_in_thread(make, threading.Event())]
    assert [i for b in batches for i in b] == list(range(5000))
