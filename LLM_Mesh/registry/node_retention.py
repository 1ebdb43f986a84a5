"""Quiet ``nodes`` rows deleted from the store, hourly, in bounded batches: node ids cost
nothing (a new key is a new id), so the store must not keep a row for every id ever seen.

:class:`NodeRowPruner` (a :class:`~LLM_Mesh.registry.retention._BatchPruner`, owned by the
app's lifespan when ``Settings.node_keep_days`` > 0) runs at start,
after the due reward period's close, and then every hour. A run deletes, with
:func:`prune_nodes`, the rows registered, heard and changed only before
:func:`~LLM_Mesh.core.retention.node_cutoff` (30 days by default; never within a day past
the forget bound, ``node_forget.py``, so every replica forgot the node long before, nor
within the rewards' window, so the row's ``healthy_ms`` was closed into a reward period),
``batch`` rows per statement, and each one's ``node_checks`` row (the health pass's lease
and last check: a node's only other state that exists because it was registered).

These two rows go, and the node's canary tallies (``canary_departures``, migration 0030:
evidence across sampled probes, ``canary_departures_sync.py``; since 2026-12-06,
``canarystore35``: bounded by the departed nodes too). Every other record of the id stays, because something needs it:
its ``node_keys`` row (its key, its heartbeat sequence and its **revocation**: a revoked id
stays revoked forever, ``store.upsert_node`` and ``node_auth.py`` read it, never the node
row; tests/registry/test_node_retention.py), its quarantine and trust (``canary_status``,
``canary_verifier_models``, ``canary_verifiers``), its reward periods (the last mark: a row made anew starts its
``healthy_ms`` there, ``store_rewards.last_mark``, so its next close pays what it gained
since), its settlements, ledger entries and request
log (their own retention, ``retention.py``), its usage-audit evidence. A node that comes
back registers again and is judged as any registration; its address pin lives in memory
only. ``GET /mesh/nodes?all=true`` no longer lists a deleted row (``registry nodes keys``
still lists its key and revocation).

The cutoff is counted back from the store's clock (PostgreSQL's ``clock_timestamp()``, the
memory store's own; SQLite: this host's), not this replica's wall clock (found 2026-12-07,
forget42: one an hour ahead deleted rows an hour early, one behind an hour late), and
compared with stamps on that clock: ``changed_at`` (the store stamps it) and, where the
row has a valid one (migration 0033, ``core/store_heard.store_stamp``), ``heard_store_at``
(its last heartbeat or registration) in place of ``registered_at`` and
``last_heartbeat_at``, the writing replica's wall-clock stamps; a row without one (written
before 0033, or its last heartbeat by a replica of an older version) is judged by those,
as before (found 2026-12-07, clock43: a writer a day behind had its live nodes pruned a
day early).

One replica at a time: on PostgreSQL each statement first takes a transaction-scoped
advisory lock (``pg_try_advisory_xact_lock``), and a replica that does not get it deletes
nothing this run (another is pruning); the rows are taken ``FOR UPDATE SKIP LOCKED`` (a
row a registration holds is left for the next run; one that comes after waits), and the
delete checks the row is still quiet. SQLite has one writer.

The memory store (tests, benchmarks, a registry run without a database) is pruned by the
same pruner, cutoff and loop, through its own ``MemoryStore.prune_nodes``: quiet is
``core/retention.node_quiet`` (what :func:`_quiet` says in SQL), and it drops the same two
records (the row and its health check), keeping the key and its revocation (found
2026-12-06, tidy35: it never pruned, and kept a row for every id ever registered).

A revocation marks the row changed in both stores (``store_credentials._offline``, as the
memory store's ``set_node_state``), so a revoked row stays at least as long as an unrevoked
one: its retention counts from the revocation (found 2026-12-06, small35: on SQL a row
quiet for 30 days went at its revocation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.config import Settings
from LLM_Mesh.core.retention import node_cutoff, prune_bounds
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.registry.retention import BatchLoop, _BatchPruner
from LLM_Mesh.registry.store_replicas import server_clock

if TYPE_CHECKING:  # (typing's from 3.11; only read by the type checker here)
    from typing import Unpack

__all__ = ["PRUNE_LOCK_KEY", "NodeRowPruner", "node_row_pruner", "prune_nodes", "sql_prune"]

log = logging.getLogger(__name__)

# the PostgreSQL advisory lock of node-row pruning (any fixed signed 64-bit number)
PRUNE_LOCK_KEY = 0x4C4D_6E6F_6465_7072  # "LMnodepr"


class _Busy(Exception):
    """Another replica holds the pruning lock."""


def _quiet(before: datetime) -> tuple[ColumnElement[bool], ...]:
    """``core/retention.node_quiet`` in SQL: registered, heard and changed before ``before``;
    a row with a valid store stamp (``heard_store_of`` equals ``last_heartbeat_at``, 0033:
    ``core/store_heard.store_stamp``) by its ``heard_store_at`` for the two wall stamps."""
    n = tables.nodes
    # never NULL (a row of before 0033: FALSE), so ``~stamped`` is its fallback
    stamped = and_(
        *(c.is_not(None) for c in (n.c.heard_store_at, n.c.heard_store_of, n.c.last_heartbeat_at)),
        n.c.heard_store_of == n.c.last_heartbeat_at,
    )
    by_wall = and_(
        n.c.registered_at < before,
        or_(n.c.last_heartbeat_at.is_(None), n.c.last_heartbeat_at < before),
    )
    return (
        or_(and_(stamped, n.c.heard_store_at < before), and_(~stamped, by_wall)),
        or_(n.c.changed_at.is_(None), n.c.changed_at < before),
    )


async def prune_nodes(engine: AsyncEngine, before: datetime, limit: int) -> int:
    """Delete at most ``limit`` ``nodes`` rows quiet since before ``before`` (registered,
    heard and changed before it), with their ``node_checks`` and ``canary_departures`` rows;
    how many. Nothing else is touched (the module docstring). On PostgreSQL :class:`_Busy`
    when another replica holds the pruning lock."""
    prune_bounds(before, limit)
    n, c = tables.nodes, tables.node_checks
    pg = engine.dialect.name == "postgresql"
    pick = select(n.c.node_id).where(*_quiet(before)).limit(limit)
    if pg:
        # materialized, as retention.prune_settlements: a LIMIT subquery under IN may run
        # again per outer row there; rows taken by a registration in flight are skipped
        doomed = pick.with_for_update(skip_locked=True).cte("doomed").prefix_with("MATERIALIZED")
        pick = select(doomed.c.node_id)
    # one statement, the quiet check again on the row deleted (a registration meanwhile
    # keeps it); on SQLite the transaction's first statement is this write (no read first)
    stmt = delete(n).where(n.c.node_id.in_(pick), *_quiet(before)).returning(n.c.node_id)
    async with engine.begin() as conn:
        if pg:
            got = await conn.scalar(select(func.pg_try_advisory_xact_lock(PRUNE_LOCK_KEY)))
            if not got:
                raise _Busy
        ids = list((await conn.execute(stmt)).scalars())
        if ids:
            await conn.execute(delete(c).where(c.c.node_id.in_(ids)))
            d = tables.canary_departures  # its canary tallies too (canarystore35)
            await conn.execute(delete(d).where(d.c.node_id.in_(ids)))
    return len(ids)


Prune = Callable[[datetime, int], Awaitable[int]]  # (before, limit) -> rows deleted


def sql_prune(engine: Callable[[], Awaitable[AsyncEngine]]) -> Prune:
    """:func:`prune_nodes` on ``engine()``: the SQL store's."""

    async def prune(before: datetime, limit: int) -> int:
        return await prune_nodes(await engine(), before, limit)

    return prune


