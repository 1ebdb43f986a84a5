"""The checkpointer's loop when a round fails (``Checkpointer._run``).

A lost database connection (PostgreSQL's failover, restart, ``pg_terminate_backend``) is an
expected transient: one WARNING line naming the error, no traceback, and the loop goes on.
Anything else stays an ERROR with its traceback (found 2026-12-07, loops41: every round
that lost its connection logged a traceback). Signing itself: ``test_ledger.py``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import InterfaceError as SaInterfaceError

from LLM_Mesh.registry.ledger_signer import Checkpointer
from tests.waiting import SOON_S, scaled

LOGGER = "LLM_Mesh.registry.ledger_signer"


def _terminated() -> Exception:
    """A connection cut mid-query as SQLAlchemy's asyncpg dialect raises it."""
    driver = asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    )
    adapted = Exception(str(driver))
    adapted.__cause__ = driver
    return SaInterfaceError("select ...", None, adapted)


class _Ledger:
    """A ledger whose first read of the newest checkpoint raises ``error``; then empty."""

    def __init__(self, error: Exception) -> None:
        self.error: Exception | None = error
        self.failed = asyncio.Event()

    async def latest_checkpoint(self) -> None:
        error, self.error = self.error, None
        if error is not None:
            self.failed.set()
            raise error

    async def head(self) -> tuple[int, bytes]:
        return 0, b""  # nothing to sign


async def _one_failed_round(error: Exception) -> None:
    ledger = _Ledger(error)
    signer = Checkpointer(cast(Any, ledger), Ed25519PrivateKey.generate(), "test", interval_s=3600)
    signer.start()
    try:
        signer.note_append(1)  # wakes the loop: its round fails
        await asyncio.wait_for(ledger.failed.wait(), scaled(SOON_S))
        await asyncio.sleep(0)  # the loop logs the failure
        task = signer._task
        assert task is not None and not task.done()  # the loop goes on
    finally:
        await signer.stop()  # its last checkpoint finds nothing to sign


async def test_a_lost_connection_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    await _one_failed_round(_terminated())
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert "Traceback" not in caplog.text
    said = record.getMessage()
    assert said.startswith("ledger checkpoint failed, the database's connection lost or ")
    assert said.endswith("; trying again later")
    assert "InterfaceError" in said and "closed in the middle of operation" in said


async def test_any_other_error_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    await _one_failed_round(RuntimeError("a bug"))
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "ledger checkpoint failed; trying again later"
    assert record.exc_info is not None and "RuntimeError: a bug" in caplog.text
