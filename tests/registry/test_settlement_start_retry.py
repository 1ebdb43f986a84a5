"""A settlement's start run again by the registry's start (``start_retry.StartRetry``, as
``app.py``'s lifespan runs ``Settlement.start``) after a connection lost part way.

Found 2026-12-06 (review37): the first try took the home's lock (``HomeLock.take``: the
predecessor's holder id read, ours written) and lost its connection recovering that
predecessor; the second try's ``take`` met its own ``flock`` (one per open file), took the
home for another registry's ("another registry runs on ..."), and the predecessor, whose
heartbeat was still fresh, was not recovered at start: its reservation stayed pending.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from LLM_Mesh.core.start_wait import StartWait
from LLM_Mesh.registry.settle_holders import HomeLock
from LLM_Mesh.registry.start_retry import StartRetry
from LLM_Mesh.registry.store import SqlStore
from tests.registry.settlement_fixtures import USER, crashed_on_home, settlement_rows


async def _no_sleep(_: float) -> None:
    return None


async def test_a_start_run_again_after_a_lost_connection_still_recovers_its_predecessor(
    store: SqlStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    second = await crashed_on_home(store, tmp_path)
    recover, lost = second.recover, [ConnectionResetError(104, "Connection reset by peer")]

    async def recover_losing_once(holders: list[str | None] | None = None) -> tuple[int, int]:
        if holders is not None and lost:  # the predecessor's recovery: the connection lost
            raise lost.pop()
        return await recover(holders)

    second.recover = recover_losing_once  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)
    start = StartRetry(None, StartWait(deadline_s=5.0), sleep=_no_sleep)
    await start.run("starting the settlement", second.start)
    try:
        assert start.retries == 1 and not lost
        states = {k[0]: r["state"] for k, r in (await settlement_rows(store)).items()}
        assert states == {"r1": "lapsed", "r2": "settled"}
        assert await second.balance(USER) == (9_900, 0)
        said = " ".join(r.getMessage() for r in caplog.records)
        assert "another registry" not in said, said
    finally:
        await second.stop()


def test_taking_the_lock_again_in_the_same_process_says_the_same_holder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = HomeLock(tmp_path)
    assert first.take("holder-a") is None
    first.release()  # its process gone
    lock = HomeLock(tmp_path)
    try:
        assert lock.take("holder-b") == "holder-a"
        caplog.set_level(logging.INFO)
        assert lock.take("holder-b") == "holder-a"  # run again: still its predecessor
        assert lock.held and not caplog.records
    finally:
        lock.release()
    last = HomeLock(tmp_path)
    assert last.take("holder-c") == "holder-b"
    last.release()
