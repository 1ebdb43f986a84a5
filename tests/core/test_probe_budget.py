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


def test_the_next_probe_is_jittered_but_never_past_the_min_interval() -> None:
    budget = ProbeBudget(min_interval_s=100.0)
    rng = random.Random(1)
    dues = [budget.next_due(10.0, 40.0, rng) for _ in range(200)]
    assert all(30.0 <= d <= 70.0 for d in dues) and max(dues) - min(dues) > 30
    assert all(budget.next_due(10.0, 90.0, rng) <= 110.0 for _ in range(200))


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
