"""Settlement's hot-path writes (reserve, answer, void) on a dedicated database connection.

:class:`~LLM_Mesh.registry.settlement.Settlement` hands a batch of operations to
:meth:`SettleDb.apply`, which runs them in order in **one** transaction (group commit:
whatever queued while the previous transaction ran). The operations:

- :class:`Reserve`: if the payer's ``balance - reserved`` covers the estimate, add it to
  ``reserved`` and write the request's ``pending`` row (part 0) — one conditional
  ``UPDATE`` of the payer's ``balances`` row (its row lock on PostgreSQL, the database's
  write lock on SQLite), so concurrent reservations from any number of processes never
  overspend. The result (:class:`Reserved`) says whether, and the balance it saw.
- :class:`Answer`: ``pending`` → ``answered`` with each part's exact amount and fee
  (part 0 updated, parts 1... inserted); ``reserved`` drops from the estimate to the
  exact total. ``False`` when the row was not pending (voided meanwhile: nothing written).
- :class:`Void`: ``pending`` → ``void``; the estimate is released. Idempotent.

Payer rows are locked in account order within a batch (the batch is sorted by payer,
keeping each request's own operations in order), as the ledger's appends do, so two
transactions never wait for each other in a cycle.

Why not the store's SQLAlchemy engine: an async SQLAlchemy transaction over aiosqlite
costs several thread hops (about 1.8 ms on the 2-core test box). Here SQLite uses the
standard ``sqlite3`` module on one connection: on a WAL database (the store's) a batch
is first tried **on the event loop itself** with no busy wait (``BEGIN IMMEDIATE`` either
takes the write lock at once or fails before anything is done; a WAL commit with
``synchronous=NORMAL`` writes the log without an fsync, and no checkpoint runs after it,
``wal_autocheckpoint=0``): about 0.04 ms, against 0.13 ms for the hop to a
thread (measured on the 2-core box under load). This connection writes most of the
database's transactions (two a request), so it also keeps the write-ahead log bounded:
every ``checkpoint_every`` commits (300) a ``PRAGMA wal_checkpoint(PASSIVE)`` runs in the
connection's thread, between two of its own transactions, so the log is often fully
copied when the next one begins and SQLite starts the log over (with only the other
connections' automatic checkpoints, a steady stream of these commits never let it: the
file grew by ~50 KB a request, 2.6 GB in 90 s under load, docs/benchmarks.md). The
connections keep the file at ``journal_size_limit`` (32 MiB) or less when it starts over. When another connection holds the
write lock (a ledger append), the batch goes to the connection's own thread, which tries
again every 0.2 ms (at most ``busy_timeout_ms``; SQLite's own busy handler would sleep
1, 2, 5, 10... ms between tries). :meth:`SqliteSettleDb.transact` runs any function of
the connection that way (the settler's ledger append: ``registry/settle_sqlite.py``);
the connection is never used on the loop while its thread has it. PostgreSQL uses a dedicated ``asyncpg`` connection: a
whole batch is one call of a PL/pgSQL function (migrations 0006, 0010, 0015), one round trip
and one commit. The call carries a random batch id, recorded with the batch's result rows
in the same transaction (``settle_batches``): when the connection is lost and the batch is
sent again, a batch the server had already committed returns its rows and is not applied
twice. SQLite has no such hazard: its commit is a call in this process, never lost on its
way back, and the only error a batch is tried again on is busy/locked, which ``COMMIT``
returns having committed nothing (the transaction is rolled back before the retry).
Everything off the hot path (settling into the ledger, recovery, balances) uses
SQLAlchemy (``registry/settlement.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import make_url

from LLM_Mesh.core.once import cached_property
from LLM_Mesh.file_walk import private_sqlite_path
from LLM_Mesh.registry.db_thread import DbThread
from LLM_Mesh.registry.pg_connect import asyncpg_args
from LLM_Mesh.registry.start_retry import lost_connection

log = logging.getLogger(__name__)

__all__ = [
    "Answer",
    "LeaseOp",
    "Op",
    "PaidPart",
    "PgSettleDb",
    "Reserve",
    "Reserved",
    "SettleDb",
    "SqliteSettleDb",
    "Void",
    "settle_db_for", "sqlite_now", "sqlite_time",
]  # fmt: skip


@dataclass(frozen=True)
class Reserve:
    key: str  # the settlement's request id (settlements.request_id)
    payer: str
    model: str
    estimate: int


@dataclass(frozen=True)
class PaidPart:
    """One node's part of an answered request: what the payer pays it (fee included)."""

    node_id: str
    operator: str | None  # the operator's ledger account; None: not known yet
    amount: int
    fee: int


