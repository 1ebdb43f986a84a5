"""How long the gateway keeps its request log and its settled settlements: the cutoffs (pure).

Rows created before :func:`request_log_cutoff` may be deleted (``registry/retention.py``
does, hourly, in bounded batches). ``keep_days`` is ``Settings.request_log_keep_days``
(0: keep forever). The request log's one reader that needs past rows is the uptime
rewards (``Store.request_totals`` over the latest reward period due, which started up to
``2 × period + grace`` ago, :func:`LLM_Mesh.core.rewards.due_period`), so the cutoff is
never later than ``now − (2 × reward_period_s + grace_s + 1 h)``, whatever ``keep_days``.

Settlement rows (``settlements``) that are done with (``settled``: paid into the ledger, or
``void``: nothing paid) may go once they were settled before :func:`settlement_cutoff`
(``Settings.settlement_keep_days``, 0: keep forever). Their one reader of past rows is an
operator's earnings, over at most :data:`EARNINGS_MAX_DAYS` UTC days (today included) by
the day a row was settled, so the cutoff is never later than ``EARNINGS_MAX_DAYS + 1``
days back. The ledger itself (the public audit log of every payment) is never pruned.

A ``nodes`` row quiet (not registered, heard or changed) since before :func:`node_cutoff`
(``Settings.node_keep_days``, 0: keep forever) may go (``registry/node_retention.py``). The
cutoff is never later than a day past the forget bound (``core/liveness.forgettable``: every
replica forgot the node long before) nor than the rewards' window (the row's ``healthy_ms``
was closed into a reward period): ``max(forget, expiry + FORGET_FLOOR_S) + 1 day`` and
``2 × reward_period_s + grace_s + 1 h`` back at least. Quiet is :func:`node_quiet` (the
memory store asks it; ``registry/node_retention._quiet`` says the same in SQL), judged on
the store's clock where the row has its stamp (migration 0033).

A cut stream's receipt nobody received (``cut_receipts``, ``registry/cut_receipts.py``) made
before :func:`cut_receipt_cutoff` may go (``Settings.cut_receipt_keep_days``, 0: keep
forever; 400 by default, as long as its settled settlement row). Its one reader is its payer
(``GET /v1/receipts/{hash}``, ``llm-mesh receipt fetch``); the ledger entry that commits to
its hash is never pruned.

The counts of requests nodes served unpaid (``unpaid_served``, migration 0035,
``registry/store_unpaid.py``) of a UTC day wholly before :func:`unpaid_cutoff` may go
(``Settings.unpaid_keep_days``, 0: keep forever; 400 by default, as the settlements). Their
one reader is an operator's earnings (``GET /v1/earnings``, ``unpaid``), over at most
:data:`EARNINGS_MAX_DAYS` UTC days, so the cutoff is never later than ``EARNINGS_MAX_DAYS +
1`` days back, as the settlements' (found 2026-12-07, hygiene44: they were never pruned).
"""

from __future__ import annotations

from datetime import datetime

from LLM_Mesh.core.liveness import FORGET_FLOOR_S

__all__ = [
    "CUT_RECEIPT_DAYS",
    "DAY_S",
    "EARNINGS_MAX_DAYS",
    "REQUEST_LOG_DAYS",
    "SETTLEMENT_DAYS",
    "UNPAID_DAYS",
    "cut_receipt_cutoff",
    "days_back",
    "node_cutoff",
    "node_quiet",
    "prune_bounds",
    "request_log_cutoff",
    "settlement_cutoff",
    "unpaid_cutoff",
]

DAY_S = 86_400
# the longest earnings window (``GET /v1/earnings?days=``, ``llm-mesh earnings --days``)
EARNINGS_MAX_DAYS = 366
# the defaults of ``Settings.request_log_keep_days``, ``settlement_keep_days``,
# ``cut_receipt_keep_days``, ``unpaid_keep_days`` (``LLM_MESH_*_KEEP_DAYS``)
REQUEST_LOG_DAYS = 30
SETTLEMENT_DAYS = 400
CUT_RECEIPT_DAYS = 400
UNPAID_DAYS = 400
_MARGIN_S = 3600  # past the rewards' window: a reward task that ran late still finds its rows


def _back(now_s: float, span_s: float) -> float:
    """``span_s`` before ``now_s``, never before the Unix epoch: a keep of millions of days
    (``_whole`` takes any) is "nothing old enough yet", not a cutoff no ``datetime`` can
    hold (found 2026-12-06, review38b: each hourly prune failed with "year -271764 is out
    of range", logged with its traceback); nor one whose seconds no float holds (compared
    exactly, never converted: found 2026-12-07, review39, an ``OverflowError``)."""
    if span_s >= now_s:  # an int past any float compares exactly with one
        return 0.0
    return now_s - span_s


