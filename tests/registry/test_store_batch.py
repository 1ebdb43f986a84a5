"""``StoreBatch``'s loop: how a failed run is logged (no database: a fake batch).

Found 2026-12-07 (ops41b): after ``pg_terminate_backend`` on the registry's database the usage
audit's batch logged an ERROR with a full traceback ("connection was closed in the middle of
operation"), an expected transient on PostgreSQL whose run is simply tried again.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import InterfaceError as SaInterfaceError

from LLM_Mesh.registry.store_batch import StoreBatch
from tests.waiting import SOON_S, scaled


def _terminated(wrapper: type[DBAPIError]) -> Exception:
    """A connection cut mid-query as SQLAlchemy's asyncpg dialect raises it: its DBAPI
    error (raised ``from`` the driver's) wrapped in SQLAlchemy's ``wrapper`` (``DBAPIError``
    after ``pg_terminate_backend`` of a ``pg_sleep``, seen 2026-12-07 on PostgreSQL 15)."""
    driver = asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    )
    adapted = Exception(str(driver))
    adapted.__cause__ = driver
    return wrapper("select 1", None, adapted)


class _Failing(StoreBatch):
    """A batch whose one run raises ``exc``, then the loop ends."""

    what = "fake batch"

    def __init__(self, exc: Exception) -> None:
        super().__init__(flush_s=0.001, stop_s=1.0)
        self.exc = exc

    async def tick(self) -> object:
        self._closing = True  # the loop ends after this run
        raise self.exc

    async def flush(self) -> object:
        return None

    def pending_note(self) -> str:
        return "nothing"


async def _one_run(batch: _Failing) -> None:
    batch.start()
    task = batch._task
    assert task is not None
    await asyncio.wait_for(task, scaled(SOON_S))
    assert batch.failures == 1


@pytest.mark.parametrize("wrapper", [DBAPIError, SaInterfaceError])
async def test_a_lost_connection_is_one_warning_line_without_a_traceback(
    wrapper: type[DBAPIError], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="LLM_Mesh.registry.store_batch")
    await _one_run(_Failing(_terminated(wrapper)))
    records = [r for r in caplog.records if r.name == "LLM_Mesh.registry.store_batch"]
    assert [r.levelno for r in records] == [logging.WARNING]
    (record,) = records
    assert record.exc_info is None and "Traceback" not in caplog.text
    said = record.getMessage()
    assert "\n" not in said
    assert said.startswith("fake batch: ")
    assert wrapper.__name__ in said and "closed in the middle of operation" in said
    assert "tried again" in said


async def test_a_refused_connection_is_a_warning_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="LLM_Mesh.registry.store_batch")
    await _one_run(_Failing(ConnectionRefusedError(111, "Connection refused")))
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]


async def test_an_unexpected_error_is_an_error_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="LLM_Mesh.registry.store_batch")
    await _one_run(_Failing(RuntimeError("a bug")))
    (record,) = [r for r in caplog.records if r.name == "LLM_Mesh.registry.store_batch"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "Traceback" in caplog.text and "RuntimeError: a bug" in caplog.text


class _Outage(StoreBatch):
    """A batch whose runs fail ``failing`` times (2 s apart on its rounds' clock), then one
    succeeds and the loop ends."""

    what = "fake batch"

    def __init__(self, failing: int) -> None:
        super().__init__(flush_s=0.001, stop_s=1.0)
        self.failing, self.now = failing, 0.0
        self.round_log.clock = lambda: self.now

    async def tick(self) -> object:
        self.now += 2.0
        if self.failing:
            self.failing -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        self._closing = True
        return None

    async def flush(self) -> object:
        return None

    def pending_note(self) -> str:
        return "nothing"


async def test_a_long_outage_is_one_error_then_its_end_one_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-07 (session 42's note): the usage audit's batch, every 2 s, logged a
    WARNING each run for as long as PostgreSQL was away, never an ERROR; then (alarm42) each
    run's WARNING till the ERROR, 30 of them: now the run's first only (loops43)."""
    caplog.set_level(logging.DEBUG, logger="LLM_Mesh.registry.store_batch")
    batch = _Outage(failing=40)
    batch.start()
    assert batch._task is not None
    await asyncio.wait_for(batch._task, scaled(SOON_S))
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [lv for lv, _ in said].count(logging.WARNING) == 1  # before (alarm42): 30
    assert [lv for lv, _ in said].count(logging.DEBUG) == 39
    (error,) = [m for lv, m in said if lv == logging.ERROR]
    assert error.startswith("fake batch: still failing after 60 s, 31 failed rounds in a row")
    assert said[-1][0] == logging.INFO
    assert said[-1][1].startswith("fake batch: recovered after 40 failed rounds over 80 s")
