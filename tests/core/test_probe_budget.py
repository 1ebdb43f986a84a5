"""The probe budget: a share of a node's capacity, at least one probe per model an hour."""

from __future__ import annotations

import random

import pytest

from LLM_Mesh.core.probe_budget import HOUR_S, ProbeBudget, share_used


def test_the_budget_is_a_share_of_capacity_when_that_is_more_than_the_floor() -> None:
    budget = ProbeBudget(share=0.01)
    # 1 slot, 1 s a request: 3600 requests an hour, 1 % of it
    assert budget.probes_per_hour(max_concurrency=1, service_s=1.0, models=1) == pytest.approx(36)
    # no slot reported counts as one slot
    assert budget.probes_per_hour(max_concurrency=0, service_s=1.0, models=1) == pytest.approx(36)
    assert budget.interval_s(max_concurrency=1, service_s=1.0, models=1) == pytest.approx(100)
    assert budget.interval_s(max_concurrency=1, service_s=1.0, models=3) == pytest.approx(300)


def test_the_floor_is_one_probe_per_model_per_min_interval() -> None:
    budget = ProbeBudget(share=0.0, min_interval_s=HOUR_S)
    assert budget.probes_per_hour(max_concurrency=4, service_s=1.0, models=0) == 1.0
    assert budget.probes_per_hour(max_concurrency=4, service_s=1.0, models=3) == 3.0
    assert budget.interval_s(max_concurrency=4, service_s=1.0, models=0) == HOUR_S
    assert budget.interval_s(max_concurrency=4, service_s=1.0, models=3) == HOUR_S


def _waits(budget: ProbeBudget, interval: float, n: int = 20_000, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [budget.next_due(10.0, interval, rng) - 10.0 for _ in range(n)]


def test_a_node_finds_no_quiet_time_after_a_probe() -> None:
    """Played as the node: after a probe, is there a stretch with no probe to lie in?
    Exponential waits: 1 - e^-0.1 = 9.5 % come within a tenth of the mean (the uniform
    draw in [0.5, 1.5] x interval used before left half an interval free: 0 %)."""
    waits = _waits(ProbeBudget(min_interval_s=100.0), 40.0)
    assert min(waits) < 0.4
    short = sum(w < 4.0 for w in waits) / len(waits)
    assert 0.085 < short < 0.105


def test_a_node_learns_nothing_from_the_time_since_the_last_probe() -> None:
    """Memoryless: having waited m already, the chance of waiting m more is the chance of
    waiting m at all (e^-1 for m = the mean), and no wait has a deadline (the capped
    uniform draw before: certain after 1.5 x interval, never past min_interval_s)."""
    mean = 40.0
    waits = _waits(ProbeBudget(min_interval_s=100.0), mean)
    assert sum(waits) / len(waits) == pytest.approx(mean, rel=0.03)
    past_m = [w for w in waits if w > mean]
    assert len(past_m) / len(waits) == pytest.approx(0.368, abs=0.015)
    again = sum(w > 2 * mean for w in past_m) / len(past_m)
    assert again == pytest.approx(0.368, abs=0.025)
    assert max(waits) > 100.0  # no deadline: min_interval_s is the mean wait, not a bound


def test_the_mean_wait_is_the_interval_at_most_min_interval_s() -> None:
    budget = ProbeBudget(min_interval_s=30.0)
    waits = _waits(budget, 90.0)  # a longer interval asked: the hourly minimum is the rate
    assert sum(waits) / len(waits) == pytest.approx(30.0, rel=0.03)
    rng = random.Random(2)
    firsts = [budget.first_due(5.0, 20.0, rng) - 5.0 for _ in range(20_000)]
    assert sum(firsts) / len(firsts) == pytest.approx(20.0, rel=0.03)
    assert sum(f > 20.0 for f in firsts) / len(firsts) == pytest.approx(0.368, abs=0.015)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"share": -0.01}, "share must be between 0 and 1"),
        ({"share": 1.01}, "share must be between 0 and 1"),
        ({"min_interval_s": 0.0}, "min_interval_s must be positive"),
    ],
)
def test_bad_budgets_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError) as exc:
        ProbeBudget(**kwargs)
    assert str(exc.value) == message


def test_the_whole_range_of_shares_and_short_intervals_are_allowed() -> None:
    assert ProbeBudget(share=0.0).share == 0.0
    assert ProbeBudget(share=1.0).share == 1.0
    assert ProbeBudget(min_interval_s=0.5).min_interval_s == 0.5


def test_share_used_is_probes_over_capacity_and_zero_without_capacity() -> None:
    assert share_used(3, 300.0) == 0.01
    assert share_used(1, 0.5) == 2.0
    assert share_used(3, 0.0) == 0.0
    assert share_used(3, float("inf")) == 0.0
    assert share_used(3, float("nan")) == 0.0


def test_a_sub_second_interval_of_a_fast_node_is_kept_as_its_mean_wait() -> None:
    """8 slots at 50 ms a request, 1 %: 5,760 probes an hour, one every 0.625 s on
    average; the wait's floor (1e-9 s, against a zero interval) does not round it up to
    a second, which would probe such a node at 5/8 of its share."""
    budget = ProbeBudget(share=0.01)
    interval = budget.interval_s(max_concurrency=8, service_s=0.05, models=1)
    assert interval == pytest.approx(0.625)
    waits = _waits(budget, interval)
    assert sum(waits) / len(waits) == pytest.approx(0.625, rel=0.03)
    assert budget.next_due(10.0, 0.0, random.Random(1)) - 10.0 < 1e-6  # zero: no division by 0
