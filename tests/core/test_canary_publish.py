"""What the public sees of canary tallies (core/canary_publish.py): the hour before's, coarse."""

from __future__ import annotations

import itertools
import math

import pytest

from LLM_Mesh.core.canary_publish import DelayedTally, Tally, coarse

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


def test_passed_probes_are_shown_in_power_of_two_steps() -> None:
    assert [coarse(n) for n in range(10)] == [0, 1, 2, 2, 4, 4, 4, 4, 8, 8]
    assert coarse(1023) == 512 and coarse(1024) == 1024
    for n in range(1, 2000):  # a lower bound: at least that many passed, fewer than twice
        assert coarse(n) <= n < 2 * coarse(n)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 100, 1000, 4096])
def test_a_node_watching_n_probes_pass_sees_at_most_log2_n_plus_one_steps(n: int) -> None:
    """Every probe passed in its own hour, the public tally read after each: the hours in
    which it moved are the probes the node learns."""
    shown = [coarse(k) for k in range(n + 1)]
    steps = sum(a != b for a, b in itertools.pairwise(shown))
    assert steps == math.floor(math.log2(n)) + 1


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^passed must not be negative$"):
        coarse(-1)


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^period_s must be positive$"):
        DelayedTally(0.0)
    DelayedTally(0.5)  # under a second is a period too
