"""The retention cutoffs: the request log (keep_days, 0 keeps all, the rewards' window kept),
settled settlements (never within the longest earnings window) and quiet ``nodes`` rows
(never within a day past the forget bound nor within the rewards' window)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from LLM_Mesh.core.liveness import FORGET_FLOOR_S
from LLM_Mesh.core.retention import (
    CUT_RECEIPT_DAYS,
    DAY_S,
    EARNINGS_MAX_DAYS,
    UNPAID_DAYS,
    cut_receipt_cutoff,
    days_back,
    node_cutoff,
    node_quiet,
    prune_bounds,
    request_log_cutoff,
    settlement_cutoff,
    unpaid_cutoff,
)

NOW = 1_800_000_000.0


def test_cutoff_is_keep_days_before_now() -> None:
    assert request_log_cutoff(NOW, 30, reward_period_s=3600, grace_s=10) == NOW - 30 * DAY_S
    assert request_log_cutoff(NOW, 1, reward_period_s=3600, grace_s=10) == NOW - DAY_S


def test_zero_keeps_everything() -> None:
    assert request_log_cutoff(NOW, 0, reward_period_s=3600, grace_s=10) is None


def test_the_rewards_window_is_never_cut() -> None:
    # a week-long reward period reads requests up to two periods and the grace back
    week = 7 * DAY_S
    cutoff = request_log_cutoff(NOW, 1, reward_period_s=week, grace_s=10)
    assert cutoff == NOW - (2 * week + 10 + 3600)


@pytest.mark.parametrize(
    ("keep", "period", "grace"), [(-1, 3600, 0.0), (1, 0, 0.0), (1, 3600, -1.0)]
)
def test_bad_arguments(keep: int, period: int, grace: float) -> None:
    with pytest.raises(ValueError, match=r"^keep_days and grace_s are >= 0, reward_period_s >= 1$"):
        request_log_cutoff(NOW, keep, reward_period_s=period, grace_s=grace)


def test_the_smallest_allowed_arguments_are_taken() -> None:
    """The bounds are inclusive: a 1 s reward period, no grace, a grace under a second."""
    floor = 2 * 1 + 3600
    assert request_log_cutoff(NOW, 1, reward_period_s=1, grace_s=0.0) == NOW - DAY_S
    assert request_log_cutoff(NOW, 0, reward_period_s=1, grace_s=0.0) is None
    big = request_log_cutoff(NOW, 1, reward_period_s=DAY_S, grace_s=0.5)
    assert big == NOW - (2 * DAY_S + 0.5 + 3600)
    assert floor < DAY_S  # so the first case is keep_days, not the rewards' floor


def test_settlement_cutoff_is_keep_days_before_now() -> None:
    assert settlement_cutoff(NOW, 400) == NOW - 400 * DAY_S
    assert settlement_cutoff(NOW, 0) is None  # kept forever


@pytest.mark.parametrize("keep", [1, 30, 366, 367])
def test_settlement_cutoff_never_reaches_into_the_longest_earnings_window(keep: int) -> None:
    """The oldest earnings day (366 days, today included) starts after the cutoff."""
    cutoff = settlement_cutoff(NOW, keep)
    assert cutoff == NOW - 367 * DAY_S
    assert cutoff is not None and cutoff < NOW - EARNINGS_MAX_DAYS * DAY_S


def test_settlement_cutoff_refuses_negative_days() -> None:
    with pytest.raises(ValueError, match=r"^keep_days is >= 0$"):
        settlement_cutoff(NOW, -1)


def test_a_node_row_is_quiet_only_when_registered_heard_and_changed_before() -> None:
    """The memory store's rule (``node_retention._quiet`` is the SQL store's)."""
    cut = datetime(2026, 11, 1, tzinfo=timezone.utc)
    old, new = cut - timedelta(seconds=1), cut
    assert node_quiet(cut, old, None, None)
    assert node_quiet(cut, old, old, old)
    assert not node_quiet(cut, new, None, None)  # at the cutoff is not before it
    assert not node_quiet(cut, old, new, None)  # heard since
    assert not node_quiet(cut, old, old, new)  # changed since


def test_a_node_row_with_a_store_stamp_is_judged_by_it_not_by_its_writers_wall_stamps() -> None:
    """The store's stamp (0033) stands for the writer's ``registered`` and ``heard``; the
    store's own ``changed`` still counts (found 2026-12-07, clock43: a writer a day behind
    stamped a live node's heartbeats a day old)."""
    cut = datetime(2026, 11, 1, tzinfo=timezone.utc)
    old, new, behind = cut - timedelta(seconds=1), cut, cut - timedelta(days=1)
    assert not node_quiet(cut, behind, behind, old, stamp=new)  # heard now by the store
    assert node_quiet(cut, new, new, None, stamp=old)  # a writer ahead: quiet by the store
    assert not node_quiet(cut, old, old, new, stamp=old)  # changed since
    assert node_quiet(cut, old, old, old, stamp=None)  # no stamp: the wall stamps, as before