def request_log_cutoff(
    now_s: float, keep_days: int, *, reward_period_s: int, grace_s: float
) -> float | None:
    """The Unix time before which request rows may go; ``None`` for ``keep_days`` 0 (keep)."""
    if keep_days < 0 or reward_period_s < 1 or grace_s < 0:
        raise ValueError("keep_days and grace_s are >= 0, reward_period_s >= 1")
    if keep_days == 0:
        return None
    floor_s = 2 * reward_period_s + grace_s + _MARGIN_S
    return _back(now_s, max(keep_days * DAY_S, floor_s))


def days_back(now_s: float, keep_days: int, floor_days: int = 0) -> float | None:
    """``keep_days`` (at least ``floor_days``) days before ``now_s``; ``None`` for
    ``keep_days`` 0 (keep); a negative ``keep_days`` refused."""
    if keep_days < 0:
        raise ValueError("keep_days is >= 0")
    if keep_days == 0:
        return None
    return _back(now_s, max(keep_days, floor_days) * DAY_S)


def settlement_cutoff(now_s: float, keep_days: int) -> float | None:
    """The Unix time before which settled or void settlement rows may go (by when they were
    settled); ``None`` for ``keep_days`` 0 (keep). Never later than ``EARNINGS_MAX_DAYS + 1``
    days back: the oldest earnings day still starts after it."""
    return days_back(now_s, keep_days, EARNINGS_MAX_DAYS + 1)


def cut_receipt_cutoff(now_s: float, keep_days: int) -> float | None:
    """The Unix time before which a cut stream's stored receipt may go (by when it was made);
    ``None`` for ``keep_days`` 0 (keep)."""
    return days_back(now_s, keep_days)


def unpaid_cutoff(now_s: float, keep_days: int) -> float | None:
    """The Unix time before which a count of requests served unpaid may go: its UTC day
    ended by then; ``None`` for ``keep_days`` 0 (keep). Never later than
    ``EARNINGS_MAX_DAYS + 1`` days back: the oldest earnings day still starts after it."""
    return days_back(now_s, keep_days, EARNINGS_MAX_DAYS + 1)


def node_cutoff(
    now_s: float,
    keep_days: int,
    *,
    forget_s: float,
    expiry_s: float,
    reward_period_s: int,
    grace_s: float,
) -> float | None:
    """The Unix time before which a quiet ``nodes`` row may go; ``None`` for ``keep_days`` 0
    (keep). Never later than a day past the forget bound nor the rewards' window."""
    if keep_days < 0 or forget_s < 0 or expiry_s < 0 or reward_period_s < 1 or grace_s < 0:
        raise ValueError("keep_days, forget_s, expiry_s, grace_s >= 0; reward_period_s >= 1")
    if keep_days == 0:
        return None
    forgotten_s = max(forget_s, expiry_s + FORGET_FLOOR_S) + DAY_S
    rewards_s = 2 * reward_period_s + grace_s + _MARGIN_S
    return _back(now_s, max(keep_days * DAY_S, forgotten_s, rewards_s))


def node_quiet(
    before: datetime,
    registered: datetime,
    heard: datetime | None,
    changed: datetime | None,
    *,
    stamp: datetime | None = None,
) -> bool:
    """Whether a ``nodes`` row was registered, heard and changed (None: never) only before
    ``before``: a row :func:`node_cutoff` lets go. ``before`` is on the store's clock, as
    ``changed`` is (the store stamps it); ``stamp``: the row's valid store stamp of its last
    heartbeat or registration (``core/store_heard.store_stamp``, migration 0033), which then
    stands for ``registered`` and ``heard``, the writing replica's wall-clock stamps; only a
    row without one (written before 0033, or its last heartbeat by a replica of an older
    version) is judged by them (found 2026-12-07, clock43: a writer a day behind stamped
    its live nodes a day old, and they were pruned that much early)."""
    if stamp is not None:
        return stamp < before and (changed is None or changed < before)
    return registered < before and all(t is None or t < before for t in (heard, changed))


def prune_bounds(before: datetime, limit: int) -> None:
    """A prune's arguments checked: ``ValueError`` for a ``limit`` under 1 or a naive
    ``before`` (a store compares it with aware times)."""
    if limit < 1:
        raise ValueError("limit is at least 1")
    if before.tzinfo is None:
        raise ValueError("before must be timezone-aware")
