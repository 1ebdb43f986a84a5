"""The request log's cutoff: keep_days, 0 keeps everything, the rewards' window kept."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.retention import DAY_S, request_log_cutoff

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
    with pytest.raises(ValueError):
        request_log_cutoff(NOW, keep, reward_period_s=period, grace_s=grace)
