"""The heartbeat writer's failed batch in the log (``HeartbeatWriter._flush``).

A lost database connection (PostgreSQL's failover, restart, ``pg_terminate_backend``) is an
expected transient: one WARNING line naming the error, no traceback; the next heartbeat
writes again. Anything else stays an ERROR with its traceback (found 2026-12-07, loops41:
every batch that lost its connection logged a traceback). Batching itself:
``test_store_replicas.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.exc import DBAPIError

from LLM_Mesh.registry.heartbeat_writes import DROPPED, HeartbeatWriter

LOGGER = "LLM_Mesh.registry.heartbeat_writes"
T0 = datetime(2026, 12, 7, tzinfo=timezone.utc)


def _terminated() -> Exception:
    """A connection cut mid-query as SQLAlchemy's asyncpg dialect raises it."""
    driver = asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    )
    adapted = Exception(str(driver))
    adapted.__cause__ = driver
    return DBAPIError("update nodes", None, adapted)


class _FailingStore:
    """A store whose heartbeat batch raises ``error`` (while it is set); ``written``: the
    rows of each batch it took."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.calls = 0
        self.written: list[list[tuple[str, datetime, str, int]]] = []

    async def touch_heartbeats(
        self,
        items: Sequence[tuple[str, datetime, str, int]],
        heard_by: str | None = None,
        **_told: Any,
    ) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        self.written.append(list(items))


async def _one_failed_batch(error: Exception) -> HeartbeatWriter:
    store = _FailingStore(error)
    writer = HeartbeatWriter(cast(Any, store))
    writer.touch("n1", T0, "online")
    writer.touch("n2", T0, "online")
    await writer.flush()
    assert (store.calls, writer.failed_batches) == (1, 1)
    return writer


async def test_a_lost_connection_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    await _one_failed_batch(_terminated())
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert "Traceback" not in caplog.text
    said = record.getMessage()
    assert said.startswith("could not record 2 heartbeats (2 nodes) in the store, the database's ")
    assert "DBAPIError" in said and "closed in the middle of operation" in said


async def test_any_other_error_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    await _one_failed_batch(RuntimeError("a bug"))
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == f"could not record 2 heartbeats (2 nodes) in the store; {DROPPED}"
    assert record.exc_info is not None and "RuntimeError: a bug" in caplog.text


async def test_the_warning_says_the_failed_batch_is_dropped_and_how_many(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-07 (session 42's note): the WARNING did not say what became of the
    failed batch's heartbeats. They are dropped (nothing puts them back: the next batch
    holds only what came after), 3 heartbeats of 2 nodes here, and it says so."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    store = _FailingStore(_terminated())
    writer = HeartbeatWriter(cast(Any, store))
    writer.touch("n1", T0, "online")
    writer.touch("n2", T0, "online")
    writer.touch("n1", T0 + timedelta(seconds=5), "online")
    await writer.flush()
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    said = record.getMessage()
    assert said.startswith("could not record 3 heartbeats (2 nodes) in the store, ")
    assert said.endswith("; dropped, not written again: each node's next heartbeat records its "
                         "time and state, its uptime since the last one recorded credited up to "
                         "the heartbeat expiry")  # fmt: skip
    store.error = None  # the database is back: the next batch is the next heartbeat only
    writer.touch("n2", T0 + timedelta(seconds=10), "online")
    await writer.flush()
    assert store.written == [[("n2", T0 + timedelta(seconds=10), "online", 0)]]


async def test_an_outage_of_the_writer_is_one_error_past_60_s_and_its_end_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    store = _FailingStore(_terminated())
    writer = HeartbeatWriter(cast(Any, store))
    now = [0.0]
    writer.round_log.clock = lambda: now[0]
    for i in range(40):  # a batch every 2 s for 80 s
        writer.touch("n1", T0 + timedelta(seconds=2 * i), "online")
        await writer.flush()
        now[0] += 2.0
    store.error = None
    writer.touch("n1", T0 + timedelta(seconds=80), "online")
    await writer.flush()
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    # loops43: the run's first batch only (first_only: batches go as fast as the store
    # takes them); before, each failed batch's WARNING, 30 till the ERROR
    assert [lv for lv, _ in said].count(logging.WARNING) == 1
    assert [lv for lv, _ in said].count(logging.DEBUG) == 39
    (error,) = [m for lv, m in said if lv == logging.ERROR]
    assert error.startswith("heartbeat writer: still failing after 60 s, 31 failed rounds in a row")
    assert said[-1][0] == logging.INFO
    assert said[-1][1].startswith("heartbeat writer: recovered after 40 failed rounds over 80 s")
