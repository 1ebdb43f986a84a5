"""The admission queue: slots, a bounded FIFO wait, 429 beyond, paused/draining states."""

from __future__ import annotations

import asyncio

import pytest

from LLM_Mesh.core.queue_wait import ServiceTime
from LLM_Mesh.errors import ModelUnavailable, Overloaded
from LLM_Mesh.node.admission import Admission, AdmissionState
from tests.waiting import SOON_S, scaled


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_slots_then_queue_then_overloaded() -> None:
    adm = Admission(max_concurrency=2, max_queue=1, service=ServiceTime(prior_s=3.0))
    await adm.acquire()
    await adm.acquire()
    assert (adm.in_flight, adm.queued) == (2, 0)
    waiter = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0)
    assert adm.queued == 1
    with pytest.raises(Overloaded) as exc:
        await adm.acquire()
    # 2 running + 1 queued at the 3 s prior, 2 at a time: 4.5 s
    assert exc.value.retry_after == 5 and exc.value.status == 429
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
    await asyncio.wait_for(idle, scaled(SOON_S))


def test_bad_limits_and_unmatched_release() -> None:
    with pytest.raises(ValueError):
        Admission(max_concurrency=0)
    with pytest.raises(ValueError):
        Admission(max_queue=-1)
    with pytest.raises(RuntimeError):
        Admission().release()


async def test_retry_after_is_the_measured_drain_time_of_the_queue_ahead() -> None:
    """Defect 11: the 429 says when the queue ahead will have drained, not 1 s."""
    clock = FakeClock()
    adm = Admission(max_concurrency=1, max_queue=8, clock=clock)
    for seconds in (2.0, 2.0):  # two requests measured at 2 s each
        started = await adm.acquire()
        clock.now += seconds
        adm.release(started, sample=True)
    assert adm.service.measured_s == pytest.approx(2.0)
    running = await adm.acquire()
    queued = [asyncio.create_task(adm.acquire()) for _ in range(8)]
    await asyncio.sleep(0)
    assert adm.queued == 8
    clock.now += 0.5  # the running one is 0.5 s in
    with pytest.raises(Overloaded) as exc:
        await adm.acquire()
    # 1.5 s left on the running one + 8 × 2 s queued
    assert exc.value.extra["wait_s"] == pytest.approx(17.5)
    assert exc.value.retry_after == 18
    adm.release(running, sample=True)
    assert adm.service.measured_s == pytest.approx(2.0 + 0.2 * (0.5 - 2.0))
    for t in queued:
        adm.release(await t)
    assert adm.idle


async def test_only_finished_requests_are_service_time_samples() -> None:
    clock = FakeClock()
    adm = Admission(clock=clock)
    started = await adm.acquire()
    clock.now += 0.01  # cancelled at once: says nothing about the service time
    adm.release(started, sample=False)
    assert adm.service.measured_s is None
    async with adm.slot():
        clock.now += 1.5
    assert adm.service.measured_s == pytest.approx(1.5)


async def test_a_slot_handed_over_is_timed_from_the_handover() -> None:
    clock = FakeClock()
    adm = Admission(max_concurrency=1, max_queue=1, clock=clock)
    first = await adm.acquire()
    waiter = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0)
    clock.now += 3.0
    adm.release(first, sample=True)
    second = await waiter
    assert second == clock.now
    clock.now += 1.0
    adm.release(second, sample=True)
    assert adm.service.samples == 2 and adm.service.measured_s == pytest.approx(3.0 - 0.2 * 2.0)


# -- keyed requests first (core/priority.py) -----------------------------------------------


async def _line_up(adm: Admission, classes: str, order: list[str]) -> list[asyncio.Task[None]]:
    """Queue one waiter per letter (``k`` keyed, ``a`` ordinary), in that order."""

    async def worker(label: str) -> None:
        started = await adm.acquire(keyed=label.startswith("k"))
        order.append(label)
        adm.release(started)

    tasks = []
    for i, c in enumerate(classes):
        tasks.append(asyncio.create_task(worker(f"{c}{i}")))
        await asyncio.sleep(0)
    return tasks


async def test_a_keyed_waiter_overtakes_queued_ordinary_ones() -> None:
    adm = Admission(max_concurrency=1, max_queue=8)
    held = await adm.acquire()
    order: list[str] = []
    tasks = await _line_up(adm, "aaak", order)
    assert adm.queued == 4
    adm.release(held)
    await asyncio.gather(*tasks)
    assert order == ["k3", "a0", "a1", "a2"]
    assert adm.idle


async def test_keyed_and_ordinary_waiters_each_first_come_first_served() -> None:
    adm = Admission(max_concurrency=1, max_queue=8)
    held = await adm.acquire()
    order: list[str] = []
    tasks = await _line_up(adm, "akakak", order)
    adm.release(held)
    await asyncio.gather(*tasks)
    assert order == ["k1", "k3", "k5", "a0", "a2", "a4"]


async def test_an_ordinary_waiter_is_passed_over_at_most_n_times() -> None:
    from LLM_Mesh.core.priority import MAX_PASSED_OVER

    adm = Admission(max_concurrency=1, max_queue=16)
    held = await adm.acquire()
    order: list[str] = []
    tasks = await _line_up(adm, "a" + "k" * (MAX_PASSED_OVER + 3), order)
    adm.release(held)
    await asyncio.gather(*tasks)
    assert order.index("a0") == MAX_PASSED_OVER


