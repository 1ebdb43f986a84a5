"""The retention cutoffs: the request log (keep_days, 0 keeps all, the rewards' window kept)
and settled settlements (never within the longest earnings window)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from LLM_Mesh.core.retention import (
    DAY_S,
    EARNINGS_MAX_DAYS,
    node_quiet,
    prune_bounds,
    request_log_cutoff,
    settlement_cutoff,
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


def test_a_prune_refuses_no_limit_and_a_naive_time() -> None:
    aware = datetime(2026, 11, 1, tzinfo=timezone.utc)
    prune_bounds(aware, 1)
    with pytest.raises(ValueError, match="limit"):
        prune_bounds(aware, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        prune_bounds(aware.replace(tzinfo=None), 1)
