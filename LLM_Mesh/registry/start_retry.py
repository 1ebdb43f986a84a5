"""A start against the database: each step tried again while the connection is lost.

The lifespan of :func:`~LLM_Mesh.registry.app.create_registry_app` runs the steps of its
start that read or write the store through one :class:`StartRetry`: a step that fails for
a lost, refused or broken connection (:func:`lost_connection`: PostgreSQL restarting,
``pg_terminate_backend``, a failover) is logged as a WARNING naming the database (never its
password) and run again after :class:`~LLM_Mesh.core.start_wait.StartWait`'s backoff, until
its deadline (``DEFAULT_START_WAIT_S``, 120 s after the step's first failure); then
:class:`~LLM_Mesh.errors.StoreUnavailable` says what was waited for, and the start fails.
Any other error (a newer llm-mesh's schema: ``SchemaUnknown``, a ledger behind its mark:
``LedgerBehind``, a password refused, a database that does not exist) fails the start at
once, as before. Found 2026-12-06 (CI): a replica restarted while its connections were
terminated exited with asyncpg's ``InternalClientError`` "cannot switch to state 11; another
operation (2) is in progress": the server's FATAL message reached an idle connection before
its end of file did, asyncpg's protocol had taken it for an error to consume (state 2), and
the next statement on that connection (here the dialect's first ``show
standard_conforming_strings``) was refused by the protocol, not sent (MagicStack/asyncpg#1069).
Each step is one that may run again: loads, idempotent writes, starts that set their
``started`` mark last.

``registry serve``'s checks before uvicorn starts (``store_checks.store_unusable``, the
ledger mark's ``store_behind``) run through a :class:`StartRetry` made with
``refused_waits=False``: a connection lost while they read is waited for as above, but a
database that refuses at that first moment (connection refused, "the database system is
starting up", a connect that times out, another service's port) is said in one line at once (exit 1: a wrong port or host is not waited for;
a supervisor's restart covers a server down at that very moment).

Once serving, the registry's background loops log a failed round through
:func:`log_failed_round`: a lost or refused connection, a timeout or SQLite's lock
(:func:`store_trouble`, each said as what it is: found 2026-12-07, session 42's note, a timeout
and a lock were "the database's connection lost"; an expected transient on PostgreSQL) in one
WARNING line naming the error, anything else at ERROR with its traceback (found 2026-12-07,
ops41b / loops41: every round a connection was lost logged a traceback); a run of them, an
outage, is said by the loop's ``failed_rounds.RoundLog``. The start's WARNINGs and its
``StoreUnavailable`` name the kind too ("timed out", "was locked by another connection").
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from LLM_Mesh.core.printable import one_line
from LLM_Mesh.core.start_wait import StartWait
from LLM_Mesh.errors import LedgerBehind, StoreUnavailable
from LLM_Mesh.registry.schema_version import SchemaUnknown

__all__ = [
    "LOCKED", "LOST", "TIMED_OUT", "UNAVAILABLE", "StartRetry", "log_failed_round",
    "lost_connection", "pg_lost_errors", "store_trouble",
]  # fmt: skip

log = logging.getLogger("LLM_Mesh.registry.app")  # its lines with the start's others

T = TypeVar("T")


def pg_lost_errors(asyncpg: Any) -> tuple[type[BaseException], ...]:
    """asyncpg's errors of a lost or broken connection, not of the statement; judged by
    :func:`lost_connection` here and on the settlement's own connection
    (``settle_db_pg.PgSettleDb``'s batch, which adds ``OSError``)."""
    x = asyncpg.exceptions
    return (
        x.InterfaceError,  # "connection is closed", ConnectionDoesNotExistError
        x.InternalClientError,  # a protocol broken by a FATAL it did not expect (#1069)
        x.PostgresConnectionError,  # class 08
        x.OperatorInterventionError,  # 57P01 admin shutdown, 57P03 cannot connect now
    )  # fmt: skip


def _driver_lost() -> tuple[type[BaseException], ...]:
    """:func:`pg_lost_errors`, and too many connections (others', gone soon); none
    without asyncpg."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - installed with the package
        return ()
    return (*pg_lost_errors(asyncpg), asyncpg.exceptions.TooManyConnectionsError)  # 53300


def _driver_said_not_lost() -> tuple[type[BaseException], ...]:
    """asyncpg's errors that :func:`pg_lost_errors`' classes hold but no connection lost
    says: a setting of the URL it refuses (``ClientConfigurationError``, ``?ssl=bogus``) and
    a statement's argument it cannot encode (``_base.DataError``), both ``ValueError`` too, and
    what the client or server does not support (found 2026-12-06, review37: a bad URL setting
    was waited for 120 s before it was said); none without asyncpg."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - installed with the package
        return ()
    x = asyncpg.exceptions
    return (ValueError, x.UnsupportedClientFeatureError, x.UnsupportedServerFeatureError)


def _refusals() -> tuple[type[BaseException], ...]:
    """A database refusing a new connection: nothing listens, its server is starting, or
    nothing answers before the connect's timeout (a port that swallows what it gets)."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - installed with the package
        return (ConnectionRefusedError, TimeoutError)
    return (ConnectionRefusedError, TimeoutError, asyncpg.exceptions.CannotConnectNowError)


def _refused(e: BaseException, refusals: tuple[type[BaseException], ...]) -> bool:
    """``e`` is one of ``refusals``, a database that takes no connections now
    (:func:`_not_accepting`), or asyncpg's plain ``ConnectionError`` of a server that
    answered its SSL request as no PostgreSQL does (another service's port). Found
    2026-12-06 (review37): both were waited for 120 s by ``registry serve``'s checks."""
    if isinstance(e, refusals) or _not_accepting(e):
        return True
    return type(e) is ConnectionError and "rejected SSL upgrade" in str(e)


def _not_accepting(e: BaseException) -> bool:
    """PostgreSQL's FATAL at connect for a database whose connections are switched off
    (``ALTER DATABASE ... ALLOW_CONNECTIONS false``: SQLSTATE 55000, asyncpg's
    ``ObjectNotInPrerequisiteStateError``, whose other uses are errors of a statement): a
    refused connection. Found 2026-12-07 (newuser42): every round of the usage audit was an
    ERROR with its traceback through such an outage, 135 tracebacks in 75 s."""
    return (
        type(e).__name__ == "ObjectNotInPrerequisiteStateError"
        and "is not currently accepting connections" in str(e)
    )


def lost_connection(exc: BaseException, *, refused_waits: bool = True) -> bool:
    """Whether ``exc`` is the database's connection lost, refused or broken, a statement or
    connect timed out, or SQLite's write lock held past its busy timeout (worth waiting
    for: :func:`store_trouble` names which), looked for along its causes (SQLAlchemy's
    wrapper, the driver's error, an error rewrapped ``from``); never for ``SchemaUnknown``
    or ``LedgerBehind``, nor for an error of the statement itself (SQLite's "no such table"
    is an ``OperationalError`` too: only its "database is locked" is waited for; a
    ``StoreUnavailable`` said over another error, as ``ledger_mark.store_behind``'s, is
    judged by that error, found 2026-12-06, review37: a table it may not read was waited
    for). ``refused_waits=False``: a connection refused (nothing listens, the server is
    starting up, another service's port) is not."""
    return store_trouble(exc, refused_waits=refused_waits) is not None


LOST, UNAVAILABLE, TIMED_OUT, LOCKED = "lost", "unavailable", "timed out", "locked"


def store_trouble(exc: BaseException, *, refused_waits: bool = True) -> str | None:
    """What :func:`lost_connection` found along ``exc``'s causes: ``LOST`` (a connection
    lost, refused, reset or invalidated), ``UNAVAILABLE`` (the store's own
    ``StoreUnavailable``, said by itself), ``TIMED_OUT`` (a bare ``TimeoutError``: a
    connect or statement not answered in time) or ``LOCKED`` (SQLite's "database is
    locked"), the first of these that any cause is; ``None``: none (not worth waiting for).
    Found 2026-12-07 (session 42's note): a timeout and a locked SQLite file were logged as
    "the database's connection lost"."""
    if isinstance(exc, SchemaUnknown | LedgerBehind):
        return None
    lost, refused, not_lost = _driver_lost(), _refusals(), _driver_said_not_lost()
    found: set[str] = set()
    todo: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if not refused_waits and _refused(e, refused):
            return None
        if (isinstance(e, DBAPIError) and e.connection_invalidated) or _not_accepting(e):
            found.add(LOST)
        elif isinstance(e, lost) and isinstance(e, not_lost):
            pass  # a driver's error of the setting or the statement, not the connection
        elif isinstance(e, StoreUnavailable):  # the store's own "busy or gone"; one said
            if e.__cause__ is None and e.__context__ is None:  # over another: by that one
                found.add(UNAVAILABLE)
        elif isinstance(e, (ConnectionError, *lost)):
            found.add(LOST)  # refused, reset
        elif isinstance(e, TimeoutError):
            found.add(TIMED_OUT)
        elif isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
            found.add(LOCKED)  # SQLite's write lock held past its busy timeout, not "no such table"
        orig = getattr(e, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, e.__cause__, e.__context__]
    return next((kind for kind in (LOST, UNAVAILABLE, TIMED_OUT, LOCKED) if kind in found), None)


_ROUND_SAYS = {  # a failed round's words for each kind of store_trouble
    LOST: "the database's connection lost or refused",
    UNAVAILABLE: "the database unavailable",
    TIMED_OUT: "the database timed out",
    LOCKED: "the database is locked by another connection",
}
_START_SAYS = {  # StartRetry's: "the database at <url> ..."
    LOST: "lost or refused the connection",
    UNAVAILABLE: "was unavailable",
    TIMED_OUT: "timed out",
    LOCKED: "was locked by another connection",
}


def log_failed_round(
    logger: logging.Logger,
    exc: BaseException,
    what: str,
    then: str = "",
    *,
    quiet: bool = False,
    errors_too: bool = False,
    stacklevel: int = 1,
) -> bool:
    """A background loop's failed round, in ``logger`` (called in its ``except``): the
    database's connection lost, refused or broken (a failover, a restart,
    ``pg_terminate_backend``), a timeout or SQLite's lock (:func:`store_trouble`, each
    said in its own words: "the database's connection lost or refused", "the database timed
    out", "the database is locked") as one WARNING line, ``what``, those words, the error in
    one line, then ``then`` (what happens next: "trying again later"); anything else at
    ERROR, ``what; then``, with its traceback. The record names the caller's line, not this
    one (``stacklevel``: how many callers up from there). ``quiet``: that WARNING at DEBUG
    (a run of failed rounds already said as an ERROR: ``failed_rounds.RoundLog``); an ERROR
    is never quieted, unless ``errors_too`` (a loop of a round a second or more, said once a
    run: ``core/round_alarm.RoundAlarm.first_only``; at DEBUG with its traceback). Whether
    it was the store's (the WARNING's kind).

    Only an error of the database, its driver or the network itself (:func:`_of_the_store`)
    is judged so: another one raised while a lost connection was handled (its
    ``__context__``, which :func:`lost_connection` looks along) is a bug of that handling,
    at ERROR with both tracebacks (found 2026-12-07, review41d: a ``KeyError`` in the code
    that keeps a failed batch, ``usage_audit_sync.flush``'s, run only when a write fails, was
    "the database's connection lost", no traceback, every round of an outage)."""
    tail = f"; {then}" if then else ""
    trouble = store_trouble(exc) if _of_the_store(exc) else None
    if trouble is not None:  # expected on PostgreSQL: no traceback
        logger.log(
            logging.DEBUG if quiet else logging.WARNING, "%s, %s (%s)%s",
            what, _ROUND_SAYS[trouble], one_line(exc), tail, stacklevel=stacklevel + 1,
        )  # fmt: skip
        return True
    level = logging.DEBUG if quiet and errors_too else logging.ERROR
    logger.log(level, "%s%s", what, tail, exc_info=exc, stacklevel=stacklevel + 1)
    return False


def _of_the_store(exc: BaseException) -> bool:
    """Whether ``exc`` itself is an error a database, its driver or the network raises
    (SQLAlchemy's, ``OSError``: refused, reset, timed out; SQLite's, asyncpg's of a lost
    connection, the store's own :class:`StoreUnavailable`), not what it was raised over."""
    return isinstance(
        exc, (SQLAlchemyError, OSError, sqlite3.Error, StoreUnavailable, *_driver_lost())
    )


def _said(exc: BaseException) -> str:
    """``exc`` in one line (its first), for a log line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


class StartRetry:
    """Runs the start's steps, each again while it fails for a lost connection (module
    docstring); ``url``: the database's, said without its password; ``refused_waits``:
    whether a refused connection is waited for too."""

    def __init__(
        self,
        url: str | None,
        wait: StartWait | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        refused_waits: bool = True,
    ) -> None:
        self.where = "the store" if not url else make_url(url).render_as_string(hide_password=True)
        self.wait = wait or StartWait()
        self.clock = clock
        self.sleep = sleep
        self.retries = 0  # over every step: the steps tried again
        self.refused_waits = refused_waits  # False: a refused connection fails at once

    async def run(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """``step()``'s result, tried again while it fails for a lost connection, until the
        deadline (then :class:`StoreUnavailable`); other errors at once."""
        first_failure: float | None = None
        retry = 0
        while True:
            try:
                return await step()
            except Exception as exc:
                trouble = store_trouble(exc, refused_waits=self.refused_waits)
                if trouble is None:
                    raise
                now = self.clock()
                first_failure = now if first_failure is None else first_failure
                retry += 1
                delay = self.wait.wait_before(retry, now - first_failure)
                if delay is None:
                    raise StoreUnavailable(
                        f"the registry did not start: the database at {self.where} "
                        f"{_START_SAYS[trouble]} for {now - first_failure:.0f} s while "
                        f"{what} (the start waits {self.wait.deadline_s:.0f} s): {_said(exc)}"
                    ) from exc
                self.retries += 1
                log.warning(
                    "start: %s failed, the database at %s %s (%s); try %d in %.1f s (the "
                    "start gives up %.0f s after the first failure)",
                    what, self.where, _START_SAYS[trouble], _said(exc), retry + 1, delay,
                    self.wait.deadline_s,
                )  # fmt: skip
                await self.sleep(delay)
