"""The start's steps on the store, tried again while the connection is lost (no sockets).

The real thing, a registry starting while PostgreSQL terminates its connections:
``test_start_retry_pg.py``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.exc import DBAPIError, InternalError, OperationalError, ProgrammingError
from sqlalchemy.exc import InterfaceError as SaInterfaceError

from LLM_Mesh.core.start_wait import StartWait
from LLM_Mesh.errors import LedgerBehind, StoreUnavailable
from LLM_Mesh.registry.schema_version import SchemaUnknown
from LLM_Mesh.registry.start_retry import StartRetry, log_failed_round, lost_connection

URL = "postgresql+asyncpg://mesh:hunter2@db.example:5432/mesh"


def _adapted(driver_error: BaseException) -> Exception:
    """The dialect's DBAPI error of ``driver_error`` (raised ``from`` it)."""
    adapted = Exception(str(driver_error))
    adapted.__cause__ = driver_error
    return adapted


def _wrapped(driver_error: BaseException, statement: str = "show standard_conforming_strings"):
    """``driver_error`` as SQLAlchemy's asyncpg dialect raises it (the CI's shape)."""
    return InternalError(statement, None, _adapted(driver_error))


BROKEN = asyncpg.exceptions.InternalClientError(
    "cannot switch to state 11; another operation (2) is in progress"
)
BAD_SETTING = asyncpg.exceptions.ClientConfigurationError(
    "`sslmode` parameter must be one of: disable, allow, prefer, require, verify-ca, verify-full"
)


@pytest.mark.parametrize(
    "exc",
    [
        _wrapped(BROKEN),  # the protocol broken by a FATAL it did not expect (asyncpg#1069)
        ConnectionRefusedError(111, "Connection refused"),  # PostgreSQL restarting
        asyncpg.exceptions.AdminShutdownError("terminating connection"),  # 57P01
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle of operation"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        TimeoutError(),
        StoreUnavailable("the registry's database is busy"),
        InternalError("SELECT 1", None, Exception("x"), connection_invalidated=True),
        OperationalError("BEGIN", None, sqlite3.OperationalError("database is locked")),
        SaInterfaceError("SELECT 1", None, _adapted(asyncpg.exceptions.InterfaceError("closed"))),
    ],
)
def test_a_lost_refused_or_broken_connection_is_waited_for(exc: BaseException) -> None:
    assert lost_connection(exc)


def _schema_unknown_while_lost() -> SchemaUnknown:
    try:
        raise ConnectionResetError()
    except ConnectionResetError:
        try:
            raise SchemaUnknown("the database's schema is at revision 9999")
        except SchemaUnknown as exc:
            return exc


def _read_failed(error: BaseException) -> StoreUnavailable:
    """``error`` as ``ledger_mark.store_behind`` says it: one line, ``from None``."""
    try:
        raise error
    except BaseException:
        try:
            raise StoreUnavailable("the database did not answer reading its ledger") from None
        except StoreUnavailable as exc:
            return exc


def test_the_ledger_checks_lost_connection_is_waited_for() -> None:
    assert lost_connection(_read_failed(_wrapped(BROKEN, "SELECT count(*) FROM ledger")))


def test_the_ledger_checks_statement_error_is_not() -> None:
    """Found 2026-12-06 (review37): ``store_behind`` says any driver error reading the ledger
    as ``StoreUnavailable``, and every ``StoreUnavailable`` was waited for: a table it may
    not read (``permission denied``), a damaged SQLite file, waited 120 s and then said as
    a connection "lost or refused"."""
    denied = ProgrammingError(
        "SELECT count(*) FROM ledger",
        None,
        _adapted(
            asyncpg.exceptions.InsufficientPrivilegeError("permission denied for table ledger")
        ),
    )
    assert not lost_connection(_read_failed(denied))
    malformed = sqlite3.DatabaseError("database disk image is malformed")
    assert not lost_connection(_read_failed(OperationalError("SELECT", None, malformed)))


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.InvalidPasswordError("password authentication failed"),
        asyncpg.exceptions.InvalidCatalogNameError('database "mesh" does not exist'),
        ProgrammingError("SELEC 1", None, Exception("syntax error")),
        _schema_unknown_while_lost(),  # raised while handling a lost one: still not
        LedgerBehind("the store's ledger is behind its published checkpoint"),
        ValueError("bad URL"),
        OSError(13, "Permission denied"),
        OperationalError("SELECT", None, sqlite3.OperationalError("no such table: nodes")),
        OperationalError("SELECT", None, sqlite3.OperationalError("disk I/O error")),
        # asyncpg's InterfaceError family holds its configuration and argument errors too:
        # a bad URL (``?ssl=bogus``) was waited for 120 s (review37)
        SaInterfaceError("connect", None, _adapted(BAD_SETTING)),
        asyncpg.exceptions._base.DataError("invalid input for query argument $1"),
        asyncpg.exceptions.UnsupportedClientFeatureError("not supported"),
        asyncpg.exceptions.UnsupportedServerFeatureError("not supported"),
    ],
)
def test_any_other_error_is_not(exc: BaseException) -> None:
    assert not lost_connection(exc)