class NodeRowPruner(_BatchPruner):
    """Quiet ``nodes`` rows deleted (the module docstring) by ``prune``: :func:`sql_prune`,
    or the memory store's ``prune_nodes`` (the same rule, ``core/retention.node_quiet``)."""

    task_name = "llm-mesh-node-row-pruner"
    said_to = log

    def __init__(
        self,
        prune: Prune,
        *,
        keep_days: int,
        forget_s: float,
        expiry_s: float,
        reward_period_s: int,
        grace_s: float,
        store_clock: Callable[[], Awaitable[float | None]] | None = None,
        **loop: Unpack[BatchLoop],
    ) -> None:
        super().__init__(**loop)
        self.store_clock = store_clock  # the cutoff's clock (None, or it says None: the wall's)
        self._bounds = {
            "forget_s": forget_s, "expiry_s": expiry_s,
            "reward_period_s": reward_period_s, "grace_s": grace_s,
        }  # fmt: skip
        node_cutoff(0.0, keep_days, forget_s=forget_s, expiry_s=expiry_s,
                    reward_period_s=reward_period_s, grace_s=grace_s)  # fmt: skip
        self.prune = prune
        self.keep_days = keep_days

    async def poll(self) -> int:
        """One run: delete the rows quiet since before the cutoff, bounded; how many. The
        cutoff is on the store's clock where it tells it (``store_clock``: PostgreSQL's;
        the memory store's own), so this replica's wall clock does not move it (forget42:
        one an hour ahead deleted rows an hour early, one behind an hour late)."""
        now = None if self.store_clock is None else await self.store_clock()
        cutoff = node_cutoff(
            self._wall() if now is None else now,
            self.keep_days,
            forget_s=self._bounds["forget_s"],
            expiry_s=self._bounds["expiry_s"],
            reward_period_s=int(self._bounds["reward_period_s"]),
            grace_s=self._bounds["grace_s"],
        )
        said = "nodes: %d rows quiet since before %s deleted"
        try:
            return await self._prune_before(cutoff, self.prune, said)
        except _Busy:
            log.debug("nodes: another replica is pruning quiet rows")
            return 0


def node_row_pruner(
    settings: Settings, store: Store, engine: Callable[[], Awaitable[AsyncEngine]]
) -> NodeRowPruner | None:
    """The app's pruner: ``None`` when ``node_keep_days`` is 0 or the store keeps no node
    rows of its own to prune (neither SQL nor one with ``prune_nodes``, as the memory
    store: found 2026-12-06, tidy35, it kept every departed id's row for the process's
    life)."""
    if settings.node_keep_days <= 0:
        return None
    store_clock: Callable[[], Awaitable[float | None]]
    if getattr(type(store), "engine", None) is not None:
        prune = sql_prune(engine)

        async def store_clock() -> float | None:  # PostgreSQL's; SQLite: this host's (None)
            return await server_clock(await engine())

    elif callable(own := getattr(store, "prune_nodes", None)):
        prune, own_clock = own, getattr(store, "store_clock", time.time)

        async def store_clock() -> float | None:  # the memory store's own (0033)
            return float(own_clock())

    else:
        return None
    return NodeRowPruner(
        prune, keep_days=settings.node_keep_days, forget_s=settings.node_forget_s,
        expiry_s=settings.heartbeat_expiry_s, reward_period_s=settings.reward_period_s,
        grace_s=settings.heartbeat_interval_s, store_clock=store_clock,
    )  # fmt: skip
