"""The engine contract: GenerationRequest checks and the thread → loop bridge."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from LLM_Mesh.node.engines.base import GenerationRequest, Usage, iterate_in_thread, message_text


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
                produced.append(i)
                time.sleep(0.001)
                yield i
        finally:
            closed.set()

    async for i in iterate_in_thread(make, cancel):
        if i == 3:
            cancel.set()
    assert await asyncio.to_thread(closed.wait, 2)
    assert len(produced) < 10


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
    assert await asyncio.to_thread(closed.wait, 2)