class Steps:
    """A step that fails with ``errors`` in turn, then answers 7; a clock the sleeps move."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.now = 100.0
        self.slept: list[float] = []

    async def step(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return 7

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s

    def retry(self, wait: StartWait | None = None) -> StartRetry:
        return StartRetry(URL, wait, clock=lambda: self.now, sleep=self.sleep)


async def test_a_step_that_lost_its_connection_is_run_again_after_a_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = Steps(_wrapped(BROKEN), ConnectionRefusedError(111, "Connection refused"))
    retry = s.retry()
    assert await retry.run("opening the store", s.step) == 7
    assert (s.calls, s.slept, retry.retries) == (3, [0.5, 1.0], 2)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and all("opening the store failed" in m for m in said), said
    assert "postgresql+asyncpg://mesh:***@db.example:5432/mesh" in said[0]
    assert "hunter2" not in " ".join(said)
    assert "cannot switch to state 11" in said[0] and "try 2 in 0.5 s" in said[0]


@pytest.mark.parametrize(
    "error",
    [SchemaUnknown("the database's schema is at revision 9999"), ValueError("bad")],
)
async def test_any_other_error_fails_the_start_at_once(error: Exception) -> None:
    s = Steps(error)
    with pytest.raises(type(error)):
        await s.retry().run("opening the store", s.step)
    assert (s.calls, s.slept) == (1, [])


async def test_past_its_deadline_the_start_gives_up_naming_the_database_and_the_step() -> None:
    lost: Callable[[], Any] = lambda: ConnectionRefusedError(111, "Connection refused")  # noqa: E731
    s = Steps(*(lost() for _ in range(100)))
    with pytest.raises(StoreUnavailable) as caught:
        await s.retry(StartWait(deadline_s=30.0)).run("loading the nodes", s.step)
    said = str(caught.value)
    assert "postgresql+asyncpg://mesh:***@db.example:5432/mesh" in said, said
    assert "hunter2" not in said and "loading the nodes" in said and "30 s" in said, said
    assert "ConnectionRefusedError" in said, said
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert sum(s.slept) == 30.0 and s.slept[-1] < 10.0  # waited to the deadline, not past
    assert s.calls == len(s.slept) + 1


async def test_each_step_has_its_own_deadline_from_its_first_failure() -> None:
    s = Steps(ConnectionRefusedError(), ConnectionRefusedError())
    retry = s.retry(StartWait(deadline_s=2.0))
    s.now += 1000.0  # a long start before: no failure yet, nothing counted
    assert await retry.run("one", s.step) == 7  # 0.5 + 1.0 s of waits: within 2 s
    s.errors = [ConnectionRefusedError()] * 2
    assert await retry.run("two", s.step) == 7  # a fresh 2 s


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),  # a port that swallows what it gets (review37)
        ConnectionError('PostgreSQL server at "127.0.0.1:6379" rejected SSL upgrade'),
    ],
)
def test_the_checks_take_a_refused_connect_as_said_while_the_start_waits(
    exc: BaseException,
) -> None:
    assert not lost_connection(exc, refused_waits=False)
    assert lost_connection(exc)  # the app's start: waited (a server restarting, a failover)


# -- a background loop's failed round (log_failed_round) ---------------------------------

LOOP_LOG = logging.getLogger("tests.a_loop")


def _terminated(wrapper: type[DBAPIError]) -> Exception:
    """A connection cut mid-query (``pg_terminate_backend``) as SQLAlchemy's asyncpg dialect
    raises it, in ``wrapper`` (the shapes of test_store_batch.py)."""
    driver = asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    )
    return wrapper("select 1", None, _adapted(driver))


def _failed_round(exc: Exception, then: str = "trying again later") -> None:
    try:
        raise exc
    except Exception as caught:
        log_failed_round(LOOP_LOG, caught, "the round failed", then)


@pytest.mark.parametrize(
    "exc",
    [
        _terminated(DBAPIError),
        _terminated(SaInterfaceError),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["DBAPIError", "InterfaceError", "refused"],
)
def test_a_lost_connection_is_one_warning_line_without_a_traceback(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOOP_LOG.name)
    _failed_round(exc)
    (record,) = caplog.records
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert "Traceback" not in caplog.text
    said = record.getMessage()
    assert "\n" not in said
    assert said.startswith("the round failed, the database's connection lost or refused (")
    assert said.endswith("); trying again later")
    assert type(exc).__name__ in said
    assert record.funcName == "_failed_round"  # the loop's line, not the helper's


def test_any_other_error_is_an_error_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOOP_LOG.name)
    _failed_round(RuntimeError("a bug"))
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "the round failed; trying again later"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "Traceback" in caplog.text and "RuntimeError: a bug" in caplog.text
    assert record.funcName == "_failed_round"


def test_a_round_with_nothing_next_says_what_failed_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOOP_LOG.name)
    _failed_round(RuntimeError("a bug"), then="")
    _failed_round(ConnectionResetError("reset by peer"), then="")
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "the round failed",
        "the round failed, the database's connection lost or refused "
        "(ConnectionResetError: reset by peer)",
    ]


def test_a_bug_in_handling_a_lost_connection_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found 2026-12-07 (review41d): an error of the code that handles a failed write (a
    batch kept for the next round, ``usage_audit_sync.flush``'s, run only then) raised over
    the lost connection (its ``__context__``) was "the database's connection lost or
    refused (KeyError: ...)", one WARNING line without a traceback, every round of an
    outage. A bug: ERROR, with both tracebacks."""
    caplog.set_level(logging.DEBUG, logger=LOOP_LOG.name)

    def keep_failed_batch() -> None:
        try:
            raise _terminated(DBAPIError)
        except DBAPIError:
            kept: dict[str, int] = {}
            kept["steps"] += 1  # the bug in the failure's handling: a KeyError

    try:
        keep_failed_batch()
    except Exception as caught:
        log_failed_round(LOOP_LOG, caught, "the round failed", "trying again later")
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "the round failed; trying again later"
    assert "KeyError: 'steps'" in caplog.text
    assert "connection was closed in the middle of operation" in caplog.text  # the cause too
    caplog.clear()
    _failed_round(TimeoutError())  # a timed out connect or statement itself: one line
    (record,) = caplog.records
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
