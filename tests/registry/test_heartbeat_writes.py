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
from datetime import datetime, timezone
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.exc import DBAPIError

from LLM_Mesh.registry.heartbeat_writes import HeartbeatWriter

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
    """A store whose heartbeat batch raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def touch_heartbeats(
        self, items: Sequence[tuple[str, datetime, str, int]], heard_by: str | None = None
    ) -> None:
        self.calls += 1
        raise self.error


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
    assert said.startswith("could not record 2 heartbeats in the store, the database's ")
    assert "DBAPIError" in said and "closed in the middle of operation" in said


async def test_any_other_error_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    await _one_failed_batch(RuntimeError("a bug"))
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "could not record 2 heartbeats in the store"
    assert record.exc_info is not None and "RuntimeError: a bug" in caplog.text
