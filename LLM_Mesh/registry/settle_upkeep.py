"""Settlement's settler, holders, recovery and the community pool: :class:`SettleUpkeep`, the
part of :class:`~LLM_Mesh.registry.settlement.Settlement` that runs off the hot path (see
``registry/settlement.py``'s docstring: the settler's appends, and "Upkeep").

Writes that fail are written again after the pauses of ``_AGAIN_S``, then at the last one's
interval until the database takes them (:meth:`SettleUpkeep._again`):
a void or an answer through the writer (idempotent), a lease's answer (``Spend``) on the
engine (:meth:`SettleUpkeep._spend_again`: ``settle_ledger.spend_again``, written once).
At stop (``Settlement.stop``), before its own recovery, the answers whose writes all failed
are written once more (:meth:`SettleUpkeep._answer_at_stop`); one still not written is
counted unpaid and logged (:meth:`SettleUpkeep._unpaid_at_stop`), never voided silently.

Recovery of dead holders: their answered rows are settled, their pending rows voided
(``lapsed``), their reservation leases released (``registry/settle_lease.py``), and their
``settle_holders`` rows removed. A holder taken for dead that was alive answers its lapsed
rows after all (:meth:`SettleUpkeep._revive`), whether its answer is written the first
time or again after a failed write (:meth:`SettleUpkeep._answer_again`), or counts the
answer unpaid (``Settlement.unpaid``) when the payer cannot cover it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.lease_book import LeaseBook
from LLM_Mesh.registry.held import FORFEIT_WINDOW_S, forfeit_revoked
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.settle_db import Answer, Op, SettleDb, SqliteSettleDb, Void, sqlite_time
from LLM_Mesh.registry.settle_durable import SettleDurable
from LLM_Mesh.registry.settle_holders import (
    HomeLock,
    beat,
    dead_holders,
    forget,
    forget_batches,
)
from LLM_Mesh.registry.settle_journal import claimed, dead_journals
from LLM_Mesh.registry.settle_lease import Spend, release_leases, release_unknown_leases
from LLM_Mesh.registry.settle_ledger import (
    LAPSED,
    VOID,
    answered_rows,
    balance,
    revive,
    row_state,
    settle,
    spend_again,
    top_up_pool,
    void_pending,
    with_operators,
)
from LLM_Mesh.registry.settle_sqlite import Refused, append_settled
from LLM_Mesh.registry.settle_worker import LedgerThread

__all__ = ["MAX_SETTLE", "SettleUpkeep"]

log = logging.getLogger("LLM_Mesh.registry.settlement")

MAX_SETTLE = 200  # requests in one ledger append (bounds how long one holds the loop)
# the pauses before a failed write is written again (_again); after the last, recovery's
_AGAIN_S = (0.5, 2.0, 8.0, 30.0, 60.0)


class _Kept(Exception):
    """The journals recovered are kept: the store's log holding their writes not synced."""


