"""Settlement's hot-path writes, once each is decided: :class:`SettleWriter`, a base of
:class:`~LLM_Mesh.registry.settlement.Settlement` (split from ``registry/settlement.py``,
which decides what a request writes and when: its docstring).

A write is done at once on the event loop when nothing is queued or being written and the
database's write lock is free (SQLite on WAL, :meth:`SettleWriter._now`); otherwise the
writer task group-commits it: whatever queued while its previous transaction ran is one
transaction, at most :data:`MAX_OPS` writes (:meth:`SettleWriter._write_batch`). After
each write (:meth:`SettleWriter._wrote`) an answer recorded goes to the settler, a lease's
write updates the book, a failed reservation is voided at every pause and a failed void or
answer written again (``SettleUpkeep._again``); a batch that failed fails each of its writes,
as a group commit's does (:meth:`SettleWriter._fail`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.settle_db import Answer, Op, Reserve, SettleDb, Void
from LLM_Mesh.registry.settle_lease import Spend, Take, lease_wrote
from LLM_Mesh.registry.settle_upkeep import SettleUpkeep

__all__ = ["LATER", "MAX_OPS", "SettleWriter"]

log = logging.getLogger("LLM_Mesh.registry.settlement")

MAX_OPS = 1000  # operations in one hot-path transaction
LATER = object()  # not written at once: the writer task writes it


class SettleWriter(SettleUpkeep):
    """The writes at once, the writer's queue and its group commits, and what follows each
    write (module docstring)."""

    _writing: bool  # a batch is being written (nothing may overtake it)
    _write_log: RoundLog  # the writer's failed batches, said once a run

    @property
    def db(self) -> SettleDb:
        if self._db is None:
            raise RuntimeError("settlement is not started")
        return self._db

    def _now(self, op: Op) -> Any:
        """``op``'s result, written at once on the event loop when nothing is queued or
        being written and the database's write lock is free (SQLite on WAL,
        ``SqliteSettleDb.try_inline``); else :data:`LATER` (the writer does it)."""
        if not self._started or self._ops or self._writing:
            return LATER
        try_inline = getattr(self._db, "try_inline", None)
        if try_inline is None:
            return LATER
        try:
            done = try_inline([op], self.holder)
        except Exception:  # as _fail: written again, or a lease's book put back
            self._wrote(op, None, failed=True)
            raise
        if done is None:
            return LATER
        self._wrote(op, done[0])
        return done[0]

    def _submit(self, op: Op, fut: asyncio.Future[Any] | None = None) -> None:
        """Queue ``op`` for the writer; ``fut`` (if any) gets its result."""
        if not self._started:
            if fut is not None:
                fut.set_exception(RuntimeError("settlement is not running"))
            return
        self._ops.append((op, fut))
        self._wake.set()

    def _ask(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op``; the future of its result."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._submit(op, fut)
        return fut

    async def _write_loop(self) -> None:
        while self._started:
            await self._wake.wait()
            self._wake.clear()
            while self._ops:
                await self._write_batch()

    async def _write_batch(self) -> None:
        batch, self._ops = self._ops[:MAX_OPS], self._ops[MAX_OPS:]
        now = datetime.now(timezone.utc)
        self._writing = True
        try:
            results = await self.db.apply([op for op, _ in batch], self.holder, now)
        except asyncio.CancelledError:  # the stop ran out of time: its answers given up
            self._fail(batch, RuntimeError("settlement stopped before the write ended"))
            raise
        except Exception as exc:
            self._fail(batch, exc)
            return
        finally:
            self._writing = False
        self._write_log.ok()  # a run of failed batches ends: one INFO
        for (op, fut), result in zip(batch, results, strict=True):
            self._wrote(op, result)
            if fut is not None and not fut.done():
                fut.set_result(result)

    def _wrote(self, op: Op, result: Any, failed: bool = False) -> None:
        """After ``op`` was written (or ``failed``, committed or not): an answer recorded
        goes to the settler; a lease's write updates the book; a failed reservation is
        voided at every pause, a failed void or answer written again (:meth:`_again`)."""
        if failed and isinstance(op, (Reserve, Take)):  # undone at every pause (_again)
            undo = Void(op.key, op.payer)
            self._undoing.add(undo)
            self._again(undo)
        elif failed and isinstance(op, (Void, Answer)):
            self._again(op)
        tries: int | None = None  # a void or an answer written again: done
        if self._tries and not failed and isinstance(op, (Void, Answer)):
            tries = self._tries.pop(op, None)
        again = tries is not None
        if tries is not None and isinstance(op, Void) and op in self._undoing:
            if self._again_more(tries):  # the reservation may commit later yet
                self._tries[op] = tries
                self._again(op)
            else:
                self._undoing.discard(op)
        if isinstance(op, Answer):
            if not failed and result:  # not recorded: answer() tries to revive it
                self._answered.append(op)
            elif again:  # answered by the failed write after all, or lapsed meanwhile
                self._check(self._answer_again(op))
        elif self.leases is not None and not isinstance(op, (Reserve, Void)):
            done = lease_wrote(self.leases, op, result, time.monotonic(), failed=failed)
            if done is not None:
                self._answered.append(done)
            elif failed and isinstance(op, Spend):  # committed or not: once (_spend_again)
                self._again(op)

    def _fail(self, batch: list[tuple[Op, asyncio.Future[Any] | None]], exc: Exception) -> None:
        """A batch of hot-path writes failed as one transaction (the store's trouble one WARNING
        line, a run an ERROR past 60 s: ``RoundLog``, newuser42): its answers journalled (one
        sync), then each waiting request hears it (a lease's write puts its book back)."""
        self._write_log.failed(exc, f"settlement: a batch of {len(batch)} writes failed")
        with self._journal_together():
            for op, _ in batch:
                self._wrote(op, None, failed=True)
        for fut in (f for _, f in batch if f is not None and not f.done()):
            fut.set_exception(exc)

    async def _drain(self) -> None:
        while self._ops:  # an answer that fails here is given up (written once more)
            await self._write_batch()
