"""Writing values into the store off the hot path, in batches: the one loop the request log
(``request_log.py``) and the receipts nobody received (``cut_receipts.py``) share.

:meth:`BatchWriter.submit` (no await, no I/O) queues a value in a plain ``deque`` bounded by
``max_queue`` (nothing awaits it: an ``asyncio.Queue``'s put and get, with their waiter and
unfinished-task bookkeeping, were CPU on the loop for every request and again in every
flush); a background task writes the queue every ``flush_interval_s``, ``max_batch``
values a call of the injected ``write`` (the store's batch insert), until a batch is short.
``stop`` cancels the loop, waits for a write in progress (never cancelled: its batch has
left the queue), then writes what is queued.

A failed write is said the same way under both policies (``_WriterRounds``: the writer's
``RoundLog``, ``first_only``: a run's first failed batch in one line, ``could not store N
<values>, <the database's words>; <what became of it>``, the others at DEBUG, 60 s into
the run one ERROR, again every 600 s, its end one INFO; loops43: before, every failed
batch said its line until that ERROR). What it does is the injected policy's:

- :class:`DropOnFailure` (the request log's): the batch is dropped and counted in
  ``dropped``; a full queue drops the value submitted (counted);
  ``stop`` writes until the queue is empty (each batch written or dropped) or
  ``timeout_s`` has passed (the rest dropped, counted; a hung write's batch named in that
  ERROR line, counted by its write should it end).
- :class:`RetryOnFailure` (the receipts'): nothing is dropped on a store failure, the batch
  goes back to the queue's head and is written again at the next round (counted in
  ``failed``; alarm42: before, a WARNING a round for as long as it lasted), each of its
  values logged whole once (the injected ``log_whole``); a full
  queue drops its oldest; ``stop`` writes again each ``flush_interval_s`` until
  ``timeout_s``, then tells the policy what is left, a hung write's batch included (once:
  should that write fail later, its batch is neither logged again nor put back). A value
  dropped or left unwritten is logged whole then unless a failed write logged it whole
  before: then one short line names it (its key) and why, pointing at that whole line
  (found 2026-12-06, session 38's note: a value failed, then left at ``stop``, was logged
  whole twice). So every value never stored is in the log whole exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["BatchWriter", "DropOnFailure", "FailurePolicy", "RetryOnFailure"]

T = TypeVar("T")

log = logging.getLogger(__name__)


class FailurePolicy(Protocol[T]):
    """What a writer does with a batch the store refused and a queue grown full."""

    retries: bool  # a failed batch goes back to the queue's head (else: dropped, counted)
    drop_oldest: bool  # a full queue drops its oldest (else: the value submitted)
    round_log: RoundLog  # its failed batches' run (the writer's loop: ``round_logs``)

    def failed(self, batch: list[T], exc: Exception) -> None:
        """Told of a failed write (inside the ``except``: a log may take its traceback)."""

    def written(self, batch: list[T]) -> None:
        """Told of a batch the store took."""

    def dropped(self, value: T, why: str) -> None:
        """Told of a value dropped unwritten (a full queue, or left at ``stop``)."""


class _WriterRounds:
    """The writer's rounds, both policies': a failed batch in one line through the writer's
    ``RoundLog`` (``the <what> writer``), ``could not store N <what>``, the database's words
    (``start_retry.log_failed_round``: a lost or refused connection, a timeout, SQLite's lock
    one WARNING line; anything else at ERROR with its traceback), then what became of it
    (:attr:`then`); ``first_only``, as every loop of a round a second or more (a write every
    ``flush_interval_s``, 0.5 s): only a run's first failed batch says its line, the others
    at DEBUG, 60 s into the run one ERROR (again every 600 s), its end one INFO (loops43,
    found 2026-12-07: a line every round till the ERROR, 120 lines a minute of the store
    away; the retry policy's words were its own). ``what``: the values' name ("requests")."""

    then = ""  # what became of a failed batch ("dropped", "written again later")

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self.log = logger
        self.round_log = RoundLog(logger, f"the {what} writer", first_only=True)

    def _failed_round(self, batch: list[Any], exc: Exception) -> None:
        what = f"could not store {len(batch)} {self.what}"
        self.round_log.failed(exc, what, self.then, stacklevel=3)

    def _written_round(self) -> None:
        self.round_log.ok(stacklevel=3)


class DropOnFailure(_WriterRounds, Generic[T]):
    """A failed batch is dropped (counted by the writer) and said as :class:`_WriterRounds`
    says it (``could not store N requests, ...; dropped``); a full queue drops the value
    submitted."""

    retries = False
    drop_oldest = False
    then = "dropped"

    def failed(self, batch: list[T], exc: Exception) -> None:
        self._failed_round(batch, exc)

    def written(self, batch: list[T]) -> None:
        self._written_round()

    def dropped(self, value: T, why: str) -> None:
        pass


class RetryOnFailure(_WriterRounds, Generic[T]):
    """A failed batch is written again (the writer puts it back), said as
    :class:`_WriterRounds` says it (``could not store N cut receipts, ...; written again
    later``), and each of its values logged whole once (``log_whole(value, why)``, keyed by
    ``key``) until written; a value dropped unwritten (a full queue, the stop) is logged
    whole then if it was not before, else named by its key in one WARNING line saying why
    and that its whole text is logged above ("not yet stored"): never unlogged, never
    logged whole twice. ``what``: the values' name in the log."""

    retries = True
    drop_oldest = True
    then = "written again later"

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        key: Callable[[T], Hashable],
        log_whole: Callable[[T, str], None],
    ) -> None:
        super().__init__(what, logger)
        self.key = key
        self.log_whole = log_whole
        self._logged: set[Hashable] = set()  # logged whole after a failed write

    def failed(self, batch: list[T], exc: Exception) -> None:
        self._failed_round(batch, exc)
        for value in batch:
            k = self.key(value)
            if k not in self._logged:
                self._logged.add(k)
                self.log_whole(value, "not yet stored")

    def logged_before(self, value: T) -> None:
        """``value`` was logged whole by its maker (``account._made_here``'s INFO line): a
        failed write does not log it whole again, nor does its drop (one short line)."""
        self._logged.add(self.key(value))

    def written(self, batch: list[T]) -> None:
        self._written_round()
        for value in batch:
            self._logged.discard(self.key(value))

    def dropped(self, value: T, why: str) -> None:
        k = self.key(value)
        if k in self._logged:  # its whole text is in the log already: not again
            self._logged.discard(k)
            self.log.warning("%s: %s %s; its whole text is logged above", self.what, k, why)
            return
        self.log_whole(value, why)