class SettleUpkeep(SettleDurable):
    """The settler, heartbeat, recovery, the pool's top-up and balances (a base of
    ``Settlement``)."""

    ledger: SqlLedger
    holder: str
    holder_ttl_s: float
    beat_s: float
    batch_keep_s: float
    pool_daily_budget: int
    wall_clock: Callable[[], float]
    operators: dict[str, str]
    leases: LeaseBook | None
    _db: SettleDb | None
    _pool_day: str | None
    _home_lock: HomeLock | None
    _settling: asyncio.Lock
    _answered: list[Answer]  # recorded (or maybe: see Settlement._again), to settle
    _given_up: set[Answer | Spend]  # answers whose writes failed at the stop (written once more)
    _tries: dict[Any, int]  # failed writes written again, and how often
    _checking: set[asyncio.Task[None]]  # answers written again: _answer_again, _spend_again
    _again_at: dict[Void | Answer | Spend, asyncio.TimerHandle]  # failed writes, due again
    _undoing: set[Op]  # failed reservations' voids: at every pause
    _ops: list[tuple[Any, asyncio.Future[Any] | None]]  # the writer's queue
    _wake: asyncio.Event
    stop_wait_s: float = 30.0  # the most stop() waits for any one of its steps, and
    stop_limit_s: float = 60.0  # for all of them: a database away or hung never holds it longer
    unpaid: int  # answers released whose row was no longer pending (and not revived)
    _started: bool
    _worker: LedgerThread | None
    settle_interval_s: float

    # -- the settler ---------------------------------------------------------------------------

    async def settle_now(self) -> int:
        """Settle the answered requests this process holds; how many were settled here.
        One settling at a time: a call waits for the settler's round in progress."""
        async with self._settling:
            return await self._settle_held()

    async def _settle_held(self) -> int:
        done = 0
        while self._answered:
            batch, self._answered = self._answered[:MAX_SETTLE], self._answered[MAX_SETTLE:]
            try:
                batch = [
                    a if all(p.operator is not None for p in a.parts)
                    else await self._with_operators(a)
                    for a in batch
                ]  # fmt: skip
                done += await self._settle(batch)
            except Exception:
                self._failed("settling", f"settling {len(batch)} requests failed", "retrying")
                self._answered[:0] = batch
                raise
        self._worked("settling")
        return done

    async def _settle(self, batch: list[Answer]) -> int:
        """Append ``batch``'s entries: on SQLite in one transaction on the hot path's
        connection, in its thread (``settle_sqlite.py``); else on the ledger thread (else
        here)."""
        db = self._db
        if isinstance(db, SqliteSettleDb) and self._started:
            done = await self._append_sqlite(db, batch)
            if done or len(batch) == 1:
                return done
            # someone settled (or voided) some of them: one at a time, as settle() does
            return sum([await self._append_sqlite(db, [a]) for a in batch])
        now = datetime.now(timezone.utc)
        worker = self._worker
        if worker is None or worker.ledger is None:
            return await settle(self.ledger, batch, now)
        return await worker.call(settle(worker.ledger, batch, now))

    async def _append_sqlite(self, db: SqliteSettleDb, batch: list[Answer]) -> int:
        """``batch`` settled into the ledger in one transaction, exactly once; how many."""
        now = datetime.now(timezone.utc)
        write = partial(
            append_settled, answers=batch, now=sqlite_time(now),
            now_us=int(self.wall_clock() * 1_000_000),
        )  # fmt: skip
        try:
            size = await db.transact(write, inline=False)  # the loop runs on meanwhile
        except Refused:
            return 0
        on_append = self.ledger.on_append
        if on_append is not None:
            on_append(size)
        return len(batch)

    async def _settle_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settle_interval_s)
            await self._settle_round()

    async def _settle_round(self) -> None:
        """The answered requests settled, then the store's log synced if it was written
        (``settle_durable.py``: the answers released meanwhile on the disk)."""
        with contextlib.suppress(Exception):  # logged in settle_now; retried next time
            await self.settle_now()
        await self._sync_written()  # never raises (logged)

    # -- answers whose row was not pending --------------------------------------------------

    async def _revive(self, op: Answer) -> bool:
        """The answer's row was not pending: if recovery voided it (``lapsed``: this holder
        was taken for dead), record it after all when the payer still covers it
        (``settle_ledger.revive``); else it is released unpaid (counted, logged)."""
        try:
            await self.beat()  # alive: its row again, before anyone else recovers it
            revived = await revive(
                await self._engine(), op, self.holder, datetime.now(timezone.utc)
            )
        except Exception:
            log.exception("settlement: could not revive the answer of %s", op.key)
            revived = False
        if revived:
            self._answered.append(op)
            log.warning("settlement: %s lapsed (this holder was taken for dead); recorded", op.key)
            return True
        return self._unpaid(op)

    def _unpaid(self, op: Answer) -> bool:
        self.unpaid += 1
        log.warning("settlement: %s was answered but no longer reserved: unpaid", op.key)
        return False

    # -- writes that failed, written again -------------------------------------------------

    def _again(self, op: Void | Answer | Spend) -> None:
        """Write ``op`` again after the next pause of :data:`_AGAIN_S`: its write failed,
        maybe after its commit (a void or an answer of a row no longer pending writes
        nothing; an answer written again that found its row so is checked,
        ``_answer_again``: answered by the failed write, settled, or lapsed meanwhile and
        revived or counted unpaid as a first answer is; a lease's answer is written once,
        :meth:`_spend_again`). A failed reservation's void (``_undoing``) is written at
        every pause, not only until written once: the reservation may still run on the
        server (PostgreSQL: its connection dropped, the reconnects failed) and insert its
        row after the first void found none. A write that failed at every pause is written
        again at the last pause's interval (60 s) for as long as this holder runs, until the
        database takes it (an answer goes to the settler once then, in case it did commit);
        at the stop an answer still not written is written once more
        (:meth:`_answer_at_stop`), then counted unpaid. Until 2026-12-05 it was left to
        recovery after the last pause, which for a live holder is its stop: a database away
        for longer than ~100 s left the void's estimate reserved and the answer unpaid for
        as long as the gateway ran, and a gateway then killed never paid the answer."""
        if not self._started or op in self._again_at:
            if not self._started and isinstance(op, (Answer, Spend)):  # failed while stopping
                self._given_up.add(op)  # stop() writes it once more (_answer_at_stop)
            return
        tries = self._tries.get(op, 0)
        if tries == 0 and isinstance(op, (Answer, Spend)):  # served, not paid: kept in the
            self._keep_unwritten(op)  # home until written (a crash: its successor writes it)
        if tries == len(_AGAIN_S):  # failed at every pause (an undo that was written, never)
            log.error(
                "settlement: %s of %s still not written after %d tries; written again every "
                "%.0f s until the database takes it", type(op).__name__, op.key, tries,
                _AGAIN_S[-1],
            )  # fmt: skip
            if isinstance(op, (Answer, Spend)):  # in case it committed: the guard pays once
                self._answered.append(op if isinstance(op, Answer) else op.answer)
        self._tries[op] = tries + 1
        loop = asyncio.get_running_loop()
        pause = _AGAIN_S[min(tries, len(_AGAIN_S) - 1)]
        self._again_at[op] = loop.call_later(pause, self._write_again, op)

    async def _write_unwritten(self, holders: list[str | None], now: datetime) -> list[Answer]:
        """The answers ``holders`` served and never wrote (this home's journals of those
        that are gone), recorded as they would have: a lapsed row revived, a lease's answer
        written once; those now answered (to settle). Their journals removed."""
        lock = self._home_lock
        if lock is None:
            return []
        engine = await self._engine()
        answered: list[Answer] = []
        with contextlib.suppress(_Kept), claimed(lock.home, holders, self.holder) as found:
            for u in found:
                a = await self._with_operators(u.answer)
                if u.lease:
                    done = await spend_again(engine, a, self.holder, now) == "answered"
                else:  # its lapsed row revived; or, the row lost with a power cut (the
                    # reservation not synced yet, settle_durable.py), written as a lease's
                    done = await revive(engine, a, u.holder, now) or (
                        await spend_again(engine, a, u.holder, now) == "answered"
                    )
                if done:
                    answered.append(a)
                if self.watch is not None:
                    self.watch.settle_recovered(done)
                log.warning(
                    "settlement: the answer of %s, served by %s and not written before it "
                    "stopped, %s", a.key, u.holder, "recorded" if done else "was written or "
                    "cannot be covered any more",
                )  # fmt: skip
            if found and not await self._durable_ok():  # on the disk before their journals go
                raise _Kept  # (settle_durable.py); kept: recovered again (idempotent)
        return answered

    @staticmethod
    def _again_more(tries: int) -> bool:
        """Whether a write written again ``tries`` times has pauses left (``_undoing``)."""
        return tries < len(_AGAIN_S)

    def _write_again(self, op: Void | Answer | Spend) -> None:
        self._again_at.pop(op, None)
        if isinstance(op, Spend):  # not through the writer: its rows would collide
            self._check(self._spend_again(op))
            return
        self._ops.append((op, None))  # stopping: its flush writes it
        self._wake.set()

    def _check(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._checking.add(task)
        task.add_done_callback(self._checking.discard)

    async def _spend_again(self, op: Spend) -> None:
        """A lease's answer whose write (``Spend``) failed, written again once
        (``settle_ledger.spend_again``: its rows unless it has some already; never twice):
        answered (now, or by the failed write) goes to the settler; settled, nothing; not
        covered by the payer any more: counted unpaid and logged. A write that fails again
        waits for the next pause (:meth:`_again`)."""
        try:
            engine = await self._engine()
            state = await spend_again(engine, op.answer, self.holder, datetime.now(timezone.utc))
        except asyncio.CancelledError:  # the stop ran out of time: counted there
            self._given_up.add(op)
            raise
        except Exception:
            log.exception("settlement: could not write the answer of %s again", op.key)
            self._again(op)
            return
        self._tries.pop(op, None)
        self._spent_again(op, state)

    def _spent_again(self, op: Spend, state: str | None) -> None:
        if state == "answered":
            self._answered.append(op.answer)
        elif state is None:
            self._unpaid(op.answer)

    async def _answer_again(self, op: Answer) -> None:
        """An answer written again (``Settlement._again``: its first write failed) found its
        row not pending: ``answered`` by that failed write after all (its reply lost): the
        settler's, whose guard pays it once; ``settled`` (recovery settled it meanwhile):
        nothing; else (``lapsed``: this holder was taken for dead meanwhile) a first
        answer's path, :meth:`_revive`: recorded after all, or counted unpaid."""
        try:
            try:
                state = await row_state(await self._engine(), op.key)
            except Exception:  # unknown: the settler's guard pays it once if it is answered
                log.exception("settlement: could not read the row of %s (answered again)", op.key)
                self._answered.append(op)
                return
            if state == "answered":
                self._answered.append(op)
            elif state != "settled":
                await self._revive(op)
        except asyncio.CancelledError:  # the stop ran out of time: counted there
            self._given_up.add(op)
            raise

    async def _answer_at_stop(self, wait: float) -> None:
        """At stop, before recovery voids this holder's pending rows: write once more the
        answers whose writes all failed (given up after the last pause, waiting for the
        next, or failed in stop's drain), at most ``wait`` seconds (a database away must
        not hold the stop). One recorded goes to the settler; one whose row is not pending
        any more takes ``_answer_again``'s path (a lease's: :meth:`_spend_again`'s); if the
        write fails, they stay given up (:meth:`_unpaid_at_stop`). Never raises."""
        given, self._given_up = list(self._given_up), set()
        db = self._db
        if not given or db is None:
            self._given_up.update(given)
            return
        for op in given:
            self._tries.pop(op, None)
        answers = [op for op in given if isinstance(op, Answer)]
        written: list[tuple[Answer, object]] = []
        spent: list[tuple[Spend, str | None]] = []

        async def write() -> None:
            for i in range(0, len(answers), MAX_SETTLE):
                batch = answers[i : i + MAX_SETTLE]
                done = await db.apply(batch, self.holder, datetime.now(timezone.utc))
                written.extend(zip(batch, done, strict=True))
            engine = await self._engine()
            for op in given:
                if isinstance(op, Spend):
                    now = datetime.now(timezone.utc)
                    spent.append((op, await spend_again(engine, op.answer, self.holder, now)))

        try:
            await asyncio.wait_for(write(), max(wait, 0.0))
        except Exception:  # the database away, or too slow (TimeoutError)
            log.exception("settlement: %d answer(s) not written at stop", len(given))
            done = {op for op, _ in written} | {op for op, _ in spent}
            self._given_up.update(op for op in given if op not in done)
        for op, recorded in written:
            if recorded:
                self._answered.append(op)
            else:
                self._check(self._answer_again(op))
        for sop, state in spent:
            self._spent_again(sop, state)

    async def _unpaid_at_stop(self, wait: float) -> None:
        """At stop, after recovery: each answer still not written (:meth:`_answer_at_stop`)
        whose row is not answered or settled (recovery voided it; or it cannot be read, the
        database away) was served unpaid: counted in ``unpaid`` and logged at WARNING with
        its key (never its content), not silently voided. The rows read at most ``wait``
        seconds; never raises."""
        answers, self._given_up = list(self._given_up), set()
        if not answers:
            return
        paid: set[str] = set()

        async def read() -> None:
            engine = await self._engine()
            for op in answers:
                if await row_state(engine, op.key) in ("answered", "settled"):
                    paid.add(op.key)  # its failed write committed: recovery settles it

        try:
            await asyncio.wait_for(read(), max(wait, 0.0))
        except Exception:
            log.exception("settlement: could not read the rows of the answers not written")
        for op in answers:
            if op.key not in paid:
                self.unpaid += 1
                log.warning(
                    "settlement: the answer of %s could not be written before the stop: "
                    "served unpaid",
                    op.key,
                )

    # -- holders, recovery, the pool ----------------------------------------------------------

    async def _with_operators(self, a: Answer) -> Answer:
        return await with_operators(await self._engine(), self.operators, a)

    async def _engine(self) -> AsyncEngine:
        return await self.ledger.engine()

    async def beat(self) -> None:
        """This holder is alive (the database's clock); its row is made again if removed."""
        await beat(await self._engine(), self.holder)

    async def dead_holders(self) -> list[str | None]:
        """Holders with rows in flight that are silent for longer than ``holder_ttl_s``
        or gone (``None``: rows without a holder)."""
        return await dead_holders(await self._engine(), self.holder_ttl_s, self.holder)

    async def recover(self, holders: list[str | None] | None = None) -> tuple[int, int]:
        """Settle the answered and void the pending rows of dead holders (default: every
        dead one); ``(settled, voided)``."""
        if holders is None:  # and the gone processes whose journals this home keeps
            holders = await self.dead_holders()
            home = None if self._home_lock is None else self._home_lock.home
            holders += [h for h in dead_journals(home, self.holder) if h not in holders]
        if not holders:
            return 0, 0
        engine = await self._engine()
        now = datetime.now(timezone.utc)
        answers = await answered_rows(engine, holders)
        settled = 0
        for i in range(0, len(answers), MAX_SETTLE):
            batch = [await self._with_operators(a) for a in answers[i : i + MAX_SETTLE]]
            settled += await settle(self.ledger, batch, now)
        voided = 0
        for holder in holders:  # another's rows lapse (it may answer them yet); ours: void
            state = VOID if holder == self.holder else LAPSED
            voided += await void_pending(engine, holder, now, state)
        others = [h for h in holders if h != self.holder]
        leased = 0
        if others:  # answers they served and never wrote, if this home kept them, recorded
            # once their leases are released (a lease's answer is reserved again from the
            # payer's available balance) and they are forgotten (their rows then a gone
            # holder's: a crash before they are settled leaves them to the next recovery at
            # once, not after holder_ttl_s); settle_durable.py
            leased = await release_leases(engine, others)
            await forget(engine, others)
            settled += await settle(self.ledger, await self._write_unwritten(others, now), now)
        if self._own_journal is not None and self.holder in holders:  # its stop: its rows
            if await self._durable_ok():  # void now, its answers written or counted unpaid, and
                self._own_journal.remove()  # on the disk (settle_durable.py); else kept for
            else:  # the next process on the home (idempotent)
                self._own_journal.abandon()
        leased += await release_leases(engine, holders)  # a live one's answers: Spend's fallback
        if self.holder in holders and self.leases is not None:
            self.leases.clear()
        await forget(engine, holders)
        if settled or voided or leased:  # its own stop giving its leases back is no news
            own_stop = holders == [self.holder] and not settled and not voided
            log.log(
                logging.INFO if own_stop else logging.WARNING,
                "settlement: recovered %d holder(s): %d answered request(s) settled, "
                "%d pending voided, %d µNT of leases released", len(holders), settled, voided,
                leased,
            )  # fmt: skip
        return settled, voided

    async def _unknown_leases(self) -> int:
        """This holder's lease rows its book does not know, handed back
        (``settle_lease.release_unknown_leases``: a take that committed after its lease went
        back; found 2026-12-05: held until the stop); the amount released."""
        book = self.leases
        if book is None:
            return 0
        # the book itself, read as the rows are: a lease made before the rows were read is
        # in it (the book has it before its take is written)
        amount = await release_unknown_leases(await self._engine(), self.holder, book.leases)
        if amount:
            log.warning(
                "settlement: %d µNT of lease rows this holder no longer had (a take that "
                "committed after its lease went back) released", amount,
            )  # fmt: skip
        return amount

    def utc_day(self) -> str:
        return datetime.fromtimestamp(self.wall_clock(), timezone.utc).strftime("%Y-%m-%d")

    async def top_up_pool(self) -> int | None:
        """The community pool's top-up for today, if not done yet (see settle_ledger)."""
        day = self.utc_day()
        if self._pool_day == day:
            return None
        added = await top_up_pool(
            self.ledger, day, self.pool_daily_budget, datetime.now(timezone.utc)
        )
        self._pool_day = day
        if added:
            log.info("settlement: community pool topped up by %d µNT for %s", added, day)
        return added

    async def forfeit_late(self) -> dict[str, int]:
        """Held earnings of recently revoked nodes forfeited (``held.forfeit_revoked``:
        holds settled after the revocation's forfeit); ``node id → amount``."""
        since = datetime.now(timezone.utc) - timedelta(seconds=FORFEIT_WINDOW_S)
        done = await forfeit_revoked(self.ledger, since)
        for node_id, amount in sorted(done.items()):
            log.warning(
                "settlement: %d µNT held for node %s, revoked, settled after its revocation: "
                "forfeited to the network", amount, node_id,
            )  # fmt: skip
        return done

    async def upkeep(self) -> None:
        """One round of upkeep: heartbeat, recovery of dead holders, this holder's lease rows
        its book does not know handed back, the pool's top-up,
        the late holds of revoked nodes forfeited; on PostgreSQL, the hot path's batch ids
        older than ``batch_keep_s`` deleted."""
        await self.beat()
        await self.recover()
        await self._drop_written()
        await self._unknown_leases()
        await self.top_up_pool()
        await self.forfeit_late()
        if not isinstance(self._db, SqliteSettleDb):
            await forget_batches(await self._engine(), self.batch_keep_s)

    async def _upkeep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.beat_s)
            try:
                async with self._settling:  # stop() cancels it between rounds only
                    await self.upkeep()
            except Exception:
                self._failed("upkeep", "upkeep failed", f"tried again in {self.beat_s:g} s")
            else:
                self._worked("upkeep")

    async def balance(self, account: str) -> tuple[int, int]:
        """``(balance, reserved)`` of a ledger account, in micro-NetworkTokens."""
        return await balance(await self._engine(), account)
