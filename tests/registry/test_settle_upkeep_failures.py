"""The settler's and the upkeep's repeated rounds failing (a database away): the first
failure of a run logged with its traceback, then a line a minute, and the recovery once
(found 2026-12-04: a replica whose PostgreSQL was away logged "settlement: upkeep failed"
and "settling N requests failed" with whole tracebacks every few seconds)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from LLM_Mesh.registry import settle_upkeep
from LLM_Mesh.registry.settle_upkeep import SettleUpkeep

LOGGER = "LLM_Mesh.registry.settlement"


def _bare() -> SettleUpkeep:
    return SettleUpkeep.__new__(SettleUpkeep)


async def test_the_upkeep_loop_logs_a_run_of_failures_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = _bare()
    rounds = 0
    fifty = asyncio.Event()

    async def upkeep() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 50:
            fifty.set()
        raise ConnectionRefusedError("the database is away")

    s.beat_s = 0.0
    s._settling = asyncio.Lock()
    s.upkeep = upkeep  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger=LOGGER)
    task = asyncio.create_task(s._upkeep_loop())
    await asyncio.wait_for(fifty.wait(), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    lines = [r for r in caplog.records if r.name == LOGGER]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].exc_info is not None
    assert lines[0].getMessage() == "settlement: upkeep failed"


def test_a_run_is_reminded_a_minute_later_and_its_end_said(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _bare()
    now = [1000.0]
    monkeypatch.setattr(settle_upkeep.time, "monotonic", lambda: now[0])
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(90):  # a round a second for 90 s
        try:
            raise OSError("connection refused")
        except OSError:
            s._failed("settling", "settling 3 requests failed; retrying")
        now[0] += 1.0
    lines = [r for r in caplog.records if r.name == LOGGER]
    assert [r.exc_info is not None for r in lines] == [True, False]
    assert "still failing, 61 tries over 60 s" in lines[1].getMessage()
    caplog.clear()
    s._worked("settling")
    s._worked("settling")  # a success after a success: nothing to say
    assert [r.getMessage() for r in caplog.records] == [
        "settlement: settling works again, after 90 failed tries over 90 s"
    ]