async def test_an_ordinary_waiter_waiting_too_long_goes_next() -> None:
    from LLM_Mesh.core.priority import MAX_ORDINARY_WAIT_S

    clock = FakeClock()
    adm = Admission(max_concurrency=1, max_queue=8, clock=clock)
    held = await adm.acquire()
    order: list[str] = []
    tasks = await _line_up(adm, "a", order)
    clock.now += MAX_ORDINARY_WAIT_S
    tasks += await _line_up(adm, "k", order)
    adm.release(held)
    await asyncio.gather(*tasks)
    assert order == ["a0", "k0"]


async def test_a_cancelled_keyed_waiter_gives_its_turn_to_the_next() -> None:
    adm = Admission(max_concurrency=1, max_queue=8)
    held = await adm.acquire()
    order: list[str] = []
    tasks = await _line_up(adm, "ak", order)
    tasks[1].cancel()
    await asyncio.sleep(0)
    assert adm.queued == 1
    adm.release(held)
    await tasks[0]
    assert order == ["a0"]
    assert adm.idle


# --- places kept for keyed requests (core/priority.kept_places) ----------------------------


async def _flood(adm: Admission, n: int) -> list[asyncio.Task[float]]:
    """``n`` ordinary requests queued behind the held slot."""
    tasks = [asyncio.create_task(adm.acquire()) for _ in range(n)]
    await asyncio.sleep(0)
    return tasks


async def test_an_anonymous_flood_leaves_a_keyed_request_a_place_and_it_is_served() -> None:
    """An anonymous flood filled the line and a keyed request got 429 like any other
    (found 2026-12-05, review29): the last places are kept for it, and it goes first."""
    adm = Admission(max_concurrency=1, max_queue=8)
    held = await adm.acquire(keyed=True)  # the node has seen a keyed request
    flood = await _flood(adm, 6)
    with pytest.raises(Overloaded) as exc:  # only the 2 kept places are free
        await asyncio.wait_for(adm.acquire(), scaled(SOON_S))
    assert exc.value.status == 429 and exc.value.retry_after >= 1
    assert "kept for keyed" in exc.value.message
    assert adm.queued == 6
    keyed = asyncio.create_task(adm.acquire(keyed=True))
    await asyncio.sleep(0)
    assert adm.queued == 7
    adm.release(held)
    started = await asyncio.wait_for(keyed, scaled(SOON_S))  # served next, before the flood
    assert adm.in_flight == 1 and adm.queued == 6
    adm.release(started)
    for t in flood:
        adm.release(await asyncio.wait_for(t, scaled(SOON_S)))
    assert adm.idle


async def test_keyed_requests_may_take_every_place() -> None:
    adm = Admission(max_concurrency=1, max_queue=4)
    await adm.acquire(keyed=True)
    tasks = [asyncio.create_task(adm.acquire(keyed=True)) for _ in range(4)]
    await asyncio.sleep(0)
    assert adm.queued == 4
    with pytest.raises(Overloaded):
        await asyncio.wait_for(adm.acquire(keyed=True), 2.0)  # full is full for everyone
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_heartbeat_says_how_long_ago_the_last_keyed_request_came() -> None:
    """``keyed_age_s``: while places are kept (every gateway replica counts them from it,
    not only the one that sent the keyed request), else ``None``."""
    from LLM_Mesh.core.priority import KEYED_SEEN_S

    clock = FakeClock()
    adm = Admission(max_concurrency=1, max_queue=8, clock=clock)
    assert adm.keyed_age_s() is None
    adm.release(await adm.acquire())  # an ordinary request keeps nothing
    assert adm.keyed_age_s() is None
    adm.release(await adm.acquire(keyed=True))
    clock.now += 12.5
    assert adm.keyed_age_s() == 12.5
    clock.now += KEYED_SEEN_S
    assert adm.keyed_age_s() is None


async def test_without_keyed_requests_the_whole_line_is_anyones_as_before() -> None:
    """An older gateway never says ``keyed``: the node keeps no place, as before; nor
    once its last keyed request is KEYED_SEEN_S old."""
    from LLM_Mesh.core.priority import KEYED_SEEN_S

    clock = FakeClock()
    adm = Admission(max_concurrency=1, max_queue=8, clock=clock)
    held = await adm.acquire()
    flood = await _flood(adm, 8)
    assert adm.queued == 8
    with pytest.raises(Overloaded) as exc:
        await asyncio.wait_for(adm.acquire(), 2.0)
    assert "kept" not in exc.value.message
    for t in flood:
        t.cancel()
    await asyncio.gather(*flood, return_exceptions=True)
    adm.release(held)
    adm.release(await adm.acquire(keyed=True))  # one keyed request: places kept now
    held = await adm.acquire()
    flood = await _flood(adm, 8)
    assert adm.queued == 6
    clock.now += KEYED_SEEN_S  # long ago: the whole line again
    flood += await _flood(adm, 2)
    assert adm.queued == 8
    for t in flood:
        t.cancel()
    await asyncio.gather(*flood, return_exceptions=True)
    adm.release(held)
    assert adm.idle


async def test_keyed_waiters_in_the_kept_places_leave_the_others_to_anyone() -> None:
    """Places are kept from ordinary requests, not for keyed ones alone: a line that keyed
    waiters fill still takes an ordinary request into a free place."""
    adm = Admission(max_concurrency=1, max_queue=4)
    held = await adm.acquire(keyed=True)
    keyed = [asyncio.create_task(adm.acquire(keyed=True)) for _ in range(3)]
    await asyncio.sleep(0)
    anon = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0)
    assert adm.queued == 4 and not anon.done()
    for t in [*keyed, anon]:
        t.cancel()
    await asyncio.gather(*keyed, anon, return_exceptions=True)
    adm.release(held)
    assert adm.idle
