"""The settler's and the upkeep's repeated rounds failing (a database away): the first
failure of a run logged once (a lost connection in one WARNING line, anything else with its
traceback), 60 s into it one ERROR, and the recovery once at INFO, as every loop's
(``failed_rounds.RoundLog``, ``first_only``; found 2026-12-04: a replica whose PostgreSQL
was away logged "settlement: upkeep failed" and "settling N requests failed" with whole
tracebacks every few seconds; alarm42: before, a reminder a minute and a WARNING at the
end, a scheme of their own)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

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
    assert (lines[0].levelno, lines[0].getMessage()) == (
        logging.WARNING,
        "settlement: upkeep failed, the database's connection lost or refused "
        "(ConnectionRefusedError: the database is away); tried again in 0 s",
    )
    assert lines[0].funcName == "_upkeep_loop"  # the loop's line, not the log's helper


def test_a_run_is_one_error_past_60_s_and_its_end_one_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = _bare()
    now = [1000.0]
    s.round_clock = lambda: now[0]  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(90):  # a round a second for 90 s, a bug's error (not the store's)
        try:
            raise RuntimeError("a bug")
        except RuntimeError:
            s._failed("settling", "settling 3 requests failed", "retrying")
        now[0] += 1.0
    lines = [r for r in caplog.records if r.name == LOGGER]
    assert [(r.levelno, r.exc_info is not None) for r in lines] == [
        (logging.ERROR, True),  # the first in full
        (logging.ERROR, False),  # 60 s into the run
    ]
    assert lines[0].getMessage() == "settlement: settling 3 requests failed; retrying"
    assert (
        lines[1]
        .getMessage()
        .startswith(
            "settlement settling: still failing after 60 s, 61 failed rounds in a row (since "
        )
    )
    assert s.sync_failing_s() is None  # another task's run
    caplog.clear()
    s._worked("settling")
    s._worked("settling")  # a success after a success: nothing to say
    assert [(r.levelno, r.getMessage().split(" (since")[0]) for r in caplog.records] == [
        (logging.INFO, "settlement settling: recovered after 90 failed rounds over 90 s")
    ]
