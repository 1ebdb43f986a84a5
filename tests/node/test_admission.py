"""The admission queue: slots, a bounded FIFO wait, 429 beyond, paused/draining states."""

from __future__ import annotations

import asyncio

import pytest

from LLM_Mesh.errors import ModelUnavailable, Overloaded
from LLM_Mesh.node.admission import Admission, AdmissionState


async def test_slots_then_queue_then_overloaded() -> None:
    adm = Admission(max_concurrency=2, max_queue=1, retry_after=3)
    await adm.acquire()
    await adm.acquire()
    assert (adm.in_flight, adm.queued) == (2, 0)
    waiter = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0)
    assert adm.queued == 1
    with pytest.raises(Overloaded) as exc:
        await adm.acquire()
    assert exc.value.retry_after == 3 and exc.value.status == 429
    adm.release()
    await waiter
    assert (adm.in_flight, adm.queued) == (2, 0)
    adm.release()
    adm.release()
    assert adm.idle


async def test_waiters_are_served_in_order() -> None:
    adm = Admission(max_concurrency=1, max_queue=5)
    order: list[int] = []
    await adm.acquire()

    async def worker(i: int) -> None:
        async with adm.slot():
            order.append(i)

    tasks = [asyncio.create_task(worker(i)) for i in range(4)]
    await asyncio.sleep(0)
    assert adm.queued == 4
    adm.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    assert adm.idle


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    adm = Admission(max_concurrency=1, max_queue=1)
    await adm.acquire()
    waiter = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert adm.queued == 0
    adm.release()
    assert adm.idle


async def test_a_waiter_cancelled_after_the_handover_frees_its_slot() -> None:
    adm = Admission(max_concurrency=1, max_queue=1)
    await adm.acquire()
    waiter = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0)
    adm.release()  # hands the slot to the waiter...
    waiter.cancel()  # ...which gives up before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert adm.idle


async def test_paused_and_draining_take_nothing_new() -> None:
    adm = Admission(max_concurrency=1, max_queue=1)
    await adm.acquire()
    adm.pause()
    assert adm.state is AdmissionState.PAUSED
    with pytest.raises(ModelUnavailable) as exc:
        await adm.acquire()
    assert exc.value.status == 503 and exc.value.retry_after > 0
    adm.drain()
    with pytest.raises(ModelUnavailable, match="draining"):
        await adm.acquire()
    assert adm.in_flight == 1  # in-flight work goes on
    adm.release()
    await asyncio.wait_for(adm.wait_idle(), 1)
    adm.resume()
    async with adm.slot():
        assert adm.in_flight == 1


async def test_wait_idle_waits_for_in_flight() -> None:
    adm = Admission()
    await adm.acquire()
    idle = asyncio.create_task(adm.wait_idle())
    await asyncio.sleep(0)
    assert not idle.done()
    adm.release()
    await asyncio.wait_for(idle, 1)


def test_bad_limits_and_unmatched_release() -> None:
    with pytest.raises(ValueError):
        Admission(max_concurrency=0)
    with pytest.raises(ValueError):
        Admission(max_queue=-1)
    with pytest.raises(RuntimeError):
        Admission().release()
