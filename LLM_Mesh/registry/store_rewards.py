"""The SQL store's side of uptime rewards: heartbeat credits and requests per period.

- :func:`heartbeat_statement` / :func:`heartbeat_credit`: the SQL form of
  :func:`LLM_Mesh.core.rewards.heartbeat_credit_ms`, evaluated by the heartbeat's own
  ``UPDATE nodes`` against the row's *old* ``state`` and ``last_heartbeat_at`` (every
  ``SET`` expression sees the row as it was), so the credit and the new heartbeat are
  one atomic step on SQLite and PostgreSQL. Milliseconds, rounded.
- :class:`SqlRewardStats` (mixed into ``SqlStore``): ``request_totals`` over a period,
  one grouped query.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Interval,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    extract,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.rewards import ModelStats
from LLM_Mesh.core.schemas import NodeState
from LLM_Mesh.core.store_heard import AHEAD_S
from LLM_Mesh.registry import tables

__all__ = [
    "SqlRewardStats",
    "changed_clock",
    "heard_within_sql",
    "heartbeat_credit",
    "heartbeat_statement",
    "heartbeats_statement",
    "host_now",
    "last_mark",
    "not_gone",
    "store_clock",
]


def _elapsed_ms(dialect: str, at: Any, column: Any) -> Any:
    if dialect == "postgresql":
        return extract("epoch", cast(at, tables.UTCDateTime()) - column) * 1000
    # SQLite keeps naive UTC text (no CAST: its DATETIME affinity is numeric);
    # julianday() reads it to the millisecond
    return (func.julianday(at) - func.julianday(column)) * 86_400_000.0


def heartbeat_credit(dialect: str, at: Any, limit_ms: Any) -> Any:
    """What a heartbeat at ``at`` adds to ``nodes.healthy_ms`` (an SQL expression)."""
    n = tables.nodes
    elapsed = _elapsed_ms(dialect, at, n.c.last_heartbeat_at)
    credit = case(
        (limit_ms <= 0, 0),
        (n.c.state != NodeState.ONLINE.value, 0),
        (n.c.last_heartbeat_at.is_(None), 0),
        (elapsed <= 0, 0),
        (elapsed >= limit_ms, limit_ms),
        else_=func.round(elapsed),
    )
    return cast(credit, BigInteger)


def last_mark(node_id: str) -> Any:
    """The node's latest ``reward_periods`` mark, 0 before any (an SQL expression): a row made
    anew (deleted after ``node_keep_days``, ``registry/node_retention.py``, and registered
    again) starts its ``healthy_ms`` there, so the next close counts what it gained since
    (from 0 the close subtracted the old mark once the counter passed it: found 2026-12-06,
    departed34). An existing row's counter is never below its mark (``close_uptime``)."""
    rp = tables.reward_periods
    latest = (
        select(rp.c.mark_ms)
        .where(rp.c.node_id == node_id)
        .order_by(rp.c.period_start.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(latest, 0)


def store_clock(dialect: str) -> Any:
    """The store's own clock in a statement (migration 0033, ``core/store_heard.py``):
    PostgreSQL's ``clock_timestamp()``; elsewhere (SQLite: one host) the parameter
    ``b_store_at``, this process's clock (:func:`host_now`)."""
    if dialect == "postgresql":
        return func.clock_timestamp(type_=tables.UTCDateTime())
    return bindparam("b_store_at", type_=tables.UTCDateTime())


def changed_clock(dialect: str) -> Any:
    """When a node's registration or state changed (``nodes.changed_at``), on the store's
    own clock, which every replica's node poll windows on (``node_sync.py``): PostgreSQL's
    ``statement_timestamp()`` (one value however often the statement names it: a
    registration's ``tls_at`` and ``keeps_at`` must equal its ``changed_at``,
    ``store_replicas.node_from_row``); elsewhere (SQLite: one host) this process's clock."""
    if dialect == "postgresql":
        return func.statement_timestamp(type_=tables.UTCDateTime())
    return host_now()


def host_now() -> datetime:
    """This host's clock: the store's on SQLite (``b_store_at``)."""
    return datetime.now(timezone.utc)


def heard_within_sql(dialect: str, since: datetime, window_s: float | None) -> Any:
    """``core/store_heard.heard_within`` in SQL (another node's row holding its address,
    ``SqlStore.upsert_node``): a row with a valid store stamp (0033) heard within
    ``window_s`` on the store's clock (PostgreSQL's ``clock_timestamp()``; SQLite: this
    host's), any other (or one more than ``AHEAD_S`` ahead of that clock) by its wall stamp
    against ``since``."""
    n = tables.nodes
    by_wall = n.c.last_heartbeat_at >= since
    if window_s is None:
        return by_wall
    window, ahead = timedelta(seconds=window_s), timedelta(seconds=AHEAD_S)
    if dialect == "postgresql":
        now: Any = func.clock_timestamp(type_=tables.UTCDateTime())
        since_at, until_at = now - literal(window, Interval()), now + literal(ahead, Interval())
    else:  # SQLite: this host's clock
        since_at, until_at = (
            literal(host_now() + d, tables.UTCDateTime()) for d in (-window, ahead)
        )
    # never NULL (a row of before 0033: FALSE), so ``~stamped`` is its fallback
    stamped = and_(
        *(c.is_not(None) for c in (n.c.heard_store_at, n.c.heard_store_of, n.c.last_heartbeat_at)),
        n.c.heard_store_at <= until_at,
        n.c.heard_store_of == n.c.last_heartbeat_at,
    )
    return or_(and_(stamped, n.c.heard_store_at >= since_at), and_(~stamped, by_wall))


def not_gone() -> Any:
    """The ``WHERE`` of every heartbeat write: the node's row is not OFFLINE."""
    return tables.nodes.c.state != NodeState.OFFLINE.value


@functools.cache
def heartbeat_statement(dialect: str) -> Any:
    """The heartbeat's ``UPDATE`` (built once per dialect): parameters ``b_node_id``,
    ``b_at`` (aware datetime), ``b_state``, ``b_limit_ms`` (0: no credit) and
    ``b_keyed_at`` (the node's last keyed request as it said, or None); on SQLite also
    ``b_store_at`` (:func:`store_clock`: the heartbeat on the store's clock, with
    ``heard_store_of``). A node that is OFFLINE (it said goodbye, or was revoked) is not
    touched: only registering brings it back, and a heartbeat written after its goodbye
    must not (:func:`not_gone`)."""
    n = tables.nodes
    at = bindparam("b_at", type_=tables.UTCDateTime())
    limit = bindparam("b_limit_ms", type_=BigInteger())
    return (
        update(n)
        .where(n.c.node_id == bindparam("b_node_id"), not_gone())
        .values(
            last_heartbeat_at=at,
            heard_store_at=store_clock(dialect),
            heard_store_of=at,
            state=bindparam("b_state"),
            keyed_at=bindparam("b_keyed_at", type_=tables.UTCDateTime()),
            healthy_ms=n.c.healthy_ms + heartbeat_credit(dialect, at, limit),
        )
    )


@functools.cache
def heartbeats_statement(dialect: str) -> Any:
    """Many heartbeats in one ``UPDATE`` on PostgreSQL (``store_replicas.touch_heartbeats``),
    with the same :func:`heartbeat_credit` as one heartbeat's: one row per item of the
    arrays ``ids``, ``ats`` (aware datetimes), ``states``, ``lims`` (credit limits, ms;
    0: no credit), ``keyeds`` (last keyed requests, or None) and ``waits`` (seconds each
    waited since it arrived: the store's stamp is its clock less it) joined by
    ``unnest``, and ``by`` (the replica that heard them, or None).
    Other dialects: :func:`heartbeat_statement` once per item."""
    if dialect != "postgresql":
        raise ValueError("one UPDATE over unnest(...) arrays is PostgreSQL's")
    n = tables.nodes
    when = tables.UTCDateTime()
    rows = (
        func.unnest(
            bindparam("ids", type_=ARRAY(String())),  # typed: asyncpg gets varchar[] etc.
            bindparam("ats", type_=ARRAY(when)),
            bindparam("states", type_=ARRAY(String())),
            bindparam("lims", type_=ARRAY(BigInteger())),
            bindparam("keyeds", type_=ARRAY(when)),
            bindparam("waits", type_=ARRAY(Float())),
        )
        .table_valued(
            column("node_id", String()),
            column("at", when),
            column("state", String()),
            column("lim", BigInteger()),
            column("keyed", when),
            column("wait", Float()),
        )
        .render_derived(name="v")
    )
    return (
        update(n)
        .where(n.c.node_id == rows.c.node_id, not_gone())
        .values(
            last_heartbeat_at=rows.c.at,
            # the server's clock (migration 0033) less the wait in the writer's queue
            heard_store_at=store_clock(dialect)
            - func.make_interval(0, 0, 0, 0, 0, 0, func.greatest(rows.c.wait, 0.0)),
            heard_store_of=rows.c.at,
            state=rows.c.state,
            keyed_at=rows.c.keyed,
            heard_by=bindparam("by", type_=String()),
            healthy_ms=n.c.healthy_ms + heartbeat_credit(dialect, rows.c.at, rows.c.lim),
        )
    )


class SqlRewardStats:
    """``request_totals`` on the store's engine (the store gives ``engine``)."""

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    async def request_totals(
        self, since: datetime, until: datetime
    ) -> dict[str, dict[str, ModelStats]]:
        r = tables.requests
        ok = r.c.outcome == "ok"
        stmt = (
            select(
                r.c.node_id,
                r.c.model,
                func.sum(case((ok, 1), else_=0)).label("ok"),
                func.sum(case((r.c.outcome == "error", 1), else_=0)).label("failed"),
                func.sum(case((ok, r.c.completion_tokens), else_=0)).label("tokens"),
                func.sum(case((ok, func.coalesce(r.c.latency_ms, 0.0)), else_=0.0)).label("ms"),
            )
            .where(and_(r.c.node_id.is_not(None), r.c.created_at >= since, r.c.created_at < until))
            .group_by(r.c.node_id, r.c.model)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        out: dict[str, dict[str, ModelStats]] = {}
        for row in rows:
            out.setdefault(row.node_id, {})[row.model] = ModelStats(
                ok=int(row.ok or 0),
                failed=int(row.failed or 0),
                tokens=int(row.tokens or 0),
                latency_ms=float(row.ms or 0.0),
            )
        return out
