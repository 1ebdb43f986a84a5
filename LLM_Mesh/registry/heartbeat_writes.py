"""The heartbeat path's store writes, in batches: thousands of nodes on one replica.

Every heartbeat takes the node's sequence number in the store (a replayed message is
refused by every replica) and records its time (other replicas read it). One transaction
each caps a replica at a few hundred heartbeats a second, whatever the CPU; here they go
in batches, with no timer (no added latency when idle): while one batch is in the
database the next gathers, and goes as soon as the first is back.

- :class:`SeqBatcher` wraps the store given to the node authenticator:
  ``advance_node_seq`` waits for its batch (one ``UPDATE ... FROM unnest(...)
  RETURNING`` on PostgreSQL), so a heartbeat is still answered only once its sequence
  number is taken; two messages of one node in one batch: the higher number is tried,
  the lower is stale (as it would be one after the other), and so is every copy of the
  one tried but its first (a replay sent at once). ``get_node_key`` (a node's
  key not yet in memory: every node once after a replica starts) goes in batches too
  (one ``SELECT ... IN``). Everything else is the store's.
- :class:`HeartbeatWriter` records heartbeat times behind the answer (the node is
  known to the table, which is what decides the answer); a failed batch is dropped
  (not put back) and logged with its count, and each node's next heartbeat writes its
  time and state again (:data:`DROPPED`); each heartbeat tells how long it waited since
  it was received (``touch(arrived=)``, on the writer's ``clock``: its sequence number
  taken in a :class:`SeqBatcher` batch, then this queue), which the store takes off its
  own stamp (migration 0033); a run of failed batches says its first in its line, the
  others at DEBUG (``first_only``: batches go as fast as the store takes them; loops43),
  past 60 s one ERROR, its end one INFO (``failed_rounds.RoundLog``). ``flush`` at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, cast

from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.registry.ports import NodeKeyRecord, SeqResult, Store

__all__ = ["DROPPED", "HeartbeatWriter", "SeqBatcher", "batches_heartbeats"]

log = logging.getLogger(__name__)

# What became of a failed batch (``HeartbeatWriter._flush``: nothing puts it back; the
# store's ``heartbeat_credit`` credits a node's next heartbeat with the time since its last
# one recorded, at most its ``credit_limit_s``: the heartbeat expiry or less). Found 2026-12-07
# (session 42's note): the WARNING did not say.
DROPPED = (
    "dropped, not written again: each node's next heartbeat records its time and state, "
    "its uptime since the last one recorded credited up to the heartbeat expiry"
)


def batches_heartbeats(store: Any) -> bool:
    """Whether ``store`` has the batch methods (the SQL and memory stores do)."""
    names = ("advance_node_seqs", "touch_heartbeats", "get_node_keys")
    return all(callable(getattr(store, name, None)) for name in names)


class _Batches:
    """Natural batching: ``submit`` queues, one flush at a time takes all that is queued."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._queue: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches written, items in them, seconds spent writing them
        self.items = 0
        self.busy_s = 0.0

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            t0 = loop.time()
            await self._flush(batch)
            self.batches += 1
            self.items += len(batch)
            self.busy_s += loop.time() - t0

    async def _flush(self, batch: list[Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def flush(self) -> None:
        """Wait until everything queued is written."""
        while self._queue or (self._task is not None and not self._task.done()):
            self._kick()
            if self._task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._task)


class SeqBatcher(_Batches):
    """The store, with ``advance_node_seq`` batched (see the module docstring)."""

    def __init__(self, store: Store, max_batch: int = 1000) -> None:
        super().__init__(max_batch)
        self._store = store
        self._advance: Callable[[list[tuple[str, int]]], Awaitable[dict[str, str]]] = cast(
            Any, store
        ).advance_node_seqs
        self._keys = _KeyLookups(store, max_batch)

    def __getattr__(self, name: str) -> Any:  # everything else is the store's
        return getattr(self._store, name)

    async def get_node_key(self, node_id: str) -> NodeKeyRecord | None:
        return await self._keys.get(node_id)

    async def advance_node_seq(self, node_id: str, seq: int) -> SeqResult:
        fut: asyncio.Future[SeqResult] = asyncio.get_running_loop().create_future()
        self._queue.append((node_id, seq, fut))
        self._kick()
        return await fut

    async def _flush(self, batch: list[tuple[str, int, asyncio.Future[SeqResult]]]) -> None:
        best: dict[str, int] = {}
        for node_id, seq, _ in batch:
            if seq > best.get(node_id, -1):
                best[node_id] = seq
        try:
            results = await self._advance(list(best.items()))
        except BaseException as exc:
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        taken: set[str] = set()
        for node_id, seq, fut in batch:
            if fut.done():
                continue
            if seq != best[node_id]:
                fut.set_result(SeqResult.STALE)  # a higher one of the same node went first
                continue
            result = SeqResult(results.get(node_id, SeqResult.UNKNOWN.value))
            # a copy of the number taken, in the same batch, is a replay: only its first is
            # taken (found 2026-12-07, limits45: every copy sent at once was OK)
            fut.set_result(SeqResult.STALE if node_id in taken else result)
            if result is SeqResult.OK:
                taken.add(node_id)


class _KeyLookups(_Batches):
    def __init__(self, store: Store, max_batch: int) -> None:
        super().__init__(max_batch)
        self._get: Callable[[list[str]], Awaitable[dict[str, NodeKeyRecord]]] = cast(
            Any, store
        ).get_node_keys

    async def get(self, node_id: str) -> NodeKeyRecord | None:
        fut: asyncio.Future[NodeKeyRecord | None] = asyncio.get_running_loop().create_future()
        self._queue.append((node_id, fut))
        self._kick()
        return await fut

    async def _flush(self, batch: list[tuple[str, asyncio.Future[NodeKeyRecord | None]]]) -> None:
        try:
            found = await self._get(sorted({node_id for node_id, _ in batch}))
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for node_id, fut in batch:
            if not fut.done():
                fut.set_result(found.get(node_id))


#: one queued heartbeat: node id, its time, state, credit limit (ms), last keyed request as
#: it said, when it was received (the writer's monotonic ``clock``)
_Item = tuple[str, datetime, str, int, datetime | None, float]


class HeartbeatWriter(_Batches):
    """Heartbeat times and states, written behind the answer (see the module docstring)."""

    def __init__(self, store: Store, heard_by: str | None = None, max_batch: int = 2000) -> None:
        super().__init__(max_batch)
        self._touch: Callable[..., Awaitable[None]] = cast(Any, store).touch_heartbeats
        self.heard_by = heard_by  # this replica: its node poll skips what it wrote
        # monotonic: a heartbeat's wait, whatever the wall clock does; the route reads it
        # as the heartbeat arrives (``api.absorb_heartbeat``), before its sequence number
        self.clock: Callable[[], float] = time.monotonic
        self.failed_batches = 0
        # a run of failed batches, said once (first_only: a batch whenever the last is back,
        # many a second with thousands of nodes; loops43: before, a line each till the ERROR)
        self.round_log = RoundLog(log, "heartbeat writer", first_only=True)

    def round_logs(self) -> Iterable[RoundLog]:
        """The writer's batches (``failed_rounds.HasRoundLogs``)."""
        return (self.round_log,)

    def touch(
        self,
        node_id: str,
        at: datetime,
        state: str,
        *,
        credit_limit_s: float = 0.0,
        keyed_at: datetime | None = None,
        arrived: float | None = None,
    ) -> None:
        """Queue one heartbeat; ``credit_limit_s``: the most routable time it may add to the
        node's ``healthy_ms`` (uptime rewards); ``keyed_at``: the node's last keyed request,
        as it said (``Store.touch_heartbeat``); ``arrived``: when it was received, on
        :attr:`clock` (None: now): the store's stamp is its clock less the whole wait since
        (the sequence number's batch, then this queue; found 2026-12-07, clock43: the wait
        before the queue was not counted, a node that died while its heartbeat's sequence
        number waited was heard that much later)."""
        lim = max(0, int(credit_limit_s * 1000))
        received = self.clock() if arrived is None else arrived
        self._queue.append((node_id, at, state, lim, keyed_at, received))
        self._kick()

    async def _flush(self, batch: list[_Item]) -> None:
        latest: dict[str, _Item] = {}
        for item in batch:  # one row per node: its latest
            latest[item[0]] = item
        rows = [item[:4] for item in latest.values()]
        keyed = {item[0]: item[4] for item in latest.values() if item[4] is not None}
        # how long each waited since it was received (its sequence number's batch, then
        # behind a slow batch here): the store's stamp is its clock less it, as old as the
        # heartbeat is (found 2026-12-07, review42b: stamped at the write, a node that died
        # while its last heartbeat waited was heard at the write; clock43: from its arrival)
        now = self.clock()
        waited = {item[0]: now - item[5] for item in latest.values() if now - item[5] > 0.0}
        told: dict[str, Any] = {"keyed": keyed} if keyed else {}
        if waited:
            told["waited"] = waited
        try:  # none said: a store of an older signature takes it too
            await self._touch(rows, self.heard_by, **told)
        except Exception as exc:
            self.failed_batches += 1
            what = f"could not record {len(batch)} heartbeats ({len(latest)} nodes) in the store"
            self.round_log.failed(exc, what, DROPPED)
        else:
            self.round_log.ok()
