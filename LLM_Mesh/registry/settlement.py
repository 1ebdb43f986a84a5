"""Settlement: who pays whom for each request, exactly once (docs/ARCHITECTURE.md, Settlement).

One :class:`Settlement` per registry process (``Runtime.settlement``), on the store's
database (or a memory-store registry's private ledger). It is a *holder*: a random id
in ``settle_holders`` with a heartbeat (the database's clock), written on every row it
reserves. On the hot path (``registry/charge.py`` and the account stage):

1. :meth:`reserve` (admit stage, before any node runs): the estimate is reserved from the
   payer and the request's ``pending`` row written, in one transaction; refused when the
   payer's available balance (balance less reservations) does not cover it (402).
2. :meth:`answer` (before the answer, or a stream's final chunk, is released): the exact
   parts (node, operator, amount, fee) are written, ``answered``; ``reserved`` drops to
   the exact total. A part's payee (:meth:`payee`) is the node's held account instead of
   its operator while the node is quarantined (``registry/held.py``).
3. :meth:`void` (a failure, or no tokens delivered): ``pending`` → ``void``; not awaited,
   never raises into the request.

A write that fails may have committed all the same (PostgreSQL: the reply lost after the
``COMMIT``): a failed reservation is voided, a failed void or answer written again, once
(``SettleUpkeep._again``, ``_answer_again``, ``_spend_again``; not written: counted unpaid).

With reservation leases (``lease_estimates`` > 0, ``LLM_MESH_SETTLE_LEASE``; the book in
``core/lease_book.py``, the writes in ``registry/settle_lease.py``): :meth:`reserve` admits
from this holder's lease on the payer in memory (no write), or grows it (``Take``; refused
near the end of the balance: then the pending row as above); :meth:`answer` writes the
answered rows and moves the total out of the lease (``Spend``, one write); :meth:`void`
gives the estimate back to the lease; idle leases go back every ``lease_idle_s / 2``
(:meth:`give_back`), and recovery and :meth:`stop` release them.

Reserve and answer are awaited, but cheap: when nothing is queued and the database's
write lock is free (SQLite on WAL), the write is done at once on the event loop;
otherwise it is group-committed: a single writer task runs whatever queued while its
previous transaction ran as one transaction (``registry/settle_db.py``: a dedicated
connection). While other requests are in flight (reserved, not yet answered or voided:
:attr:`Settlement.in_flight`), a write waits for the end of the event loop's current
iteration instead, and what the requests of that iteration wrote is one transaction
(:meth:`Settlement._at_tick`: on SQLite the commit is most of a write's cost, and
concurrent requests tend to reach the same stage in the same iteration); a request alone
still writes at once. Then, off the hot path, the settler task (``registry/settle_upkeep.py``,
with upkeep) appends the ledger entries of answered requests every ``settle_interval_s``
(exactly once per request, whoever tries): on SQLite in one transaction on that same
connection, in its thread (``registry/settle_sqlite.py``: one hand-off a round, none a
statement); on PostgreSQL with ``registry/settle_ledger.py`` on a thread with its own event
loop and engine (``registry/settle_worker.py``), so an append's transaction is not
stretched by the requests the gateway's loop runs meanwhile.

Upkeep (every ``beat_s``): the heartbeat; **recovery** of dead holders (silent for more
than ``holder_ttl_s``, or gone from ``settle_holders``): their answered rows are settled,
their pending rows voided as ``lapsed`` (a holder taken for dead that was alive records its
answer after all, :meth:`SettleUpkeep._revive`); the community pool's daily top-up (UTC); on
PostgreSQL, deleting the hot path's batch ids older than an hour (``settle_batches``). At start, recovery
runs before the first request; a process restarted on the same ``$LLM_MESH_HOME``
recovers its predecessor at once (``registry/settle_holders.py``: the home's
``settlement.lock``, held with ``flock`` while a process runs, and ``settlement.holder``,
its holder id). On a clean stop the writer is drained, the answers whose writes failed
(given up, or waiting for their next pause) are written once more (still not written:
counted in ``unpaid`` and logged), answered requests are settled, the holder's own pending
rows voided and its row removed; each step at most ``stop_wait_s``, all at most
``stop_limit_s`` (the rest: recovery's).

Its bases: ``settle_writer.py`` (the writes at once, the writer and what follows each
write), ``settle_leasing.py`` (the leases' takes in flight and give-backs),
``settle_upkeep.py`` (the settler, upkeep, recovery), ``settle_start.py`` (a start that
raises part way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from LLM_Mesh.core.lease_book import LeaseBook
from LLM_Mesh.core.ledger_entry import Pseudonyms, pseudonym
from LLM_Mesh.core.pricing import checked_fee_bps
from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_accounts import pseudonyms
from LLM_Mesh.registry.settle_db import (
    Answer,
    Op,
    Reserve,
    Reserved,
    SettleDb,
    SqliteSettleDb,
    Void,
    settle_db_for,
)
from LLM_Mesh.registry.settle_holders import HomeLock
from LLM_Mesh.registry.settle_lease import Spend, Spent, Take
from LLM_Mesh.registry.settle_leasing import LEASED, SettleLeasing
from LLM_Mesh.registry.settle_start import SettleStart
from LLM_Mesh.registry.settle_worker import LedgerThread
from LLM_Mesh.registry.settle_writer import LATER, SettleWriter

__all__ = ["Settlement", "user_account"]

log = logging.getLogger(__name__)

_MAX_IN_FLIGHT = 100_000  # Settlement.in_flight is a hint: cleared past this size


@lru_cache(maxsize=65_536)
def user_account(key_id: str) -> str:
    """The ledger account of an API key's user."""
    return pseudonym("user", key_id)