class BatchWriter(Generic[T]):
    """Batches values into the store in the background (the module docstring)."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[object]],
        policy: FailurePolicy[T],
        *,
        flush_interval_s: float = 0.5,
        max_batch: int = 1000,
        max_queue: int = 100_000,
        task_name: str = "llm-mesh-batch-writer",
        stopped_why: str = "not written before the gateway stopped",
    ) -> None:
        if flush_interval_s <= 0 or max_batch < 1 or max_queue < 1:
            raise ValueError("flush_interval_s, max_batch and max_queue must be positive")
        self.write = write
        self.policy = policy
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.task_name = task_name
        self.stopped_why = stopped_why
        self._queue: deque[T] = deque()
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None  # the loop's write in progress
        self._in_flight: dict[int, list[T]] = {}  # batches being written (left the queue)
        self._told: set[int] = set()  # of those, the ones ``stop`` told the policy of
        self.written = 0
        self.dropped = 0
        self.failed = 0  # failed writes
        # told each count added to ``written`` / ``dropped`` (the metrics of --workers N)
        self.counted: Callable[[str, int], None] | None = None

    @property
    def queued(self) -> int:
        """Values submitted and not yet taken by a flush."""
        return len(self._queue)

    def submit(self, value: T) -> None:
        """Queue one value; never blocks. Past ``max_queue`` the policy's ``drop_oldest``
        says which goes: the oldest or this one (counted in ``dropped``)."""
        queue = self._queue
        if len(queue) < self.max_queue:
            queue.append(value)
        elif self.policy.drop_oldest:  # down to the bound: a failed batch put back at the
            queue.append(value)  # head, with values queued during its write, went past it
            while len(queue) > self.max_queue:
                self._drop(queue.popleft(), "dropped unwritten (the queue is full)")
        else:
            self._count("dropped", 1)

    def round_logs(self) -> Iterable[RoundLog]:
        """This writer's loop, its policy's log (``failed_rounds.HasRoundLogs``)."""
        return (self.policy.round_log,)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop and write what is still queued, all within ``timeout_s`` (the
        module docstring): a write that does not end by then (a store that hangs) is left
        running, and what it and the queue hold is told to the policy as stopped (the retry
        policy logs each whole; the drop policy's queue is counted in ``dropped``), so a
        hung database neither holds the process's stop for ever nor loses a value unlogged
        (found 2026-12-06, review38b: it waited here until the stop watchdog's exit)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        writing, self._writing = self._writing, None
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        if writing is not None and not writing.done():
            await asyncio.wait({writing}, timeout=timeout_s)
        retries = self.policy.retries
        while self._queue and loop.time() < end and not self._in_flight:
            flushing = asyncio.ensure_future(self.flush())
            await asyncio.wait({flushing}, timeout=max(0.0, end - loop.time()))
            if not flushing.done():  # hung: its batch is in flight (below), left running
                break
            if retries and not flushing.result():  # each drop flush empties its batch
                await asyncio.sleep(min(self.flush_interval_s, max(0.0, end - loop.time())))
        left = list(self._queue)
        self._queue.clear()
        if not retries:  # the rest dropped, counted; a batch in flight counts itself, but
            # is said here: the process may end before its write does (review39)
            hung = sum(len(batch) for batch in self._in_flight.values())
            if left or hung:
                more = f"; {hung} more in a write left running (counted when it ends)"
                log.error("%s: %d values not written within the stop's %.1f s; dropped%s",
                          self.task_name, len(left), timeout_s, more if hung else "")  # fmt: skip
            if left:
                self._count("dropped", len(left))
            return
        for key, batch in self._in_flight.items():  # a hung write's: in the log, as the
            self._told.add(key)  # queue's; once: should that write fail later, not again
            left.extend(batch)
        for value in left:  # the process ends: each told to the policy, not counted
            self.policy.dropped(value, self.stopped_why)

    async def flush(self) -> int:
        """Write up to ``max_batch`` queued values now; how many were written (0 when the
        store failed: the policy's)."""
        queue = self._queue
        if not queue:
            return 0
        if len(queue) <= self.max_batch:
            batch = list(queue)
            queue.clear()
        else:
            take = queue.popleft
            batch = [take() for _ in range(self.max_batch)]
        self._in_flight[id(batch)] = batch
        try:
            await self.write(batch)
        except Exception as exc:
            self.failed += 1
            if id(batch) in self._told:  # told to the policy at stop (logged whole then)
                log.warning("%s: a write left running at stop failed (%s); its %d values "
                            "were logged whole then", self.task_name, type(exc).__name__,
                            len(batch))  # fmt: skip
                return 0
            if self.policy.retries:
                queue.extendleft(reversed(batch))
            else:
                self._count("dropped", len(batch))
            self.policy.failed(batch, exc)
            return 0
        finally:
            self._in_flight.pop(id(batch), None)
            self._told.discard(id(batch))
        self.policy.written(batch)
        self._count("written", len(batch))
        return len(batch)

    def _drop(self, value: T, why: str) -> None:
        self.policy.dropped(value, why)
        self._count("dropped", 1)

    def _count(self, result: str, n: int) -> None:
        if result == "written":
            self.written += n
        else:
            self.dropped += n
        if self.counted is not None:
            self.counted(result, n)

    async def _drain(self) -> None:
        while await self.flush() == self.max_batch:
            pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            self._writing = asyncio.ensure_future(self._drain())
            await asyncio.shield(self._writing)  # cancelling the loop leaves the write going
