"""``task_stop.cancel_and_wait``: how every service loop's ``stop`` ends its task."""

from __future__ import annotations

import asyncio

import pytest

from LLM_Mesh.task_stop import cancel_and_wait


async def test_a_running_task_is_cancelled_and_waited_for_without_its_cancel() -> None:
    cleaned: list[str] = []

    async def loop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0)  # its clean-up takes a loop step: waited for
            cleaned.append("done")

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled() and cleaned == ["done"]


async def test_none_and_an_ended_task_are_nothing_to_stop() -> None:
    await cancel_and_wait(None)
    task = asyncio.create_task(asyncio.sleep(0, result=1))
    await task
    await cancel_and_wait(task)
    assert task.result() == 1


async def test_an_error_the_task_ended_with_is_raised() -> None:
    async def broken() -> None:
        raise RuntimeError("the loop broke")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="the loop broke"):
        await cancel_and_wait(task)


async def test_a_task_that_ignores_its_cancel_is_waited_for_to_its_end() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)
        return "finished"

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.done() and task.result() == "finished"


@pytest.mark.skipif(not hasattr(asyncio.Task, "cancelling"), reason="Task.cancelling: 3.11+")
async def test_a_cancel_of_the_caller_while_it_waits_is_raised_not_swallowed() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.5)  # a clean-up the caller is cancelled during

    after: list[str] = []

    async def stopper(task: asyncio.Task[None]) -> None:
        await cancel_and_wait(task)
        after.append("went on")  # must not run: the caller itself was cancelled

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    caller = asyncio.create_task(stopper(task))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled() and after == []


async def test_a_stop_in_a_cancelled_callers_clean_up_still_waits_and_goes_on() -> None:
    async def service() -> None:
        await asyncio.sleep(60)

    steps: list[str] = []

    async def main(task: asyncio.Task[None]) -> None:
        try:
            await asyncio.sleep(60)
        finally:  # as after Ctrl-C: this task's cancel is being handled
            await cancel_and_wait(task)
            steps.append("stopped, clean-up goes on")

    task = asyncio.create_task(service())
    caller = asyncio.create_task(main(task))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert task.cancelled() and steps == ["stopped, clean-up goes on"]
