"""An operator's earnings: per day, per model, per node, from the ledger's tables.

:func:`earnings` reads, for one operator's accounts (its keyed one and, when given, its
unkeyed one of before migration 0018, whose balance is never moved:
``registry/ledger_accounts.py``) and a window of whole UTC days:

- requests: ``settlements`` rows in state ``settled`` paid to either account (earned =
  ``amount − fee``, dated by when it settled: ``updated_at``), grouped by node, model
  and day in SQL;
- uptime rewards: ``reward_periods`` rows paid to either account (dated by the day the
  period started), grouped by node and day;
- the accounts' ledger balance, both added up (credits less debits, two indexed sums
  each);
- what is **held** for each of the operator's nodes (quarantined after a failed canary
  probe: paid to the node's held account, not to the operator, until the admin clears
  it; ``registry/held.py``, its keyed and its old held account): not in ``earned``, not in
  the balance.

:func:`node_totals` is the public per-node view (the dashboard's Nodes page): what each
node earned in the window, requests and rewards, for every operator at once.

Every amount is an integer in micro-NetworkTokens. The engine is the ledger's (the
store's own, or a memory-store registry's private one), so these tables are there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.registry import tables
from LLM_Mesh.registry.held import held_amounts
from LLM_Mesh.registry.settle_scans import col, done_rows, is_done

__all__ = ["Earnings", "account_balance", "earnings", "node_totals"]

SETTLED = "settled"
_DAY_S = 86_400


@dataclass
class _Sum:
    requests: int = 0
    earned: int = 0  # from requests, after the fee
    fees: int = 0  # what the network kept of them
    rewards: int = 0  # uptime rewards
    healthy_ms: int = 0  # uptime counted in the rewarded periods

    @property
    def total(self) -> int:
        return self.earned + self.rewards

    def add(self, other: _Sum) -> None:
        self.requests += other.requests
        self.earned += other.earned
        self.fees += other.fees
        self.rewards += other.rewards
        self.healthy_ms += other.healthy_ms

    def to_json(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "earned": self.earned,
            "fees": self.fees,
            "rewards": self.rewards,
            "total": self.total,
        }


@dataclass
class Earnings:
    """What ``GET /v1/earnings`` answers (:meth:`to_json`)."""

    operator: str
    account: str
    since: date
    until: date
    node: str | None
    nodes: list[str]
    balance: int
    held: dict[str, int] = field(default_factory=dict)  # node id -> µNT held (quarantined)
    old_account: str | None = None  # the unkeyed account of before 0018, added up
    totals: _Sum = field(default_factory=_Sum)
    by_day: dict[str, _Sum] = field(default_factory=dict)
    by_model: dict[str, _Sum] = field(default_factory=dict)
    by_node: dict[str, _Sum] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "object": "earnings",
            "operator": self.operator,
            "account": self.account,
            "old_account": self.old_account,
            "unit": "micro-NetworkToken",
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "node": self.node,
            "nodes": self.nodes,
            "balance": self.balance,
            "held": sum(self.held.values()),
            "held_by_node": dict(sorted(self.held.items())),
            "totals": self.totals.to_json(),
            "by_day": [{"day": d, **s.to_json()} for d, s in sorted(self.by_day.items())],
            "by_model": [
                {"model": m, "requests": s.requests, "earned": s.earned, "fees": s.fees}
                for m, s in sorted(self.by_model.items())
            ],
            "by_node": [
                {"node_id": n, **s.to_json(), "healthy_s": s.healthy_ms // 1000}
                for n, s in sorted(self.by_node.items())
            ],
        }


def _day_of(column: Any, dialect: str) -> Any:
    """The UTC day (``YYYY-MM-DD``) of a stored datetime, in SQL."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.date(column)  # SQLite keeps naive UTC text


async def account_balance(conn: AsyncConnection, account: str) -> int:
    """Credits less debits of ``account``: its ``balances`` row (0 without one), which every
    ledger append keeps in the same transaction (migration 0006) — one key, where the two
    sums over ``ledger_entries`` read every entry the account ever had (found 2026-12-05)."""
    b = tables.balances
    found = (await conn.execute(select(b.c.balance).where(b.c.account == account))).scalar()
    return int(found or 0)


async def account_named(conn: AsyncConnection, account: str) -> bool:
    """Whether anything names ``account``: a ledger entry (to or from it), a settlement or
    a reward period paid to it (each an indexed look-up, at most one row)."""
    e, s, rp = tables.ledger_entries, tables.settlements, tables.reward_periods
    for column in (e.c.to_account, e.c.from_account, s.c.operator, rp.c.operator):
        if (await conn.execute(select(column).where(column == account).limit(1))).first():
            return True
    return False