class Settlement(SettleStart, SettleLeasing, SettleWriter):
    """See the module docstring."""

    def __init__(
        self,
        ledger: SqlLedger,
        db: SettleDb | None = None,
        *,
        fee_bps: int,
        pool_daily_budget: int,
        wall_clock: Callable[[], float],
        home: Path | None = None,
        settle_interval_s: float = 0.2,
        beat_s: float = 5.0,
        holder_ttl_s: float = 30.0,
        batch_keep_s: float = 3600.0,
        lease_estimates: int = 0,
        lease_idle_s: float = 1.0,
    ) -> None:
        self.ledger = ledger
        self._db = db  # None: made at start for the ledger's database (settle_db_for)
        self.fee_bps = checked_fee_bps(fee_bps)  # (0 to 100 %: else each paid request 500s)
        self.pool_daily_budget = pool_daily_budget
        self.wall_clock = wall_clock
        self.home = home
        self.settle_interval_s = settle_interval_s
        self.beat_s = beat_s
        self.holder_ttl_s = holder_ttl_s
        self.batch_keep_s = batch_keep_s  # PostgreSQL's batch ids (settle_batches) kept
        self.holder = "h-" + uuid.uuid4().hex[:20]
        # reservation leases (settle_lease.py; 0: off): estimates a lease leaves free, and
        # how long one may stay unused before it goes back; made at start (SQLite only)
        self.lease_estimates = lease_estimates
        self.lease_idle_s = lease_idle_s
        self.leases: LeaseBook | None = None
        self._taking: dict[str, set[asyncio.Future[Any]]] = {}  # lease id -> takes in flight
        self.operators: dict[str, str] = {}  # node id -> operator's ledger account
        self.accounts: Pseudonyms | None = None  # the ledger's keyed accounts (at start)
        # whether a node's earnings are held (quarantined: Quality.held, wired by the app)
        self.held: Callable[[str], bool] = lambda _node_id: False
        self.unpaid = 0  # answers released whose row was no longer pending (see answer)
        # reserved, not yet answered or voided here: whether a write waits for _at_tick (a hint)
        self.in_flight: set[str] = set()
        self.tick_batches = 0  # transactions of the writes gathered over a loop iteration
        self.tick_ops = 0  # ... and the writes in them
        self._tick: list[tuple[Op, asyncio.Future[Any] | None]] = []
        self._ops: list[tuple[Op, asyncio.Future[Any] | None]] = []
        self._wake = asyncio.Event()
        self._answered: list[Answer] = []
        self._again_at: dict[Void | Answer | Spend, asyncio.TimerHandle] = {}  # settle_upkeep
        self._checking: set[asyncio.Task[None]] = set()  # ... declares what these are
        self._tries: dict[Op, int] = {}
        self._undoing: set[Op] = set()
        self._given_up: set[Answer | Spend] = set()
        self._settling = asyncio.Lock()
        self._writing = False  # a batch is being written (nothing may overtake it)
        self._write_log = RoundLog(log, "settlement writer", first_only=True)  # many a second
        self._tasks: list[asyncio.Task[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._home_lock = None if home is None else HomeLock(home)
        self._worker: LedgerThread | None = None  # the settler's appends (settle_worker.py)
        self._pool_day: str | None = None
        self._started = False

    async def load_operators(self, store: Any) -> None:
        """Every known node's operator, from the store (registered before, or elsewhere)."""
        self.accounts = await pseudonyms(await self._engine())
        for op in await store.list_operators():
            for node_id in op.nodes:
                self.note_operator(node_id, op.name)

    # -- the hot path ---------------------------------------------------------------------

    def _write(self, op: Op, others: bool, *, reply: bool = True) -> Any:
        """Start writing ``op``: its result when it was written at once (:meth:`_now`), else
        a future of it (``None`` without ``reply``). ``others``: other requests are in
        flight, so the write joins this loop iteration's batch (:meth:`_at_tick`); so does
        every write while a batch is gathering (nothing overtakes it)."""
        if self._tick or (others and self._started and hasattr(self._db, "try_inline")):
            return self._at_tick(op, reply)
        try:
            now = self._now(op)
        except Exception:
            if reply:
                raise
            # a void or a give: nobody waits for it (a request that failed, the lease loop);
            # _wrote put it back: written again later, or handed back next round
            log.exception("settlement: could not write a %s now", type(op).__name__)
            return None
        if now is not LATER:
            return now
        if not reply:
            self._submit(op)
            return None
        return self._ask(op)

    def _at_tick(self, op: Op, reply: bool = True) -> asyncio.Future[Any] | None:
        """Queue ``op`` for the batch written once the event loop's current iteration is
        over (:meth:`_run_tick`, scheduled by the iteration's first write): what the
        requests of one iteration write, in the order they wrote it, is one transaction."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future() if reply else None
        self._tick.append((op, fut))
        if len(self._tick) == 1:
            loop.call_soon(self._run_tick)
        return fut

    def _run_tick(self) -> None:
        """Write the iteration's batch on the loop in one transaction when nothing is queued
        before it and the write lock is free at once; else hand it to the writer, in order.
        A failure fails each of its writes, as a group commit's does."""
        batch, self._tick = self._tick, []
        if not self._started:  # accepted while running: stop() writes them (flush)
            self._ops.extend(batch)
            return
        done = None
        try_inline = getattr(self._db, "try_inline", None)
        if not self._ops and not self._writing and try_inline is not None:
            try:
                done = try_inline([op for op, _ in batch], self.holder)
            except Exception as exc:
                self._fail(batch, exc)
                return
        if done is None:
            for op, fut in batch:
                self._submit(op, fut)
            return
        self.tick_batches += 1
        self.tick_ops += len(batch)
        for (op, fut), result in zip(batch, done, strict=True):
            self._wrote(op, result)
            if fut is not None and not fut.done():
                fut.set_result(result)

    async def reserve(self, key: str, payer: str, model: str, estimate: int) -> Reserved:
        """Reserve ``estimate`` from ``payer`` for request ``key``: from this holder's lease
        on the payer in memory, else the lease grown (a take), else its pending row."""
        op: Op
        leases = self.leases
        if leases is not None and self._started:
            if leases.admit(key, payer, estimate, time.monotonic()):  # no op made for it
                self._fly(key)
                return LEASED
            op = Take(key, payer, model, estimate, *leases.plan(payer, estimate))
        else:
            op = Reserve(key, payer, model, estimate)
        now = self._write(op, bool(self.in_flight))
        if isinstance(now, asyncio.Future):
            fut = now
            if isinstance(op, Take):
                self._took(op.lease.lease_id, fut)
            try:
                now = await asyncio.shield(fut)
            except asyncio.CancelledError:  # the client left: undo it once it is written
                if isinstance(op, Take):  # a lease's holds it once its result is known
                    fut.add_done_callback(lambda _: self.void(key, payer))
                else:
                    self.void(key, payer)
                raise
        result: Reserved = now
        if not result.ok and isinstance(op, Take):
            result = await self._after_takes(op, result)
        if result.ok:
            self._fly(key)
        return result

    def _fly(self, key: str) -> None:
        flying = self.in_flight
        if len(flying) >= _MAX_IN_FLIGHT:  # a hint only: a leak never grows past this
            flying.clear()
        flying.add(key)

    async def answer(self, op: Answer) -> bool:
        """Record an answer's exact parts before it is released; ``False``: the row was not
        pending any more and could not be revived (see ``_revive``), or the lease was
        gone and the payer could not cover it, nothing paid. Raises when the write failed:
        it is then paid once if it committed or is written again (see :meth:`_again`)."""
        lease = None if self.leases is None else self.leases.spend(op.key)
        wop: Op = op if lease is None else Spend(op, lease.lease_id)
        now = self._write(wop, self._others(op.key))
        recorded = await asyncio.shield(now) if isinstance(now, asyncio.Future) else now
        if isinstance(recorded, Spent):
            if not recorded.from_lease:  # the lease was gone (recovered?): alive, say so
                with contextlib.suppress(Exception):
                    await self.beat()
            return recorded.recorded or self._unpaid(op)
        return bool(recorded) or await self._revive(op)

    def void(self, key: str, payer: str) -> None:
        """Nothing to pay for request ``key``: release its reservation (not awaited, never
        raises: a write that fails is done again, :meth:`_again`; one admitted from a lease
        gives its estimate back to it, no write)."""
        if self.leases is not None and self.leases.void(key, time.monotonic()):
            self._others(key)
            return
        self._write(Void(key, payer), self._others(key), reply=False)

    def _others(self, key: str) -> bool:
        """Whether requests other than ``key`` are in flight; ``key`` is no longer."""
        flying = self.in_flight
        others = len(flying) > (key in flying)
        flying.discard(key)
        return others

    def payee(self, node_id: str) -> str | None:
        """The account a part answered by ``node_id`` pays now: its held account while
        quarantined (``registry/held.py``), else its operator's (``None``: when settled)."""
        if self.held(node_id) and self.accounts is not None:
            return self.accounts.held(node_id)
        return self.operators.get(node_id)

    def note_operator(self, node_id: str, operator: str | None) -> None:
        """The operator a node registered under (its ledger account is paid for its parts)."""
        if operator and self.accounts is not None:
            self.operators[node_id] = self.accounts.operator(operator)

    async def flush(self) -> None:
        """Write what is queued, then settle every answered request into the ledger."""
        await self._drain()
        await self.settle_now()

    # -- lifecycle ------------------------------------------------------------------------------

    async def _start(self) -> None:
        """:meth:`start`'s steps: open the connection, register this holder, recover the dead
        (a predecessor on this home at once), top the pool up, start the writer, settler
        and upkeep."""
        engine_url = (await self._engine()).url
        self.accounts = self.accounts or await pseudonyms(await self._engine())
        if self._db is None:
            self._db = settle_db_for(engine_url.render_as_string(hide_password=False))
        await self.db.open()
        await self.beat()
        shared = engine_url.get_backend_name() != "sqlite"  # replicas on one home: expected
        before = None if self._home_lock is None else self._home_lock.take(self.holder, shared)
        if before is not None and before != self.holder:
            await self.recover([before])
        await self.recover()
        await self.top_up_pool()
        if not isinstance(self.db, SqliteSettleDb):  # SQLite: settle_sqlite.py instead
            self._worker = LedgerThread(
                engine_url, wall_clock=self.wall_clock, on_append=lambda: self.ledger.on_append
            )
            await self._worker.start()
        self._started = True
        self._writer = asyncio.create_task(self._write_loop(), name="llm-mesh-settle-writer")
        self._tasks = [
            asyncio.create_task(self._settle_loop(), name="llm-mesh-settler"),
            asyncio.create_task(self._upkeep_loop(), name="llm-mesh-settle-upkeep"),
        ]
        if self.lease_estimates > 0:
            self.leases = LeaseBook(self.lease_estimates, self.lease_idle_s)
            self._tasks.append(asyncio.create_task(self._lease_loop(), name="llm-mesh-leases"))

    async def stop(self) -> None:
        """Drain the writer, write the answers not written once more (``_answer_at_stop``),
        settle what was answered, void this holder's pending rows (module docstring), each
        step at most ``stop_wait_s``, all at most ``stop_limit_s``: what a database away or
        hung did not let it write is left to recovery (logged), unpaid (``_unpaid_at_stop``)."""
        if not self._started:
            return
        self._started = False  # new operations fail at once; the writer drains and ends
        self._wake.set()
        by = asyncio.get_running_loop().time() + self.stop_limit_s
        tasks, self._tasks = self._tasks, []
        if not await self._by(self._end(tasks), by, "the settler's round"):
            for task in tasks:  # a ledger append hung: cancelled after all
                task.cancel()
        writer, self._writer = self._writer, None
        if writer is not None:  # then cancelled: its batch failed, its answers given up
            await asyncio.wait({writer}, timeout=self._left(by))
            writer.cancel()
            await asyncio.wait({writer}, timeout=self._left(by))
        self._run_tick()  # writes accepted in the loop's last iteration, to the writer's queue
        for op, due in list(self._again_at.items()):  # failed writes: once more, now
            due.cancel()
            if isinstance(op, (Answer, Spend)):  # with those given up, before recovery
                del self._again_at[op]
                self._given_up.add(op)
            else:
                self._write_again(op)
        try:
            if not await self._by(self._drain(), by, "the writer's queue"):
                left, self._ops = self._ops, []
                self._fail(left, RuntimeError("settlement stopped before writing it"))
            await self._answer_at_stop(self._left(by))  # never raises
            await self._by(self._finish(), by, "settling and recovery")
        except Exception:
            log.exception("settlement: could not finish at shutdown; recovery will")
        finally:
            for task in list(self._checking):  # cut short: counted (_unpaid_at_stop)
                task.cancel()
            if self._checking:
                await asyncio.wait(set(self._checking), timeout=self._left(by))
            await self._unpaid_at_stop(self._left(by))  # answers still not written: counted
            await self._by(self.db.close(), by, "closing its connection")
            worker, self._worker = self._worker, None
            if worker is not None:
                await self._by(worker.stop(), by, "the ledger thread's stop")
            if self._home_lock is not None:
                self._home_lock.release()

    def _left(self, by: float) -> float:
        """What a step of the stop may wait: at most ``stop_wait_s``, never past ``by``."""
        return max(0.0, min(self.stop_wait_s, by - asyncio.get_running_loop().time()))

    async def _by(self, step: Awaitable[None], by: float, what: str) -> bool:
        """``step`` awaited at most :meth:`_left`; ``False`` when cut short (logged)."""
        try:
            await asyncio.wait_for(step, self._left(by))
        except TimeoutError:
            log.error("settlement: stop: %s did not end in time; left to recovery", what)
            return False
        return True

    async def _end(self, tasks: list[asyncio.Task[None]]) -> None:
        async with self._settling:  # never cancel a ledger append half way (unless hung)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _finish(self) -> None:
        while self._checking:  # answers written again, not pending
            await asyncio.wait(set(self._checking))
        await self.settle_now()
        await self.recover([self.holder])
