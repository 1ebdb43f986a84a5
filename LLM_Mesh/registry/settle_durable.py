"""Settlement's writes on the disk: the store's write-ahead log synced by the settler, and a
journal of answers not written dropped only once the writes are synced
(:class:`SettleDurable`, a base of :class:`~LLM_Mesh.registry.settle_upkeep.SettleUpkeep`).

A SQLite store commits with ``synchronous=NORMAL`` (``settle_db.py``): a commit is in the
log, not synced, so a power cut or a kernel crash can roll the last commits back (a
consistent database, missing its last moments). PostgreSQL needs nothing here: its commits
wait for the disk (``synchronous_commit`` on, the server's default; docs/deploy.md).

**The settler syncs the log** (:meth:`SettleDurable._sync_written`): after each of its rounds
(every ``settle_interval_s``, 0.2 s) the log is synced in a thread (``ledger_durable.sync_log``:
an ``fsync`` of ``registry.db-wal``, which covers every commit made before it, whichever
connection made it) when it changed since the last sync (its size or time), so an answer
released with its receipt is on the disk a round later, not only at the log's next
checkpoint (every 300 of settlement's commits) or the ledger's next checkpoint (60 s):
found 2026-12-05, a power cut lost up to a minute of paid answers at low traffic. One
``fsync`` a round at most, none when idle. Not *before* the receipt: that costs a sync a
request on the hot path (``benchmarks/probe_settle_durable.py``, docs/benchmarks.md).

**A journal dropped only once its writes are on the disk.** A journal line
(``settle_journal.py``) is the only trace of an answer released whose write failed. It was
dropped as soon as the write had *committed*: by the holder's upkeep round once the
database took it (:meth:`SettleDurable._drop_written`), by a clean stop
(``SettleUpkeep.recover``), by the recovery of a dead holder's journal
(``SettleUpkeep._write_unwritten``); a power cut after the drop rolled the write back with
nothing left to redo it: the answer unpaid, its receipt never matched by a ledger entry
(found 2026-12-05). Now each drop first syncs the log (:meth:`SettleDurable._store_durable`)
and drops the journal only if no answer was added meanwhile; a sync that fails keeps it
(written again, or recovered, as before: both idempotent). Recovery records a line by
reviving its lapsed ``pending`` row (``settle_ledger.revive``); a line whose row a power cut
took (its reservation made in the last round before the cut, not synced yet; the line itself
is synced before the answer goes out) is written as a lease's answer is
(``settle_ledger.spend_again``: its total reserved from the payer's available balance, its
rows inserted, unless the request has a row or ledger entries already): paid once (found
2026-12-05: left unpaid, the journal removed). Syncing the reservation on the event loop
before a failed batch's lines are journalled was tried: the loop held 14–21 ms a failed batch
of 256 against 6–7 (``benchmarks/probe_journal_batch.py``, one run, 2026-12-05); not done.

**A sync that fails** (``EIO``: :meth:`SettleDurable._durable_ok`) keeps the journal and is
logged as the settler's own sync failures are (as every loop's, ``failed_rounds.RoundLog``,
``first_only``: the first of a run with its traceback, 60 s into it one ERROR, its end one
INFO: ``syncing the database's log failed``); the round goes on. Found 2026-12-05: it
raised out of the upkeep round before the pool's daily top-up, the leases handed back and
the late forfeits (skipped for as long as the sync failed), out of the start (the registry
did not start) and out of a clean stop's recovery (its leases and holder row left behind).
Dead holders' leases are released and the holders forgotten (``settle_holders.forget``)
before their journals' answers are recorded: a lease's answer is reserved again from the
payer's available balance, which its own lease no longer holds (found 2026-12-05: released
after, so a payer whose other half was reserved elsewhere could not cover it: unpaid), and a
crash before those answers are settled leaves them to the next recovery at once, not after
``holder_ttl_s`` (found 2026-12-05; both ``tests/registry/test_settle_power_cuts.py``).

**Seen by operators** (found 2026-12-05: a failing sync was only a log line): each failed
sync, each answer whose write failed (journalled) and each journal line recovered is told to ``watch`` (a
:class:`SettleWatch`: the gateway's metrics, ``llm_mesh_gateway_settle_*``, called on those
rare events only), and :meth:`SettleDurable.sync_failing_s` says how long the syncs have been
failing (``GET /healthz``: ``degraded``, the ``settle_sync_failing`` gauge), until one works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.ledger_durable import sync_log
from LLM_Mesh.registry.settle_db import Answer, SettleDb, SqliteSettleDb
from LLM_Mesh.registry.settle_holders import HomeLock
from LLM_Mesh.registry.settle_journal import OwnJournal, Unwritten
from LLM_Mesh.registry.settle_lease import Spend

__all__ = ["SettleDurable", "SettleWatch"]

log = logging.getLogger("LLM_Mesh.registry.settlement")

# a file's times come from a coarse clock (a kernel tick, 1 to 10 ms): a write in the tick of
# the stat before a sync may leave them as they were, so a log changed that recently is
# synced again at the next round
_TICK_NS = 50_000_000


RoundTask = Literal["settling", "syncing", "upkeep"]
ROUND_TASKS: tuple[RoundTask, ...] = ("settling", "syncing", "upkeep")  # each a RoundLog


class SettleWatch(Protocol):
    """Who hears settlement's rare events (the gateway's metrics; module docstring)."""

    def settle_sync_failed(self) -> None: ...

    def settle_unwritten(self) -> None: ...

    def settle_recovered(self, recorded: bool) -> None: ...


class SettleDurable:
    """The store's log synced; the journal of answers not written (module docstring)."""

    holder: str
    _db: SettleDb | None
    _home_lock: HomeLock | None
    _own_journal: OwnJournal | None = None  # made at the first answer not written
    _unwritten_batch: list[Unwritten] | None = None  # _journal_together's
    _tries: dict[Any, int]
    _again_at: dict[Any, asyncio.TimerHandle]
    _given_up: set[Any]
    _checking: set[asyncio.Task[None]]
    #: how the store's write-ahead log is synced (``os.fsync``; injected by tests)
    fsync: Callable[[int], None] | None = None
    _synced: tuple[int, int] | None = None  # the log's size and time at its last sync
    watch: SettleWatch | None = None  # told of failed syncs, journalled and recovered answers

    _write_log: RoundLog  # the settlement writer's failed batches (``settlement.py``)
    round_clock: Callable[[], float] = staticmethod(time.monotonic)  # times their runs

    # -- a run of failed rounds (a database away): as every loop's ---------------------------

    def round_logs(self) -> Iterable[RoundLog]:
        """The settlement's loops: its rounds' (:data:`ROUND_TASKS`) and its writer's
        (``failed_rounds.HasRoundLogs``; loops42: each declared, none found by reflection)."""
        return (*self._round_logs_by_task().values(), self._write_log)

    def _round_logs_by_task(self) -> dict[RoundTask, RoundLog]:
        """The failed rounds of each task: as every background loop's
        (``failed_rounds.RoundLog``), ``first_only`` (the settler's rounds are every 0.2 s;
        found 2026-12-04: a replica whose PostgreSQL was away logged both tracebacks every
        few seconds, the cause buried); made together, at the first read."""
        logs: dict[RoundTask, RoundLog] | None = self.__dict__.get("_round_logs")
        if logs is None:
            logs = self.__dict__["_round_logs"] = {
                task: RoundLog(
                    log,
                    f"settlement {task}",
                    clock=lambda: self.round_clock(),
                    first_only=True,
                    label=f"settlement_{task}",
                )
                for task in ROUND_TASKS
            }
        return logs

    def _round_log(self, task: RoundTask) -> RoundLog:
        return self._round_logs_by_task()[task]

    def _failed(self, task: RoundTask, what: str, then: str) -> None:
        """A failed round of ``task``, inside its ``except``."""
        exc = sys.exc_info()[1]
        if exc is None:  # (a raise, not an assert: asserts vanish under -O)
            raise RuntimeError("settlement: _failed called outside an except")
        self._round_log(task).failed(exc, f"settlement: {what}", then, stacklevel=2)

    def _worked(self, task: RoundTask) -> None:
        self._round_log(task).ok(stacklevel=2)

    def sync_failing(self) -> bool:
        """Whether the last sync of the store's log failed (:meth:`sync_failing_s`)."""
        return self._round_log("syncing").failing > 0

    def sync_failing_s(self) -> float | None:
        """How long the syncs of the store's log have been failing (seconds since the first
        failure of the run), ``None`` while the last one worked (or none ran)."""
        return self._round_log("syncing").failing_s()

    def _sync_failed(self, then: str) -> None:
        """A sync of the store's log failed, inside an ``except``: logged, and told."""
        self._failed("syncing", "syncing the database's log failed", then)
        if self.watch is not None:
            self.watch.settle_sync_failed()

    async def _sync_written(self) -> None:
        """The settler's round: the store's log synced when it changed since the last sync
        (module docstring); a failure logged as the settler's are, tried next round."""
        db = self._store_file()
        if db is None:
            return
        try:
            now = time.time_ns()
            st = os.stat(db.with_name(db.name + "-wal"))
            seen = (st.st_size, st.st_mtime_ns)
            if seen != self._synced:  # a write after the stat: synced too, and again next
                await self._store_durable()
                self._synced = seen if now - st.st_mtime_ns > _TICK_NS else None
        except FileNotFoundError:  # no log (not WAL; the last connection closed it)
            return
        except OSError:
            self._sync_failed("tried again")
        else:
            self._worked("syncing")

    def _keep_unwritten(self, op: Answer | Spend) -> None:
        answer = op if isinstance(op, Answer) else op.answer
        u = Unwritten(self.holder, answer, isinstance(op, Spend))
        if self.watch is not None:
            self.watch.settle_unwritten()
        if self._unwritten_batch is not None:  # a failed batch's: kept together (below)
            self._unwritten_batch.append(u)
        else:
            self._journal_add([u])

    @contextlib.contextmanager
    def _journal_together(self) -> Iterator[None]:
        """The answers journalled meanwhile (a failed batch's) in one write and one sync,
        when it ends (found 2026-12-05: one sync each, on the loop, while serving)."""
        batch: list[Unwritten] = []
        self._unwritten_batch = batch
        try:
            yield
        finally:
            self._unwritten_batch = None
            self._journal_add(batch)

    def _journal_add(self, us: list[Unwritten]) -> None:
        """``us`` in this process's own journal (``settle_journal.py``), when it has a home
        (each process on it its own: ``--workers N`` too)."""
        lock = self._home_lock
        if lock is None or not us:
            return
        if self._own_journal is None:
            self._own_journal = OwnJournal(lock.home, self.holder)
        try:
            self._own_journal.add(*us)
        except (OSError, ImportError):  # the home not writable: written again all the same
            log.exception("settlement: could not keep %d answer(s) in the home", len(us))

    def _store_file(self) -> Path | None:
        """The SQLite file settlement writes to; ``None`` on PostgreSQL (durable commits)."""
        db = self._db
        return Path(db.path) if isinstance(db, SqliteSettleDb) else None

    async def _store_durable(self) -> None:
        """Every commit made so far on the store on the disk (module docstring): on SQLite
        an ``fsync`` of its log in a thread; an error raises (a journal is then kept)."""
        db = self._store_file()
        if db is not None:
            await asyncio.to_thread(sync_log, db, self.fsync)

    async def _durable_ok(self) -> bool:
        """:meth:`_store_durable`, whether it worked: a failure (``EIO``) logged as the
        settler's round logs its own, never raised (module docstring: the journal is kept,
        the round goes on)."""
        try:
            await self._store_durable()
        except OSError:
            self._sync_failed("the journal is kept")
            return False
        self._worked("syncing")
        return True

    def _busy(self) -> bool:
        return bool(self._tries or self._again_at or self._given_up or self._checking)

    async def _drop_written(self) -> None:
        """This process's journal, once none of its writes waits to be written again (each
        journalled answer is written, or counted at the stop) and the store's log holding
        those writes is synced; not if an answer was journalled while it synced. Found
        2026-12-05: kept until its stop, so the file grew with every answer of every outage
        for as long as the gateway ran; and (module docstring) dropped before the writes
        were on the disk."""
        journal = self._own_journal
        if journal is None or not journal.kept or self._busy():
            return
        lines = journal.lines
        if not await self._durable_ok():  # kept: dropped at a later round whose sync works
            return
        if journal.kept and journal.lines == lines and not self._busy():
            journal.remove()
