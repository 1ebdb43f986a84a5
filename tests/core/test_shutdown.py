"""The node's shutdown budget: the drain, the goodbye's deadline, when a goodbye is retried."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.shutdown import DEFAULT_SHUTDOWN_S, ShutdownBudget, retry_goodbye


def test_the_default_fits_well_inside_the_grace_llm_mesh_up_gives() -> None:
    b = ShutdownBudget()
    assert b.total_s == DEFAULT_SHUTDOWN_S == 12.0 < 15.0  # local_mesh.LocalMesh.stop
    assert b.drain_s == 8.5  # 12 - 2.5 kept for the goodbye - 1 for closing
    # the drain took all its time: the goodbye ends 11 s after the signal, not 6 s later
    assert b.goodbye_deadline(began=0.0, now=8.6) == 11.0
    # nothing was in flight: the goodbye has its own 6 s
    assert b.goodbye_deadline(began=0.0, now=0.1) == pytest.approx(6.1)


def test_without_a_signal_the_goodbye_has_its_own_budget() -> None:
    assert ShutdownBudget().goodbye_deadline(began=None, now=50.0) == 56.0


def test_a_late_goodbye_gets_no_time_rather_than_a_deadline_in_the_past() -> None:
    b = ShutdownBudget(total_s=4.0)
    assert b.drain_s == 0.5
    assert b.goodbye_deadline(began=0.0, now=2.0) == 3.0
    assert b.goodbye_deadline(began=0.0, now=9.0) == 9.0  # now: no try at all


def test_a_total_smaller_than_the_reserves_drains_nothing() -> None:
    assert ShutdownBudget(total_s=2.0).drain_s == 0.0


@pytest.mark.parametrize("total", [0.0, -1.0])
def test_a_total_that_is_not_positive_is_refused(total: float) -> None:
    with pytest.raises(ValueError, match=rf"^a shutdown needs a positive total, got {total!r}$"):
        ShutdownBudget(total_s=total)


@pytest.mark.parametrize("step", ["goodbye_s", "goodbye_min_s", "close_s"])
def test_a_negative_step_is_refused(step: str) -> None:
    with pytest.raises(ValueError, match=r"^shutdown steps take zero seconds or more$"):
        ShutdownBudget(**{step: -0.1})


def test_short_totals_and_zero_second_steps_are_taken() -> None:
    """The bounds are exclusive for the total (any positive time) and inclusive for the
    steps (a step may take no time at all)."""
    assert ShutdownBudget(total_s=0.5).drain_s == 0.0
    b = ShutdownBudget(total_s=3.0, goodbye_s=0.0, goodbye_min_s=0.0, close_s=0.0)
    assert b.drain_s == 3.0
    assert b.goodbye_deadline(began=0.0, now=1.0) == 1.0  # no goodbye time of its own
    assert ShutdownBudget(goodbye_min_s=0.5, close_s=0.5).drain_s == 11.0


def test_retry_goodbye() -> None:
    ok = {"tries": 1, "max_tries": 3, "now": 1.0, "deadline": 6.0}
    assert retry_goodbye(refused=False, **ok)  # a timeout or a 5xx: again
    assert not retry_goodbye(refused=True, **ok)  # refused: the registry is gone
    assert not retry_goodbye(refused=False, **{**ok, "tries": 3})
    assert not retry_goodbye(refused=False, **{**ok, "now": 6.0})
