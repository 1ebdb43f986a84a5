"""``cli/overall_timeout.py``: one ``--timeout`` over a command's several steps."""

from __future__ import annotations

import asyncio
import time

import pytest

from LLM_Mesh.cli.overall_timeout import Deadline, within
from LLM_Mesh.errors import MeshError


async def _nap(s: float) -> str:
    await asyncio.sleep(s)
    return "done"


def test_the_steps_of_a_deadline_share_one_clock() -> None:
    """The first step takes 1.5 s of 3: the second, alone within any per-step bound, gets
    what is left and is cut there, not sooner, the error naming the whole --timeout and its
    step. (The margins were 0.2 s, which a loaded box's stall can take: flaky37.)"""
    clock = Deadline("receipt verify", 3)
    first = clock.then("http://reg.test", "the receipt was not checked")
    assert first(_nap(1.5)) == "done"
    second = first.then("http://reg.test", "its ledger entries were not checked")
    start = time.monotonic()
    with pytest.raises(MeshError) as exc:
        second(_nap(30))
    assert clock.end is not None and time.monotonic() >= clock.end - 0.01  # its end...
    assert time.monotonic() - start < 3  # ...not a new 3 s of its own
    assert str(exc.value).startswith(
        "receipt verify: not done within --timeout 3 s: http://reg.test answered too slowly "
        "(or asked to wait again and again); its ledger entries were not checked. "
    )


def test_a_deadline_of_0_is_no_limit_and_a_spent_one_runs_nothing_more() -> None:
    assert Deadline("receipt verify", 0).then("u", "x")(_nap(0.05)) == "done"
    spent = Deadline("receipt verify", 0.01, end=time.monotonic() - 1)  # its time is up
    with pytest.raises(MeshError, match=r"not done within --timeout 0\.01 s"):
        spent(_nap(1))


async def test_within_passes_on_a_timeout_that_is_not_its_own() -> None:
    """A step's own bound (a read timeout inside the work) is the step's error, not the
    --timeout's."""

    async def own() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)

    with pytest.raises(TimeoutError):
        await within(own(), 5, "http://reg.test")
