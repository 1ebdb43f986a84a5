"""What the public sees of canary tallies (core/canary_publish.py): the hour before's."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from LLM_Mesh.core.canary_publish import DelayedTally, Tally, day

HOUR = 3600.0
T0 = 1_800_000_000.0  # a whole hour (divisible by 3600)


def test_a_tally_is_shown_only_from_the_next_period_on() -> None:
    d = DelayedTally(HOUR)
    d.note("n", "m", T0 + 10, Tally(1))
    assert d.shown("n", "m", T0 + 11) == Tally()  # the probe just passed: not yet shown
    assert d.shown("n", "m", T0 + HOUR - 1) == Tally()
    assert d.shown("n", "m", T0 + HOUR) == Tally(1)
    d.note("n", "m", T0 + HOUR + 5, Tally(2))
    assert d.shown("n", "m", T0 + HOUR + 6) == Tally(1)  # the next one waits its turn
    assert d.shown("n", "m", T0 + 2 * HOUR + 1) == Tally(2)
    assert d.shown("other", "m", T0 + 3 * HOUR) == Tally()


def test_a_verdict_noted_late_lands_in_its_own_period() -> None:
    """Another replica's verdict arrives after a later one was noted: kept in time order."""
    d = DelayedTally(HOUR)
    d.note("n", "m", T0 + HOUR + 5, Tally(2))
    d.note("n", "m", T0 + 5, Tally(1))
    assert d.shown("n", "m", T0 + HOUR + 10) == Tally(1)
    assert d.shown("n", "m", T0 + 2 * HOUR) == Tally(2)


def test_the_history_before_the_tally_shown_is_dropped() -> None:
    d = DelayedTally(HOUR)
    for i in range(100):
        d.note("n", "m", T0 + i, Tally(i + 1))
    assert d.shown("n", "m", T0 + HOUR) == Tally(100)
    assert len(d._history[("n", "m")]) == 1


def test_the_last_probe_is_shown_as_its_day_only() -> None:
    at = datetime(2026, 12, 5, 0, 59, 58, tzinfo=timezone.utc)
    assert day(at) == "2026-12-05" and day(None) is None


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="period_s must be positive"):
        DelayedTally(0.0)
