"""Settlement's hot-path writes on a SQLite file (:class:`SqliteSettleDb`; the operations:
``registry/settle_ops.py``; the writer for a store: ``settle_db.settle_db_for``).

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
connections keep the file at ``journal_size_limit`` (32 MiB) or less when it starts over.
When another connection holds the write lock (a ledger append), the batch goes to the
connection's own thread (``registry/db_thread.py``), which tries again every 0.2 ms (at
most ``busy_timeout_ms``; SQLite's own busy handler would sleep 1, 2, 5, 10... ms between
tries). :meth:`SqliteSettleDb.transact` runs any function of the connection that way (the
settler's ledger append: ``registry/settle_sqlite.py``); the connection is never used on
the loop while its thread has it.

A batch is never sent twice by a lost connection here (PostgreSQL's hazard,
``settle_db_pg.py``): a commit is a call in this process, never lost on its way back, and
the only error a batch is tried again on is busy/locked, which ``COMMIT`` returns having
committed nothing (the transaction is rolled back before the retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import partial
from typing import Any, TypeVar

from LLM_Mesh.registry.db_thread import DbThread
from LLM_Mesh.registry.settle_ops import Answer, Op, Reserve, Reserved, Void, in_payer_order

log = logging.getLogger(__name__)

__all__ = ["JOURNAL_SIZE_LIMIT", "SqliteSettleDb", "sqlite_now", "sqlite_time"]

T = TypeVar("T")

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
        for i in in_payer_order(ops):
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