@dataclass(frozen=True)
class Answer:
    key: str
    payer: str
    model: str
    estimate: int
    parts: tuple[PaidPart, ...]  # at least one, amounts > 0
    receipt_hash: str | None = None

    @cached_property  # read by the write, the lease's book and the settler: summed once
    def total(self) -> int:
        return sum(p.amount for p in self.parts)


@dataclass(frozen=True)
class Void:
    key: str
    payer: str


class LeaseOp(Protocol):
    """A lease's write (``registry/settle_lease.py``): run in the batch's transaction by
    :class:`SqliteSettleDb` (``one``: a plain op's runner) or as rows of 0015's function."""

    @property
    def payer(self) -> str: ...

    def sqlite(self, conn: sqlite3.Connection, holder: str, now: str, one: Any) -> Any: ...

    def pg_rows(self, row: Callable[..., None]) -> None: ...

    def pg_result(self, r: Any) -> Any: ...


Op = Reserve | Answer | Void | LeaseOp
T = TypeVar("T")


@dataclass(frozen=True)
class Reserved:
    """A reservation's outcome and the payer's balance as the transaction saw it."""

    ok: bool
    balance: int
    reserved: int

    @property
    def available(self) -> int:
        return self.balance - self.reserved


class SettleDb(Protocol):
    async def open(self) -> None: ...

    async def apply(
        self, ops: Sequence[Op], holder: str, now: datetime
    ) -> list[Reserved | bool | None]:
        """Run ``ops`` in one transaction; per op: :class:`Reserved` (reserve), whether it
        was recorded (answer), ``None`` (void)."""
        ...

    async def close(self) -> None: ...


def _in_payer_order(ops: Sequence[Op]) -> list[int]:
    """The order to run ``ops`` in: by payer (lock order), each payer's ops as given."""
    return sorted(range(len(ops)), key=lambda i: ops[i].payer)


# -- SQLite -------------------------------------------------------------------------------

_SQ_RESERVE = (
    "UPDATE balances SET reserved = reserved + ? "
    "WHERE account = ? AND balance - reserved >= ? RETURNING balance, reserved"
)
_SQ_PENDING = (
    "INSERT INTO settlements (request_id, part, payer, model, estimate, state, created_at, "
    "updated_at, holder) VALUES (?, 0, ?, ?, ?, 'pending', ?, ?, ?)"
)
_SQ_BALANCE = "SELECT balance, reserved FROM balances WHERE account = ?"
_SQ_ANSWER = (
    "UPDATE settlements SET state = 'answered', node_id = ?, operator = ?, amount = ?, fee = ?, "
    "receipt_hash = ?, updated_at = ? WHERE request_id = ? AND part = 0 AND state = 'pending' "
    "RETURNING estimate"
)
_SQ_PART = (
    "INSERT INTO settlements (request_id, part, payer, node_id, operator, model, estimate, "
    "amount, fee, state, receipt_hash, created_at, updated_at, holder) "
    "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, 'answered', ?, ?, ?, ?)"
)
_SQ_RELEASE = "UPDATE balances SET reserved = reserved - ? WHERE account = ?"
_SQ_VOID = (
    "UPDATE settlements SET state = 'void', updated_at = ? "
    "WHERE request_id = ? AND part = 0 AND state = 'pending' RETURNING payer, estimate"
)


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def sqlite_time(now: datetime) -> str:
    """How SQLAlchemy stores a ``UTCDateTime`` on SQLite: naive UTC text."""
    return now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


_second: tuple[int, str] = (-1, "")  # the last second sqlite_now formatted, and its text


def sqlite_now(time_ns: Callable[[], int] = time.time_ns) -> str:
    """:func:`sqlite_time` of the wall clock now, the same text, without a ``datetime``
    or a ``strftime`` per call: the date and time of day are formatted once a second
    (the hot path writes a time with each of its two writes a request)."""
    global _second
    sec, ns = divmod(time_ns(), 1_000_000_000)
    if _second[0] != sec:
        _second = (sec, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec)))
    return f"{_second[1]}.{ns // 1000:06d}"


# a WAL file that grew past this is cut back to it when SQLite starts the log over
JOURNAL_SIZE_LIMIT = 32 * 1024 * 1024


