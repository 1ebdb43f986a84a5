"""Uptime rewards, settled once per period as ``reward`` ledger entries.

:class:`RewardTask` (owned by the app's lifespan when ``Settings.reward_rate`` > 0)
wakes every ``tick_s`` and closes the latest reward period that ended at least
``grace_s`` ago (:func:`LLM_Mesh.core.rewards.due_period`; periods align to the Unix
epoch, so every replica agrees on them). Closing a period:

1. reads every node's ``healthy_ms`` counter from the store (the heartbeats' credits,
   ``store_rewards.py``) and the mark the node's previous close left
   (``reward_periods``); nodes whose counter did not move are left alone, as are nodes
   first registered after the period ended (``core/rewards.registered_since``: none of
   their uptime was earned in it; their own period's close pays it);
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
   revocation); an operator holding more node keys than its uptime cap (the admin's
   ``operators.uptime_nodes`` for it, else ``Settings.reward_uptime_nodes``; 0: none) has
   its nodes' healthy time in the period cut to that many periods' worth, less what its rows of that period already paid
   (``core/rewards.operator_uptime_ms``): uptime is bounded per operator, not per id;
3. appends the ``reward`` entries (``mint`` → the operator's account, ``request_id``
   ``reward:<period start>:<node's keyed account>``) with ``SqlLedger.append(guard=)``; the
   guard, inside the append's transaction after the head lock, inserts a
   ``reward_periods`` row for every node of the batch (zero amounts too: they carry the
   mark) and refuses the whole batch when any of them was closed already, which is
   then retried without those nodes. So any number of replicas on one database pay
   each node at most once per period, and the rows and entries commit together. For a
   capped operator the guard also re-reads the healthy time its rows of the period paid
   and refuses the batch when another writer changed it since the close read it: the
   close is then computed again, so concurrent closes never pay an operator past its cap
   (each try that is refused saw another writer's new paid row: rows are never deleted
   and a period holds one per node, so the tries end).

A registry closes the due period before it serves (:meth:`RewardTask.close_first`, awaited by
the app's lifespan): a heartbeat first would move a node's last heartbeat past the uptime it
earned before every registry stopped (found 2026-12-05). It waits for that close at most
``Settings.reward_start_close_s`` (``core/rewards.START_CLOSE_S``; found 2026-12-05, ``small31``: a
store that hung in the close held the start for ever); past it, it logs a WARNING and
serves, and the close goes on beside serving as the loop's first tick (not cancelled: its
transaction's rollback would wait on the same store), a failure of it logged and tried
again next tick as any tick's.

Clocks and sleep are injected: tests call :meth:`RewardTask.close_due` with their own
wall clock, no sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from LLM_Mesh.core.ledger_entry import MINT, Pseudonyms, Transfer
from LLM_Mesh.core.rewards import (
    START_CLOSE_S,
    UPTIME_NODES,
    NodePeriod,
    close_uptime,
    due_period,
    earns_uptime,
    operator_uptime_ms,
    peer_stats,
    registered_since,
    rewards,
    uptime_period,
)
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.failed_rounds import RoundLog
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


@dataclass
class _Cap:
    """The operators capped in one period's close: their node keys' ids (``nodes``), the
    healthy time their rows of the period paid as the close read it, plus what this close
    wrote since (``spent``), and node → operator (``owner``)."""

    nodes: dict[str, list[str]]
    spent: dict[str, int]
    owner: dict[str, str]

    def operators(self, node_ids: Sequence[str]) -> set[str]:
        return {self.owner[n] for n in node_ids if n in self.owner}


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
        uptime_nodes: int = UPTIME_NODES,
    ) -> None:
        if rate < 0 or period_s < 1 or grace_s < 0 or uptime_nodes < 0:
            raise ValueError("the rate is >= 0, the period >= 1 s, the grace and cap >= 0")
        self.store = store
        self.ledger = ledger
        self.round_log = RoundLog(log, "reward task", wall_clock=wall_clock)
        self.rate = rate
        self.period_s = period_s
        self.grace_s = grace_s
        self.reward_simulated = reward_simulated  # Settings.reward_simulated (test meshes)
        self.uptime_nodes = uptime_nodes  # Settings.reward_uptime_nodes (0: no cap)
        self.wall_clock = wall_clock
        self._sleep = sleep
        self.tick_s = tick_s if tick_s is not None else min(60.0, max(1.0, period_s / 10))
        self._done: int | None = None  # the latest period this process saw closed
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Task[Any] | None = None  # a start's close still going on

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
        mine: set[str] = set()  # nodes this call closed (not "closed elsewhere" on a retry)
        closed = paid = amount = 0
        while True:  # a stale try saw another writer's new row: finitely many (docstring)
            report, stale = await self._close_once(start, mine)
            closed, paid, amount = (
                closed + report.closed,
                paid + report.paid,
                amount + report.amount,
            )
            if not stale:
                return PeriodReport(start, closed, paid, amount, report.closed_elsewhere)

    async def _close_once(self, start: int, mine: set[str]) -> tuple[PeriodReport, bool]:
        """One try of :meth:`close`: its report, and whether it stopped because another
        writer paid a capped operator's node in the period meanwhile (compute again)."""
        period_ms = self.period_s * 1000
        every = await self.store.list_nodes()
        nodes = [n for n in every if n.healthy_ms > 0]
        if not nodes:  # nothing to do, and no need to open the ledger's database
            return PeriodReport(start, 0, 0, 0, 0), False
        marks = await self._marks([n.node_id for n in nodes])
        # per period the uptime is closed in (``core/rewards.uptime_period``): the due one,
        # or an earlier one after every registry was down: node, healthy in it, new mark
        due: dict[int, list[tuple[NodeRecord, int, int]]] = {}
        already = 0
        for n in nodes:
            last_start, mark = marks.get(n.node_id, (None, 0))
            if last_start is not None and last_start >= start:
                already += n.node_id not in mine
                continue
            if n.healthy_ms == mark:
                continue  # not routable since its last close: nothing to record
            if registered_since(n.registered_at.timestamp(), start, self.period_s):
                continue  # none of it earned in this period: its own period's close pays it
            healthy, new_mark = close_uptime(n.healthy_ms, mark, period_ms)
            beat = n.last_heartbeat_at.timestamp() if n.last_heartbeat_at else None
            label = uptime_period(beat, last_start, start, self.period_s)
            due.setdefault(label, []).append((n, healthy, new_mark))
        if not due:
            return PeriodReport(start, 0, 0, 0, already), False
        owners, op_keys = await self._owners(
            [n.node_id for group in due.values() for n, _, _ in group]
        )
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
            earning = {n.node_id for n, _, _ in group if owners.get(n.node_id) and self._earns(n)}
            cap, credited = await self._capped(label, group, earning, op_keys)
            periods = [
                NodePeriod(n.node_id, credited.get(n.node_id, h), stats.get(n.node_id, {}))
                for n, h, _ in group
            ]
            computed = rewards(
                periods, rate=self.rate, period_ms=period_ms, peers=peer_stats(stats, unpaid)
            )
            rows = [
                _Row(
                    node_id=r.node_id,
                    operator=owners.get(r.node_id),
                    healthy_ms=r.healthy_ms,
                    mark_ms=new_mark,
                    performance=r.performance,
                    success=r.success,
                    amount=r.amount if r.node_id in earning else 0,
                )
                for r, (n, _, new_mark) in zip(computed, group, strict=True)
            ]
            c_all = p_all = a_all = 0
            stale = False
            for chunk in _chunks(rows):
                done, p, a, elsewhere, stale = await self._write(label, list(chunk), cap)
                c_all, p_all, a_all = c_all + len(done), p_all + p, a_all + a
                already += elsewhere
                mine.update(done)
                if stale:
                    break
            if c_all:
                log.info(
                    "reward period %s closed: %d nodes, %d paid, %d micro-NetworkTokens",
                    _dt(label).isoformat(),
                    c_all,
                    p_all,
                    a_all,
                )
            closed, paid, amount = closed + c_all, paid + p_all, amount + a_all
            if stale:
                return PeriodReport(start, closed, paid, amount, already), True
        return PeriodReport(start, closed, paid, amount, already), False

    async def _capped(
        self,
        label: int,
        group: Sequence[tuple[NodeRecord, int, int]],
        earning: set[str],
        op_keys: dict[str, tuple[str, list[str], int]],
    ) -> tuple[_Cap, dict[str, int]]:
        """The cap for the period starting at ``label`` and the credited healthy time of the
        nodes it cuts (``core/rewards.operator_uptime_ms``): only operators holding more node
        keys than their cap (``op_keys``: node → its operator, the operator's keys, its cap;
        0: none) can pass it (a node's time in a period is at most the period), so only
        theirs are read and watched."""
        cap = _Cap({}, {}, {})
        by_op: dict[str, dict[str, int]] = {}
        limits: dict[str, int] = {}
        for n, healthy, _ in group:
            op, keys, limit = op_keys.get(n.node_id, ("", [], 0))
            if n.node_id in earning and 0 < limit < len(keys):
                by_op.setdefault(op, {})[n.node_id] = healthy
                cap.nodes[op], limits[op] = keys, limit
        if not by_op:
            return cap, {}
        cap.owner = {node: op for op, keys in cap.nodes.items() for node in keys}
        engine = await self.ledger.engine()
        async with engine.connect() as conn:
            cap.spent = await self._spent(conn, label, cap, set(cap.nodes))
        credited: dict[str, int] = {}
        for op, times in by_op.items():
            budget = limits[op] * self.period_s * 1000
            credited.update(
                operator_uptime_ms(times, budget_ms=budget, spent_ms=cap.spent.get(op, 0))
            )
        return cap, credited

    @staticmethod
    async def _spent(
        conn: AsyncConnection, start: int, cap: _Cap, operators: set[str]
    ) -> dict[str, int]:
        """Per operator of ``operators``: the healthy time its nodes' paid rows of the period
        starting at ``start`` credited."""
        rp = tables.reward_periods
        out: dict[str, int] = {}
        ids = [n for op in sorted(operators) for n in cap.nodes[op]]
        for chunk in _chunks(ids):
            stmt = select(rp.c.node_id, rp.c.healthy_ms).where(
                and_(rp.c.period_start == start, rp.c.amount > 0, rp.c.node_id.in_(list(chunk)))
            )
            for row in await conn.execute(stmt):
                op = cap.owner[str(row.node_id)]
                out[op] = out.get(op, 0) + int(row.healthy_ms)
        return out

    async def _write(
        self, start: int, rows: list[_Row], cap: _Cap
    ) -> tuple[list[str], int, int, int, bool]:
        """Write one batch exactly once; (the nodes closed, paid, amount, closed elsewhere,
        stale: a capped operator's paid time in the period changed since it was read)."""
        elsewhere = 0
        keyed = await pseudonyms(await self.ledger.engine())
        while rows:
            taken: set[str] = set()
            stale: list[bool] = []
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
                conn: AsyncConnection,
                batch: list[_Row] = rows,
                taken: set[str] = taken,
                stale: list[bool] = stale,
            ) -> bool:
                found = await self._closed_in(conn, start, [r.node_id for r in batch])
                if found:
                    taken.update(found)
                    return False
                ops = cap.operators([r.node_id for r in batch])
                if ops:
                    now = await self._spent(conn, start, cap, ops)
                    if any(now.get(op, 0) != cap.spent.get(op, 0) for op in ops):
                        stale.append(True)
                        return False
                size = (await conn.execute(select(tables.ledger_head.c.size))).scalar_one()
                await self._insert(conn, start, batch, first_seq=int(size))
                return True

            if transfers:
                done = bool(await self.ledger.append(transfers, guard=guard))
            else:  # no money moves: the rows (marks) alone, under the same lock
                done = await self.ledger.locked(guard)
            if done:
                for r in paying:
                    if r.node_id in cap.owner:
                        op = cap.owner[r.node_id]
                        cap.spent[op] = cap.spent.get(op, 0) + r.healthy_ms
                written = [r.node_id for r in rows]
                return written, len(paying), sum(r.amount for r in paying), elsewhere, False
            if stale:
                return [], 0, 0, elsewhere, True
            elsewhere += len(taken)
            rows = [r for r in rows if r.node_id not in taken]
        return [], 0, 0, elsewhere, False

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

    async def _owners(
        self, node_ids: list[str]
    ) -> tuple[dict[str, str], dict[str, tuple[str, list[str], int]]]:
        """Node → its operator's ledger account, for nodes with a live operator and key, and
        node → (its operator's name, every node key that operator holds, its uptime cap: the
        admin's for it, else ``uptime_nodes``) (two store reads, whatever the number of
        nodes)."""
        revoked = set(await self.store.revoked_nodes_since(_dt(0)))
        wanted = set(node_ids) - revoked
        out: dict[str, str] = {}
        op_keys: dict[str, tuple[str, list[str], int]] = {}
        keyed = await pseudonyms(await self.ledger.engine())
        for op in await self.store.list_operators():
            if op.revoked_at is None:
                account = keyed.operator(op.name)
                mine = [n for n in op.nodes if n in wanted]
                out.update((n, account) for n in mine)
                limit = self.uptime_nodes if op.uptime_nodes is None else op.uptime_nodes
                op_keys.update((n, (op.name, list(op.nodes), limit)) for n in mine)
        return out, op_keys

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
        first, self._first = self._first, None
        if first is not None:  # the start's close, past its bound: the first tick
            try:
                await first
            except Exception as exc:
                what = "closing the due reward period at start failed"
                self.round_log.failed(exc, what, "trying again next tick")
            else:
                self.round_log.ok()
            await self._sleep(self.tick_s)
        while True:
            try:
                await self.close_due()
            except Exception as exc:  # a bug or a database hiccup must not stop the loop
                self.round_log.failed(
                    exc, "closing a reward period failed", "trying again next tick"
                )
            else:
                self.round_log.ok()
            await self._sleep(self.tick_s)

    async def close_first(self, bound_s: float = START_CLOSE_S) -> bool:
        """Close the due period before the registry serves (its lifespan awaits this, then
        :meth:`start`): a node's first heartbeat to a registry back after every registry was
        down moves its last heartbeat into the current period, and a close after it labelled
        the uptime the node earned before the stop with the due period
        (``core/rewards.uptime_period``; found 2026-12-05). A failure is logged and the
        loop tries again, as on any tick: the registry starts anyway. Waited for at most
        ``bound_s`` (0: not at all): a close still going on then is logged and left running,
        the loop's first tick (:meth:`start`), so a store that hangs cannot hold the start
        (found 2026-12-05). ``True`` when the close ended (closed or failed) within it."""
        first = asyncio.create_task(self.close_due(), name="llm-mesh-rewards-first")
        try:
            done, _ = await asyncio.wait({first}, timeout=bound_s) if bound_s > 0 else ((), ())
        except BaseException:  # the start itself stopped: not a close left behind
            first.cancel()
            raise
        if not done:
            if bound_s > 0:
                log.warning(
                    "closing the due reward period at start took over %g s; serving, the close "
                    "goes on beside serving (LLM_MESH_REWARD_START_CLOSE_S)",
                    bound_s,
                )
            self._first = first
            return False
        failed = first.exception()
        if failed is not None:
            log.error(
                "closing the due reward period at start failed; trying again next tick",
                exc_info=failed,
            )
        return True

    def round_logs(self) -> Iterable[RoundLog]:
        """The reward task's loop (``failed_rounds.HasRoundLogs``)."""
        return (self.round_log,)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="llm-mesh-rewards")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        first, self._first = self._first, None  # a start's close the loop never took
        if first is not None and first.done() and not first.cancelled():
            first.exception()  # ended while no loop ran: nothing to stop, nothing to raise
        else:
            await cancel_and_wait(first)
