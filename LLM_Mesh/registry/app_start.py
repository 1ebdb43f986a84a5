"""The app's start against its database: each step tried again while the connection is lost.

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

Also here: :func:`first_beat` and :func:`witness_pusher`, the start's other helpers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import InterfaceError as SaInterfaceError

from LLM_Mesh.config import Settings
from LLM_Mesh.core.start_wait import StartWait
from LLM_Mesh.core.witness import parse_vkey
from LLM_Mesh.errors import LedgerBehind, StoreUnavailable
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.replicas import ReplicaBeat
from LLM_Mesh.registry.schema_version import SchemaUnknown
from LLM_Mesh.registry.witness_push import WitnessPusher, make_witness_client

__all__ = ["StartRetry", "first_beat", "lost_connection", "witness_pusher"]

log = logging.getLogger("LLM_Mesh.registry.app")  # its lines with the start's others

T = TypeVar("T")


def _driver_lost() -> tuple[type[BaseException], ...]:
    """asyncpg's errors of a lost or broken connection (none without asyncpg)."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - installed with the package
        return ()
    x = asyncpg.exceptions
    return (
        x.InterfaceError,  # "connection is closed", ConnectionDoesNotExistError
        x.InternalClientError,  # a protocol broken by a FATAL it did not expect (#1069)
        x.PostgresConnectionError,  # class 08
        x.OperatorInterventionError,  # 57P01 admin shutdown, 57P03 cannot connect now
        x.TooManyConnectionsError,  # 53300: others' connections, gone soon
    )  # fmt: skip


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's connection lost, refused or broken (worth waiting
    for), looked for along its causes (SQLAlchemy's wrapper, the driver's error, an error
    rewrapped ``from``); never for ``SchemaUnknown`` or ``LedgerBehind``."""
    if isinstance(exc, SchemaUnknown | LedgerBehind):
        return False
    lost = _driver_lost()
    todo: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, OperationalError | SaInterfaceError | StoreUnavailable):
            return True
        if isinstance(e, (ConnectionError, TimeoutError, *lost)):  # refused, reset, timed out
            return True
        orig = getattr(e, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, e.__cause__, e.__context__]
    return False


def _said(exc: BaseException) -> str:
    """``exc`` in one line (its first), for a log line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


class StartRetry:
    """Runs the start's steps, each again while it fails for a lost connection (module
    docstring); ``url``: the database's, said without its password."""

    def __init__(
        self,
        url: str | None,
        wait: StartWait | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.where = "the store" if not url else make_url(url).render_as_string(hide_password=True)
        self.wait = wait or StartWait()
        self.clock = clock
        self.sleep = sleep
        self.retries = 0  # over every step: the steps tried again

    async def run(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """``step()``'s result, tried again while it fails for a lost connection, until the
        deadline (then :class:`StoreUnavailable`); other errors at once."""
        first_failure: float | None = None
        retry = 0
        while True:
            try:
                return await step()
            except Exception as exc:
                if not lost_connection(exc):
                    raise
                now = self.clock()
                first_failure = now if first_failure is None else first_failure
                retry += 1
                delay = self.wait.wait_before(retry, now - first_failure)
                if delay is None:
                    raise StoreUnavailable(
                        f"the registry did not start: the database at {self.where} lost or "
                        f"refused the connection for {now - first_failure:.0f} s while "
                        f"{what} (the start waits {self.wait.deadline_s:.0f} s): {_said(exc)}"
                    ) from exc
                self.retries += 1
                log.warning(
                    "start: %s failed, the database at %s lost or refused the connection "
                    "(%s); try %d in %.1f s (the start gives up %.0f s after the first "
                    "failure)",
                    what, self.where, _said(exc), retry + 1, delay, self.wait.deadline_s,
                )  # fmt: skip
                await self.sleep(delay)


async def first_beat(beat: ReplicaBeat) -> None:
    """Beat once before serving (other replicas see this one at once); a store that fails
    now is retried by the beat's loop."""
    try:
        await beat.poll()
    except Exception:
        log.exception("replica beat failed at start; retrying in the background")


def witness_pusher(
    settings: Settings,
    ledger: SqlLedger,
    client: httpx.AsyncClient | None,
    wall_clock: Callable[[], float],
    clock: Callable[[], float],
) -> WitnessPusher | None:
    """The checkpoints' pusher to ``settings.ledger_witness_urls`` (none: ``None``)."""
    if not settings.ledger_witness_urls:
        return None
    return WitnessPusher(
        ledger, settings.ledger_witness_urls,
        [parse_vkey(t) for t in settings.ledger_witnesses],
        client if client is not None else make_witness_client(),
        interval_s=settings.ledger_checkpoint_interval_s, wall_clock=wall_clock, clock=clock,
    )  # fmt: skip