async def earnings(
    engine: AsyncEngine,
    *,
    operator: str,
    account: str,
    nodes: list[str],
    node: str | None = None,
    days: int = 30,
    now: float,
    old_account: str | None = None,
) -> Earnings:
    """The earnings of ``account`` and ``old_account`` together over the ``days`` UTC days
    up to ``now``'s (see the module); an ``old_account`` nothing names (an operator of
    since keyed accounts) is left out, and not named in the answer: it adds nothing."""
    if days < 1:
        raise ValueError("days is at least 1")
    until = datetime.fromtimestamp(now, tz=timezone.utc).date()
    since = until - timedelta(days=days - 1)
    since_dt = datetime(since.year, since.month, since.day, tzinfo=timezone.utc)
    out = Earnings(operator, account, since, until, node, sorted(nodes), 0)
    rp = tables.reward_periods
    async with engine.connect() as conn:
        if old_account is not None and await account_named(conn, old_account):
            out.old_account = old_account
        accounts = [account] if out.old_account is None else [account, out.old_account]
        # the rows settled in the window: ``ix_settlements_done``'s range (settle_scans.py;
        # PostgreSQL's own choice too), not every settled row (the ``state`` index)
        node_id, day = col("node_id"), _day_of(col("updated_at"), conn.dialect.name)
        where: list[Any] = [is_done(), col("state") == SETTLED, col("updated_at") >= since_dt]
        where.append(col("operator").in_(accounts))
        if node is not None:
            where.append(node_id == node)
        stmt = (
            select(
                node_id,
                col("model"),
                day.label("day"),
                func.count().label("n"),
                func.coalesce(func.sum(col("amount")), 0).label("amount"),
                func.coalesce(func.sum(col("fee")), 0).label("fee"),
            )
            .select_from(done_rows(conn.dialect.name))
            .where(and_(*where))
            .group_by(node_id, col("model"), day)
        )
        for row in await conn.execute(stmt):
            fee = int(row.fee)
            part = _Sum(requests=int(row.n), earned=int(row.amount) - fee, fees=fee)
            _count(out, part, day=str(row.day), node=row.node_id, model=row.model)
        rday = rp.c.period_start // _DAY_S
        # SQLite: ``operator || ''``, which no index serves, so the read is the window's
        # periods (by ``period_start``, or the node's key range), not every period the
        # accounts were ever paid (``reward_periods`` is never pruned); grouped by
        # ``node_id || ''``, as in :func:`node_totals`, or SQLite reads the whole table in
        # its key's order. PostgreSQL ANDs both indexes' ranges (statistics): unchanged.
        pg = conn.dialect.name == "postgresql"
        by_node = rp.c.node_id if pg else rp.c.node_id.concat("")
        paid_to = (rp.c.operator if pg else rp.c.operator.concat("")).in_(accounts)
        rwhere = [paid_to, rp.c.period_start >= int(since_dt.timestamp())]
        if node is not None:
            rwhere.append(rp.c.node_id == node)
        rstmt = (
            select(
                by_node.label("node_id"),
                rday.label("day"),
                func.sum(rp.c.amount).label("amount"),
                func.sum(rp.c.healthy_ms).label("healthy_ms"),
            )
            .where(and_(*rwhere))
            .group_by(by_node, rday)
        )
        for row in await conn.execute(rstmt):
            when = date(1970, 1, 1) + timedelta(days=int(row.day))
            part = _Sum(rewards=int(row.amount or 0), healthy_ms=int(row.healthy_ms or 0))
            _count(out, part, day=when.isoformat(), node=row.node_id, model=None)
        out.balance = sum([await account_balance(conn, a) for a in accounts])
    out.held = await held_amounts(engine, [node] if node is not None else nodes)
    return out


def _count(out: Earnings, part: _Sum, *, day: str, node: str | None, model: str | None) -> None:
    out.totals.add(part)
    out.by_day.setdefault(day, _Sum()).add(part)
    if model is not None:
        out.by_model.setdefault(model, _Sum()).add(part)
    out.by_node.setdefault(node or "-", _Sum()).add(part)


async def node_totals(engine: AsyncEngine, *, days: int, now: float) -> dict[str, dict[str, int]]:
    """What each node earned over the ``days`` UTC days up to ``now``'s: ``node id →
    {"requests", "earned", "fees", "rewards", "total"}`` (only nodes with something)."""
    if days < 1:
        raise ValueError("days is at least 1")
    until = datetime.fromtimestamp(now, tz=timezone.utc).date()
    since = until - timedelta(days=days - 1)
    since_dt = datetime(since.year, since.month, since.day, tzinfo=timezone.utc)
    rp = tables.reward_periods
    sums: dict[str, _Sum] = {}
    async with engine.connect() as conn:
        # the rows settled in the window: ``ix_settlements_done``'s range (settle_scans.py)
        node_id = col("node_id")
        stmt = (
            select(
                node_id,
                func.count().label("n"),
                func.coalesce(func.sum(col("amount")), 0).label("amount"),
                func.coalesce(func.sum(col("fee")), 0).label("fee"),
            )
            .select_from(done_rows(conn.dialect.name))
            .where(
                and_(
                    is_done(),
                    col("state") == SETTLED,
                    col("updated_at") >= since_dt,
                    node_id.is_not(None),
                    col("operator").not_like("held:%"),  # held, not earned (registry/held.py)
                )
            )
            .group_by(node_id)
        )
        for row in await conn.execute(stmt):
            fee = int(row.fee)
            sums.setdefault(row.node_id, _Sum()).add(
                _Sum(requests=int(row.n), earned=int(row.amount) - fee, fees=fee)
            )
        # SQLite: grouped by ``node_id || ''``, or it reads the whole table in its key's
        # order (node first) to group without sorting, not the window's periods
        by_node = rp.c.node_id if conn.dialect.name == "postgresql" else rp.c.node_id.concat("")
        rstmt = (
            select(by_node.label("node_id"), func.sum(rp.c.amount).label("amount"))
            .where(
                and_(
                    rp.c.period_start >= int(since_dt.timestamp()),
                    rp.c.operator.not_like("held:%"),  # held, not earned (registry/rewards.py)
                )
            )
            .group_by(by_node)
        )
        for row in await conn.execute(rstmt):
            if int(row.amount or 0) > 0:
                sums.setdefault(row.node_id, _Sum()).add(_Sum(rewards=int(row.amount)))
    return {node: part.to_json() for node, part in sums.items()}