class SqliteSettleDb:
    """:class:`SettleDb` on a SQLite file: one ``sqlite3`` connection, its own daemon thread."""

    def __init__(
        self,
        path: str,
        *,
        busy_timeout_ms: int = 5000,
        inline: bool = True,
        checkpoint_every: int = 300,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every is at least 1")
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.inline = inline  # try batches on the event loop first (WAL databases only)
        self.checkpoint_every = checkpoint_every  # commits between the log's checkpoints
        self.inline_batches = 0
        self.thread_batches = 0
        self.checkpoints = 0  # run so far
        self.last_checkpoint: tuple[int, int, int] | None = None  # (busy, log, copied) frames
        self._wal = False
        self._commits = 0  # since the last checkpoint was due
        self._checkpoint: asyncio.Task[None] | None = None
        self._in_thread = 0  # operations handed to the connection's thread, not done yet
        self._pool: DbThread | None = None  # a daemon: a call hung for good holds no exit
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        self._pool = DbThread("llm-mesh-settle-db")
        self._conn = await self._run(self._connect)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=0.0
        )
        wal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
        if wal:  # the store's: a commit survives the process at once, fsync'd at checkpoints
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # never after a commit on the loop
            conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        else:  # a rollback journal commits with fsyncs: never on the event loop
            self.inline = False
        self._wal = wal
        return conn

    def _committed(self) -> None:
        """One more commit (on the event loop): start the log's checkpoint when it is due."""
        self._commits += 1
        if not self._wal or self._commits < self.checkpoint_every or self._checkpoint:
            return
        self._commits = 0
        self._checkpoint = asyncio.get_running_loop().create_task(self._checkpoint_log())

    async def _checkpoint_log(self) -> None:
        """``PRAGMA wal_checkpoint(PASSIVE)`` in the connection's thread: batches that come
        meanwhile wait for it there (it takes no lock other writers or readers wait on)."""
        try:
            if self._pool is not None:
                self.last_checkpoint = await self._run(self._checkpoint_now)
                self.checkpoints += 1
        except Exception:  # the next one is due in checkpoint_every commits
            log.exception("settlement: the write-ahead log's checkpoint failed")
        finally:
            self._checkpoint = None

    def _checkpoint_now(self) -> tuple[int, int, int]:
        conn = self._conn
        if conn is None:  # pragma: no cover - closed meanwhile
            return (0, 0, 0)
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(copied)

    def _waiting(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``_transact(fn)`` in the connection's thread, retried every 0.2 ms while another
        connection holds the write lock (SQLite's own busy handler sleeps 1, 2, 5, 10, ...
        ms between tries: a wait far longer than the lock is usually held), at most
        ``busy_timeout_ms``."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                return self._transact(fn)
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.0002)

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._pool is None:
            raise RuntimeError("the settlement database is not open")
        self._in_thread += 1  # the connection is the thread's until it is done
        try:
            return await asyncio.wrap_future(self._pool.submit(fn, *args))
        finally:
            self._in_thread -= 1

    def _inline(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[bool, T | None]:
        """``(True, fn's result)`` when ``fn`` ran now on the calling thread (the event loop)
        in a transaction of its own, ``(False, None)`` (nothing done) when the write lock
        is not free at once, the connection's thread is using it, or this database is not
        WAL."""
        if not self.inline or self._conn is None or self._in_thread:
            return False, None
        try:
            done = self._transact(fn)
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise
            return False, None
        self.inline_batches += 1
        return True, done

    def try_inline(
        self, ops: Sequence[Op], holder: str, now: datetime | None = None
    ) -> list[Reserved | bool | None] | None:
        """Run ``ops`` now, on the calling thread (the event loop), if the write lock is free
        at once; ``None`` (nothing done) when it is not, or when this database is not WAL.
        ``now``: the rows' time (default: the wall clock, :func:`sqlite_now`)."""
        stamp = sqlite_now() if now is None else sqlite_time(now)
        ran, done = self._inline(partial(self._ops, ops=list(ops), holder=holder, now=stamp))
        if not ran:
            return None
        self._committed()
        return done

    async def transact(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = True) -> T:
        """``fn(connection)`` in one ``BEGIN IMMEDIATE`` transaction (rolled back if it
        raises): on the event loop when ``inline`` and the write lock is free at once,
        else in the connection's thread, waiting for the lock."""
        if inline:
            ran, done = self._inline(fn)
            if ran:
                self._committed()
                return done  # type: ignore[return-value]
        result: T = await self._run(self._waiting, fn)
        self.thread_batches += 1
        self._committed()
        return result

    async def apply(
        self, ops: Sequence[Op], holder: str, now: datetime
    ) -> list[Reserved | bool | None]:
        return await self.transact(
            partial(self._ops, ops=list(ops), holder=holder, now=sqlite_time(now))
        )

    def _transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:  # pragma: no cover - apply before open
            raise RuntimeError("the settlement database is not open")
        conn.execute("BEGIN IMMEDIATE")  # busy_timeout 0: takes the write lock or fails
        try:
            out = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return out

    def _ops(
        self, conn: sqlite3.Connection, *, ops: list[Op], holder: str, now: str
    ) -> list[Reserved | bool | None]:
        if len(ops) == 1:  # a request alone: nothing to order
            return [self._one(conn, ops[0], holder, now)]
        out: list[Reserved | bool | None] = [None] * len(ops)
        for i in _in_payer_order(ops):
            out[i] = self._one(conn, ops[i], holder, now)
        return out

    @staticmethod
    def _one(conn: sqlite3.Connection, op: Op, holder: str, now: str) -> Reserved | bool | None:
        if isinstance(op, Reserve):
            row = conn.execute(_SQ_RESERVE, (op.estimate, op.payer, op.estimate)).fetchone()
            if row is not None:
                conn.execute(
                    _SQ_PENDING, (op.key, op.payer, op.model, op.estimate, now, now, holder)
                )
                return Reserved(True, int(row[0]), int(row[1]))
            seen = conn.execute(_SQ_BALANCE, (op.payer,)).fetchone()
            return Reserved(False, *(int(x) for x in seen)) if seen else Reserved(False, 0, 0)
        if isinstance(op, Answer):
            first = op.parts[0]
            row = conn.execute(
                _SQ_ANSWER,
                (first.node_id, first.operator, first.amount, first.fee, op.receipt_hash, now,
                 op.key),
            ).fetchone()  # fmt: skip
            if row is None:
                return False
            for n, p in enumerate(op.parts[1:], start=1):
                conn.execute(
                    _SQ_PART,
                    (op.key, n, op.payer, p.node_id, p.operator, op.model, p.amount, p.fee,
                     op.receipt_hash, now, now, holder),
                )  # fmt: skip
            conn.execute(_SQ_RELEASE, (int(row[0]) - op.total, op.payer))
            return True
        if not isinstance(op, Void):
            return op.sqlite(conn, holder, now, SqliteSettleDb._one)  # type: ignore[no-any-return]
        row = conn.execute(_SQ_VOID, (now, op.key)).fetchone()
        if row is not None:
            conn.execute(_SQ_RELEASE, (int(row[1]), row[0]))
        return None

    async def close(self) -> None:
        if self._checkpoint is not None:  # let it finish: the connection is its until then
            with contextlib.suppress(Exception):
                await self._checkpoint
        pool, self._pool = self._pool, None
        conn, self._conn = self._conn, None
        if pool is None:
            return
        if conn is not None:
            await asyncio.wrap_future(pool.submit(conn.close))
        pool.shutdown(wait=False)  # it ends after the close; a hung call: abandoned


# -- PostgreSQL ---------------------------------------------------------------------------

# migration 0010's function: the whole batch in one round trip (and one commit), applied
# once per batch id (0006's function behind a record of the id and the rows it returned)
_PG_BATCH = (  # migration 0015's, with the leases' writes (0010's without)
    "SELECT idx, ok, bal, res, lease FROM llm_mesh_settle_batch2_once($1::uuid, "
    "$2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::int[], $8::text[], "
    "$9::text[], $10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::bigint[], "
    "$15::bigint[], $16::text, $17::timestamptz)"
)
# a deadlock the server broke: payers are locked in order, but a lease's recovery can meet a
# take on the same lease (docs/ARCHITECTURE.md, "Atomic reservation")
_PG_RETRIES = 3
# the pauses before each new connection after a lost one (a server restart takes a few
# seconds): sending a batch again is safe, its id makes it apply once
_PG_RECONNECT_S = (0.0, 0.25, 1.0)


def _pg_rows(ops: Sequence[Op]) -> tuple[list[list[Any]], list[int]]:
    """The function's column arrays for ``ops`` (in payer order; an answer's parts 1... as
    rows of their own after it) and, per row, the index of the op it belongs to."""
    cols: list[list[Any]] = [[] for _ in range(14)]
    owner: list[int] = []

    def row(i: int, *values: Any) -> None:  # the last three (a lease's) None if not given
        for col, v in zip(cols, (*values, None, None, None)[:14], strict=True):
            col.append(v)
        owner.append(i)

    for i in _in_payer_order(ops):
        op = ops[i]
        if isinstance(op, Reserve):
            row(i, "reserve", op.key, op.payer, op.model, op.estimate, 0, None, None, None,
                None, None)  # fmt: skip
        elif isinstance(op, Answer):
            first = op.parts[0]
            row(i, "answer", op.key, op.payer, op.model, op.total, 0, first.node_id,
                first.operator, first.amount, first.fee, op.receipt_hash)  # fmt: skip
            for n, p in enumerate(op.parts[1:], start=1):
                row(i, "part", op.key, op.payer, op.model, 0, n, p.node_id, p.operator,
                    p.amount, p.fee, op.receipt_hash)  # fmt: skip
        elif isinstance(op, Void):
            row(i, "void", op.key, op.payer, None, 0, 0, None, None, None, None, None)
        else:
            op.pg_rows(partial(row, i))
    return cols, owner


def _batch_id() -> uuid.UUID:
    """A batch's id: 80 random bits after the time in ms (48 bits, as a UUIDv7's), so the
    ids of one period sit together in ``settle_batches``'s index."""
    return uuid.UUID(bytes=(time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10))


def _pg_lost(exc: BaseException) -> bool:
    """Lost, not the batch's own: the start's rule (a bad setting is not), or ``OSError``."""
    return isinstance(exc, OSError) or lost_connection(exc)


class PgSettleDb:
    """:class:`SettleDb` on PostgreSQL: one dedicated ``asyncpg`` connection; a batch is one
    call of migration 0010's ``llm_mesh_settle_batch_once`` (one round trip, one commit),
    applied once per batch id however often it is sent."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: Any = None

    async def open(self) -> None:
        if self._conn is None:
            import asyncpg  # lazy: only a PostgreSQL store needs it

            self._conn = await asyncpg.connect(**asyncpg_args(self.dsn))  # as the store's

    async def apply(
        self, ops: Sequence[Op], holder: str, now: datetime
    ) -> list[Reserved | bool | None]:
        import asyncpg

        if self._conn is not None and self._conn.is_closed():
            self._conn = None
        cols, owner = _pg_rows(ops)
        batch = _batch_id()
        deadlocks = lost = 0
        while True:
            try:
                if self._conn is None:
                    await self.open()
                rows = await self._conn.fetch(_PG_BATCH, batch, *cols, holder, now)
                break
            except asyncpg.exceptions.DeadlockDetectedError:
                deadlocks += 1
                if deadlocks == _PG_RETRIES:
                    raise
            except Exception as exc:
                if not _pg_lost(exc):
                    raise
                # the connection is gone (pg_terminate_backend, a server restart), or broken
                # without asyncpg noticing (it then answers InternalClientError "cannot
                # switch to state ..." to every call: MagicStack/asyncpg#1069), or a new
                # one could not be made: a new one after a pause, and the batch once more,
                # with the same id. Whether the server rolled the lost call back,
                # committed it before the rows reached us, or still runs it (the repeat
                # then waits for it), the batch is applied once and the rows are its own.
                # Not retried, a void or an answer would be lost while this holder lives;
                # after the last pause the error goes to the callers (any other at once).
                self._drop()
                if lost == len(_PG_RECONNECT_S):
                    raise
                await asyncio.sleep(_PG_RECONNECT_S[lost])
                lost += 1
        out: list[Reserved | bool | None] = [None] * len(ops)
        for r in rows:
            i, op = owner[int(r["idx"]) - 1], ops[owner[int(r["idx"]) - 1]]
            if isinstance(op, Reserve):
                out[i] = Reserved(bool(r["ok"]), int(r["bal"]), int(r["res"]))
            elif isinstance(op, Answer) and out[i] is None:
                out[i] = bool(r["ok"])  # the answer's own row (its parts follow it)
            elif not isinstance(op, (Answer, Void)) and out[i] is None:
                out[i] = op.pg_result(r)
        return out

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


def settle_db_for(url: str) -> SettleDb:
    """The :class:`SettleDb` for a store's SQLAlchemy URL (SQLite file or PostgreSQL)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise ValueError("settlement needs a SQLite file (or PostgreSQL), not :memory:")
        return SqliteSettleDb(str(private_sqlite_path(database, make=False)))  # (file_walk)
    if backend == "postgresql":
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return PgSettleDb(dsn)
    raise ValueError(f"settlement supports SQLite and PostgreSQL, not {backend!r}")
