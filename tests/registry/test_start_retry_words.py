"""What a failed round and a start's retry say happened to the database: a connection lost
or refused, a timeout, SQLite's lock, each in its own words (``start_retry.store_trouble``).

Found 2026-12-07 (session 42's note): a bare ``TimeoutError`` and SQLite's "database is
locked" were logged as "the database's connection lost or refused", which neither is.
"""

from __future__ import annotations

import logging
import sqlite3

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from LLM_Mesh.core.start_wait import StartWait
from LLM_Mesh.errors import StoreUnavailable
from LLM_Mesh.registry.start_retry import (
    LOCKED,
    LOST,
    TIMED_OUT,
    UNAVAILABLE,
    StartRetry,
    log_failed_round,
    store_trouble,
)

LOOP_LOG = logging.getLogger("tests.a_loop_words")
URL = "postgresql+asyncpg://mesh:hunter2@db.example:5432/mesh"


def _locked() -> Exception:
    """SQLite's write lock held past its busy timeout, as SQLAlchemy raises it."""
    return OperationalError("UPDATE nodes", None, sqlite3.OperationalError("database is locked"))


def _terminated() -> Exception:
    driver = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    adapted = Exception(str(driver))
    adapted.__cause__ = driver
    return DBAPIError("select 1", None, adapted)


def _timed_out_then_lost() -> Exception:
    """A timeout whose handling found the connection gone: the connection's loss counts."""
    try:
        raise TimeoutError()
    except TimeoutError:
        try:
            raise _terminated()
        except DBAPIError as exc:
            return exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError(), TIMED_OUT),
        (_locked(), LOCKED),
        (_terminated(), LOST),
        (ConnectionRefusedError(111, "Connection refused"), LOST),
        (StoreUnavailable("the registry's database is busy"), UNAVAILABLE),
        (_timed_out_then_lost(), LOST),
        (RuntimeError("a bug"), None),
    ],
)
def test_store_trouble_names_what_happened(exc: BaseException, kind: str | None) -> None:
    assert store_trouble(exc) == kind


def _round_line(exc: Exception, caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    caplog.set_level(logging.DEBUG, logger=LOOP_LOG.name)
    try:
        raise exc
    except Exception as caught:
        log_failed_round(LOOP_LOG, caught, "the round failed", "trying again later")
    (record,) = caplog.records
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    return record


def test_a_timed_out_round_says_the_database_timed_out(caplog: pytest.LogCaptureFixture) -> None:
    said = _round_line(TimeoutError(), caplog).getMessage()
    assert said == "the round failed, the database timed out (TimeoutError); trying again later"
    assert "connection" not in said


def test_a_locked_sqlite_round_says_the_database_is_locked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    said = _round_line(_locked(), caplog).getMessage()
    assert said.startswith("the round failed, the database is locked by another connection (")
    assert "database is locked" in said and "connection lost" not in said


def test_a_lost_connection_still_says_so(caplog: pytest.LogCaptureFixture) -> None:
    said = _round_line(_terminated(), caplog).getMessage()
    assert said.startswith("the round failed, the database's connection lost or refused (")


class _Steps:
    def __init__(self, *errors: BaseException) -> None:
        self.errors, self.now = list(errors), 0.0

    async def step(self) -> int:
        if self.errors:
            raise self.errors.pop(0)
        return 7

    async def sleep(self, s: float) -> None:
        self.now += s


async def test_the_starts_retry_says_a_timeout_and_a_lock_as_they_are(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="LLM_Mesh.registry.app")
    s = _Steps(TimeoutError(), _locked())
    retry = StartRetry(URL, clock=lambda: s.now, sleep=s.sleep)
    assert await retry.run("opening the store", s.step) == 7
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and not any("lost or refused" in m for m in said), said
    assert (
        "the database at postgresql+asyncpg://mesh:***@db.example:5432/mesh timed out (" in said[0]
    )
    assert " was locked by another connection (" in said[1]


async def test_a_start_that_timed_out_to_its_deadline_says_timed_out() -> None:
    s = _Steps(*(TimeoutError() for _ in range(100)))
    retry = StartRetry(URL, StartWait(deadline_s=5.0), clock=lambda: s.now, sleep=s.sleep)
    with pytest.raises(StoreUnavailable) as caught:
        await retry.run("loading the nodes", s.step)
    said = str(caught.value)
    assert "mesh:***@db.example:5432/mesh timed out for 5 s while loading the nodes" in said
    assert "lost or refused" not in said