def test_a_prune_refuses_no_limit_and_a_naive_time() -> None:
    aware = datetime(2026, 11, 1, tzinfo=timezone.utc)
    prune_bounds(aware, 1)
    with pytest.raises(ValueError, match="limit"):
        prune_bounds(aware, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        prune_bounds(aware.replace(tzinfo=None), 1)


def _node_cutoff(keep: int, forget: float = 3600.0, expiry: float = 60.0, period: int = 3600,
                 grace: float = 10.0) -> float | None:  # fmt: skip
    return node_cutoff(NOW, keep, forget_s=forget, expiry_s=expiry, reward_period_s=period,
                       grace_s=grace)  # fmt: skip


def test_a_quiet_node_row_goes_keep_days_after_it_was_last_heard() -> None:
    assert _node_cutoff(30) == NOW - 30 * DAY_S
    assert _node_cutoff(0) is None  # kept forever


def test_a_node_row_is_kept_a_day_past_the_forget_bound() -> None:
    """Whichever forgets later, the forget bound or the expiry plus the floor, plus a day:
    no replica still holds the node when its row goes."""
    assert _node_cutoff(1, forget=3600.0, expiry=60.0) == NOW - (3600 + DAY_S)
    assert _node_cutoff(1, forget=100.0, expiry=5000.0) == NOW - (5000 + FORGET_FLOOR_S + DAY_S)
    assert _node_cutoff(1, forget=0.0, expiry=0.0) == NOW - (FORGET_FLOOR_S + DAY_S)


def test_a_node_row_is_kept_through_the_rewards_window() -> None:
    """Its ``healthy_ms`` is read by the reward period due, up to two periods, the grace and
    an hour back."""
    week = 7 * DAY_S
    assert _node_cutoff(1, period=week, grace=10.5) == NOW - (2 * week + 10.5 + 3600)
    assert _node_cutoff(15, period=week, grace=0.0) == NOW - 15 * DAY_S  # keep_days is longer


def test_the_smallest_node_cutoff_arguments_are_taken() -> None:
    """The bounds are inclusive: no forget bound, no expiry, a 1 s reward period, no grace."""
    got = node_cutoff(NOW, 1, forget_s=0.0, expiry_s=0.0, reward_period_s=1, grace_s=0.0)
    assert got == NOW - (FORGET_FLOOR_S + DAY_S)


@pytest.mark.parametrize(
    ("keep", "forget", "expiry", "period", "grace"),
    [
        (-1, 0.0, 0.0, 1, 0.0),
        (1, -1.0, 0.0, 1, 0.0),
        (1, 0.0, -1.0, 1, 0.0),
        (1, 0.0, 0.0, 0, 0.0),
        (1, 0.0, 0.0, 1, -0.5),
    ],
)
def test_node_cutoff_refuses_bad_arguments_in_words(
    keep: int, forget: float, expiry: float, period: int, grace: float
) -> None:
    with pytest.raises(
        ValueError, match=r"^keep_days, forget_s, expiry_s, grace_s >= 0; reward_period_s >= 1$"
    ):
        node_cutoff(NOW, keep, forget_s=forget, expiry_s=expiry, reward_period_s=period,
                    grace_s=grace)  # fmt: skip


def test_a_cut_receipt_goes_keep_days_after_it_was_made() -> None:
    assert cut_receipt_cutoff(1_000_000_000.0, 7) == 1_000_000_000.0 - 7 * DAY_S
    assert cut_receipt_cutoff(1_000_000_000.0, 0) is None  # kept forever
    assert CUT_RECEIPT_DAYS == 400  # the documented default (docs/operations.md)
    with pytest.raises(ValueError):
        cut_receipt_cutoff(0.0, -1)


def test_an_unpaid_count_goes_keep_days_after_its_day_never_within_the_earnings_window() -> None:
    """hygiene44: the counts of requests served unpaid, read by the earnings (at most
    ``EARNINGS_MAX_DAYS``), were never pruned; now as the settlements are."""
    assert unpaid_cutoff(NOW, 400) == NOW - 400 * DAY_S
    assert unpaid_cutoff(NOW, 7) == NOW - (EARNINGS_MAX_DAYS + 1) * DAY_S  # the floor
    assert unpaid_cutoff(NOW, 0) is None  # kept forever
    assert UNPAID_DAYS == 400  # the documented default (docs/operations.md)
    with pytest.raises(ValueError):
        unpaid_cutoff(0.0, -1)


@pytest.mark.parametrize(
    "days", [100_000_000, 10**400, 2**1100 // DAY_S], ids=["1e8", "10^400", "2^1100s"]
)
def test_a_keep_longer_than_history_cuts_at_the_epoch_never_before(days: int) -> None:
    """Millions of days (``LLM_MESH_*_KEEP_DAYS`` takes any whole number): nothing is old
    enough yet; the cutoff stays a time a ``datetime`` holds (found 2026-12-06, review38b:
    "year -271764 is out of range" at every hourly prune). A keep whose seconds no float
    holds (``_whole`` takes any digits: 401 of them here) the same, never an
    ``OverflowError`` (found 2026-12-07, review39: "int too large to convert to float" at
    every hourly prune, and at the registry's start for the pruners that check their days
    when made)."""
    cutoffs = [
        cut_receipt_cutoff(NOW, days),
        settlement_cutoff(NOW, days),
        unpaid_cutoff(NOW, days),
        request_log_cutoff(NOW, days, reward_period_s=3600, grace_s=0),
        node_cutoff(NOW, days, forget_s=0, expiry_s=0, reward_period_s=3600, grace_s=0),
    ]
    assert cutoffs == [0.0] * 5
    assert {datetime.fromtimestamp(c or 0.0, timezone.utc).year for c in cutoffs} == {1970}


def test_days_back_is_keep_days_before_now_held_to_its_floor() -> None:
    """The settlements' and the cut receipts' cutoffs (``days_back``): keep_days back, never
    fewer than the floor's days; 0 keeps all; a negative keep_days refused."""
    assert days_back(NOW, 7) == NOW - 7 * DAY_S
    assert days_back(NOW, 7, 10) == NOW - 10 * DAY_S  # held to the floor
    assert days_back(NOW, 12, 10) == NOW - 12 * DAY_S
    assert days_back(NOW, 0, 10) is None  # kept forever, floor or not
    with pytest.raises(ValueError, match=r"^keep_days is >= 0$"):
        days_back(NOW, -1)
