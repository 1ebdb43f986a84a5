"""Uptime rewards, settled once per period as ``reward`` ledger entries.

:class:`RewardTask` (owned by the app's lifespan when ``Settings.reward_rate`` > 0)
wakes every ``tick_s`` and closes the latest reward period that ended at least
``grace_s`` ago (:func:`LLM_Mesh.core.rewards.due_period`; periods align to the Unix
epoch, so every replica agrees on them). Closing a period:

1. reads every node's ``healthy_ms`` counter from the store (the heartbeats' credits,
   ``store_rewards.py``) and the mark the node's previous close left
   (``reward_periods``); nodes whose counter did not move are left alone;
2. cuts the period's healthy time (:func:`~LLM_Mesh.core.rewards.close_uptime`), reads
   the period's requests (``Store.request_totals``) and computes each node's reward
   (:func:`~LLM_Mesh.core.rewards.rewards`; the medians of speed over the nodes that earn
   uptime only: :func:`~LLM_Mesh.core.rewards.peer_stats`); a node without a live operator (revoked
   operator or node key, no key at all) earns 0, as does a node whose every model is
   simulated (``core/rewards.earns_uptime``: it serves no model; unless
   ``Settings.reward_simulated``, for test meshes); a node quarantined by a canary when the
   period is closed (any model, not cleared: ``canary_status``), and every other node of
   its operator (``Store.held_nodes``), earns to its held account
   ``held:<32 hex>`` instead of its operator, as its requests' shares do
   (``registry/held.py``: released to the operator by the admin's clear, forfeited by a
   revocation);
3. appends the ``reward`` entries (``mint`` → the operator's account, ``request_id``
   ``reward:<period start>:<node's keyed account>``) with ``SqlLedger.append(guard=)``; the
   guard, inside the append's transaction after the head lock, inserts a
   ``reward_periods`` row for every node of the batch (zero amounts too: they carry the
   mark) and refuses the whole batch when any of them was closed already, which is
   then retried without those nodes. So any number of replicas on one database pay
   each node at most once per period, and the rows and entries commit together.

Clocks and sleep are injected: tests call :meth:`RewardTask.close_due` with their own
wall clock, no sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from LLM_Mesh.core.ledger_entry import MINT, Pseudonyms, Transfer
from LLM_Mesh.core.rewards import (
    NodePeriod,
    close_uptime,
    due_period,
    earns_uptime,
    peer_stats,
    rewards,
    uptime_period,
)
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_accounts import pseudonyms
from LLM_Mesh.registry.ports import NodeRecord, Store
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["PeriodReport", "RewardTask", "reward_request_id"]

log = logging.getLogger(__name__)

CHUNK = 1000  # nodes per append (and per IN list)


def reward_request_id(period_start: int, node_id: str, keyed: Pseudonyms) -> str:
    """The ``request_id`` of a reward entry: unique per (period, node), readable by auditors
    (the node's keyed account: nobody without the ledger's key links it to the node id)."""
    return f"reward:{period_start}:{keyed.node(node_id)}"


@dataclass(frozen=True)
class PeriodReport:
    """What one close of a period did in this process."""

    period_start: int
    closed: int  # nodes whose row this process wrote
    paid: int  # reward entries this process appended
    amount: int  # their sum, micro-NetworkTokens
    closed_elsewhere: int  # nodes another registry had closed already


@dataclass(frozen=True)
class _Row:
    node_id: str
    operator: str | None
    healthy_ms: int
    mark_ms: int
    performance: int
    success: int
    amount: int


def _dt(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, tz=timezone.utc)


def _chunks(items: Sequence[Any], n: int = CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


class RewardTask:
    """Closes reward periods (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        ledger: SqlLedger,
        *,
        rate: int,
        period_s: int,
        grace_s: float,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        tick_s: float | None = None,
        reward_simulated: bool = False,
    ) -> None:
        if rate < 0 or period_s < 1 or grace_s < 0:
            raise ValueError("the rate is >= 0, the period >= 1 s, the grace >= 0")
        self.store = store
        self.ledger = ledger
        self.rate = rate
        self.period_s = period_s
        self.grace_s = grace_s
        self.reward_simulated = reward_simulated  # Settings.reward_simulated (test meshes)
        self.wall_clock = wall_clock
        self._sleep = sleep
        self.tick_s = tick_s if tick_s is not None else min(60.0, max(1.0, period_s / 10))
        self._done: int | None = None  # the latest period this process saw closed
        self._task: asyncio.Task[None] | None = None

    # -- closing ----------------------------------------------------------------------

    async def close_due(self) -> PeriodReport | None:
        """Close the latest period that is due, unless this process did already."""
        start = due_period(self.wall_clock(), self.period_s, self.grace_s)
        if start < 0 or start == self._done:
            return None
        report = await self.close(start)
        self._done = start
        return report

    async def close(self, start: int) -> PeriodReport:
        """Close the period starting at ``start`` (Unix seconds) for every node not yet."""
        period_ms = self.period_s * 1000
        every = await self.store.list_nodes()
        nodes = [n for n in every if n.healthy_ms > 0]
        if not nodes:  # nothing to do, and no need to open the ledger's database
            return PeriodReport(start, 0, 0, 0, 0)
        marks = await self._marks([n.node_id for n in nodes])
        # per period the uptime is closed in (``core/rewards.uptime_period``): the due one,
        # or an earlier one after every registry was down: node, healthy in it, new mark
        due: dict[int, list[tuple[NodeRecord, int, int]]] = {}
        already = 0
        for n in nodes:
            last_start, mark = marks.get(n.node_id, (None, 0))
            if last_start is not None and last_start >= start:
                already += 1
                continue
            if n.healthy_ms == mark:
                continue  # not routable since its last close: nothing to record
            healthy, new_mark = close_uptime(n.healthy_ms, mark, period_ms)
            beat = n.last_heartbeat_at.timestamp() if n.last_heartbeat_at else None
            label = uptime_period(beat, last_start, start, self.period_s)
            due.setdefault(label, []).append((n, healthy, new_mark))
        if not due:
            return PeriodReport(start, 0, 0, 0, already)
        owners = await self._owners([n.node_id for group in due.values() for n, _, _ in group])
        keyed = await pseudonyms(await self.ledger.engine())
        # held in the store now: quarantined (any model), or another node of their operator
        # is; their earnings are held (registry/held.py), their uptime rewards too
        held = set(await self.store.held_nodes())
        for node_id in held & set(owners):
            owners[node_id] = keyed.held(node_id)  # earned, held until the admin decides
        # whose speeds set the medians: nodes whose uptime earns (core/rewards.peer_stats)
        unpaid = held | {n.node_id for n in every if not self._earns(n)}
        closed = paid = amount = 0
        for label, group in sorted(due.items()):
            stats = await self.store.request_totals(_dt(label), _dt(label + self.period_s))
            computed = rewards(
                [NodePeriod(n.node_id, h, stats.get(n.node_id, {})) for n, h, _ in group],
                rate=self.rate,
                period_ms=period_ms,
                peers=peer_stats(stats, unpaid),
            )
            rows = [
                _Row(
                    node_id=r.node_id,
                    operator=owners.get(r.node_id),
                    healthy_ms=r.healthy_ms,
                    mark_ms=new_mark,
                    performance=r.performance,
                    success=r.success,
                    amount=r.amount if owners.get(r.node_id) and self._earns(n) else 0,
                )
                for r, (n, _, new_mark) in zip(computed, group, strict=True)
            ]
            c_all = p_all = a_all = 0
            for chunk in _chunks(rows):
                c, p, a, elsewhere = await self._write(label, list(chunk))
                c_all, p_all, a_all, already = c_all + c, p_all + p, a_all + a, already + elsewhere
            if c_all:
                log.info(
                    "reward period %s closed: %d nodes, %d paid, %d micro-NetworkTokens",
                    _dt(label).isoformat(),
                    c_all,
                    p_all,
                    a_all,
                )
            closed, paid, amount = closed + c_all, paid + p_all, amount + a_all
        return PeriodReport(start, closed, paid, amount, already)

    async def _write(self, start: int, rows: list[_Row]) -> tuple[int, int, int, int]:
        """Write one batch exactly once; (closed, paid, amount, closed elsewhere)."""
        elsewhere = 0
        keyed = await pseudonyms(await self.ledger.engine())
        while rows:
            taken: set[str] = set()
            paying = [r for r in rows if r.amount > 0 and r.operator is not None]
            transfers = [
                Transfer(
                    "reward",
                    MINT,
                    str(r.operator),
                    r.amount,
                    request_id=reward_request_id(start, r.node_id, keyed),
                )
                for r in paying
            ]

            async def guard(
                conn: AsyncConnection, batch: list[_Row] = rows, taken: set[str] = taken
            ) -> bool:
                found = await self._closed_in(conn, start, [r.node_id for r in batch])
                if found:
                    taken.update(found)
                    return False
                size = (await conn.execute(select(tables.ledger_head.c.size))).scalar_one()
                await self._insert(conn, start, batch, first_seq=int(size))
                return True

            if transfers:
                done = bool(await self.ledger.append(transfers, guard=guard))
            else:  # no money moves: the rows (marks) alone, under the same lock
                done = await self.ledger.locked(guard)
            if done:
                return len(rows), len(paying), sum(r.amount for r in paying), elsewhere
            elsewhere += len(taken)
            rows = [r for r in rows if r.node_id not in taken]
        return 0, 0, 0, elsewhere

    # -- the store and the ledger's tables ------------------------------------------------

    async def _marks(self, node_ids: list[str]) -> dict[str, tuple[int, int]]:
        """Per node: (start of its latest closed period, the mark it left)."""
        rp = tables.reward_periods
        latest = rp.alias("latest")
        out: dict[str, tuple[int, int]] = {}
        engine = await self.ledger.engine()
        async with engine.connect() as conn:
            for chunk in _chunks(node_ids):
                newest = (
                    select(func.max(latest.c.period_start))
                    .where(latest.c.node_id == rp.c.node_id)
                    .scalar_subquery()
                )
                stmt = select(rp.c.node_id, rp.c.period_start, rp.c.mark_ms).where(
                    and_(rp.c.node_id.in_(list(chunk)), rp.c.period_start == newest)
                )
                for row in await conn.execute(stmt):
                    out[row.node_id] = (int(row.period_start), int(row.mark_ms))
        return out

    async def _owners(self, node_ids: list[str]) -> dict[str, str]:
        """Node → its operator's ledger account, for nodes with a live operator and key
        (two store reads, whatever the number of nodes)."""
        revoked = set(await self.store.revoked_nodes_since(_dt(0)))
        wanted = set(node_ids) - revoked
        out: dict[str, str] = {}
        keyed = await pseudonyms(await self.ledger.engine())
        for op in await self.store.list_operators():
            if op.revoked_at is None:
                account = keyed.operator(op.name)
                out.update((n, account) for n in op.nodes if n in wanted)
        return out

    def _earns(self, node: NodeRecord) -> bool:
        """Whether the node's uptime is worth a reward: it serves a model it does not
        simulate (``core/rewards.earns_uptime``), or simulated ones count here."""
        return self.reward_simulated or earns_uptime(node.models)

    @staticmethod
    async def _closed_in(conn: AsyncConnection, start: int, node_ids: list[str]) -> set[str]:
        rp = tables.reward_periods
        stmt = select(rp.c.node_id).where(
            and_(rp.c.period_start == start, rp.c.node_id.in_(node_ids))
        )
        return {str(r) for r in (await conn.execute(stmt)).scalars()}

    async def _insert(
        self, conn: AsyncConnection, start: int, rows: list[_Row], *, first_seq: int
    ) -> None:
        now = _dt(self.wall_clock())
        values: list[dict[str, Any]] = []
        seq = first_seq
        for r in rows:
            pays = r.amount > 0 and r.operator is not None
            values.append(
                {
                    "node_id": r.node_id,
                    "period_start": start,
                    "period_s": self.period_s,
                    "operator": r.operator,
                    "healthy_ms": r.healthy_ms,
                    "mark_ms": r.mark_ms,
                    "performance": r.performance,
                    "success": r.success,
                    "amount": r.amount if pays else 0,
                    "entry_seq": seq if pays else None,
                    "created_at": now,
                }
            )
            seq += 1 if pays else 0
        await conn.execute(tables.reward_periods.insert(), values)

    # -- the loop -------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                await self.close_due()
            except Exception:  # a bug or a database hiccup must not stop the loop
                log.exception("closing a reward period failed; trying again next tick")
            await self._sleep(self.tick_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="llm-mesh-rewards")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
