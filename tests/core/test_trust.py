"""Trust score (core/trust.py) and the probe budget (core/probe_budget.py)."""

from __future__ import annotations

import random

import pytest

from LLM_Mesh.core.probe_budget import HOUR_S, ProbeBudget, share_used
from LLM_Mesh.core.trust import (
    DEFAULT_THRESHOLD,
    TrustInputs,
    TrustScore,
    speed_explained,
    trust_score,
)


def test_unverified_node_is_not_trusted_and_one_pass_makes_it_trusted() -> None:
    assert trust_score(TrustInputs()).score == 0.5
    assert not trust_score(TrustInputs()).trusted()
    one = trust_score(TrustInputs(canary_passed=1))
    assert one.trusted() and one.score == pytest.approx(0.6667, abs=1e-4)


def test_quarantine_zeroes_the_score_whatever_else() -> None:
    s = trust_score(TrustInputs(canary_passed=100, quarantined=True, success_rate=1.0))
    assert s.score == 0.0 and not s.trusted(0.0001)


def test_a_verifier_is_trusted_without_probes_unless_quarantined() -> None:
    # the admin's reference is not probed against itself: before 2026-12-07 it scored 0.5
    # (unverified) and trusted_only never reached it (user41b)
    v = trust_score(TrustInputs(verifier=True))
    assert v.canary == 1.0 and v.score == 1.0 and v.trusted()
    assert trust_score(TrustInputs(verifier=True, quarantined=True)).score == 0.0
    # its own record still counts, as any node's does
    assert not trust_score(TrustInputs(verifier=True, requests=10, failures=5)).trusted()


def test_failures_success_and_speed_lower_the_score() -> None:
    base = trust_score(TrustInputs(canary_passed=4)).score
    assert trust_score(TrustInputs(canary_passed=4, success_rate=0.5)).score == pytest.approx(
        base * 0.5, abs=1e-4
    )
    assert trust_score(TrustInputs(canary_passed=4, requests=10, failures=5)).score == (
        pytest.approx(base * 0.5, abs=1e-4)
    )
    slow = trust_score(TrustInputs(canary_passed=4, speed_unexplained=True))
    assert slow.score == pytest.approx(base * 0.5, abs=1e-4) and not slow.trusted()
    assert trust_score(TrustInputs(requests=3, failures=9)).failures == 0.0


def test_threshold_default() -> None:
    assert DEFAULT_THRESHOLD == 0.6


def test_speed_explained_by_bandwidth() -> None:
    size = 253_113_024
    assert speed_explained(100.0, size, has_gpu=False)
    assert not speed_explained(5000.0, size, has_gpu=False)
    assert speed_explained(5000.0, size, has_gpu=True)
    assert speed_explained(None, size, has_gpu=False)
    assert speed_explained(1e9, None, has_gpu=False)


def test_a_score_at_exactly_the_threshold_is_trusted() -> None:
    one = trust_score(TrustInputs(canary_passed=1))
    assert one.score == 0.6667  # rounded to 4 places: what the dashboard and routing see
    assert one.trusted(0.6667) and not one.trusted(0.66671)
    assert TrustScore(0.6, 0.6, 1.0, 1.0, 1.0).trusted()  # the default threshold itself


def test_each_factor_is_reported_with_the_score() -> None:
    s = trust_score(TrustInputs(canary_passed=2, success_rate=0.5, requests=4, failures=1,
                                speed_unexplained=True))  # fmt: skip
    assert s == TrustScore(0.1406, 0.75, 0.5, 0.75, 0.5)  # 0.140625, rounded


def test_a_success_rate_above_one_counts_as_one() -> None:
    s = trust_score(TrustInputs(canary_passed=2, success_rate=1.5))
    assert (s.success, s.score) == (1.0, 0.75)
    assert trust_score(TrustInputs(canary_passed=2, success_rate=-0.5)).success == 0.0


def test_one_request_that_failed_zeroes_the_failures_factor() -> None:
    s = trust_score(TrustInputs(canary_passed=2, requests=1, failures=1))
    assert (s.failures, s.score) == (0.0, 0.0)
    assert trust_score(TrustInputs(canary_passed=2, requests=1)).failures == 1.0


def test_a_speed_at_exactly_the_bandwidth_bound_is_explained() -> None:
    """tokens/s ≤ 2 × bandwidth / bytes: 2 × 200 GB/s / 4 GB = 100 on a CPU, 2 × 5 TB/s /
    100 GB = 100 with a GPU; the bound holds down to a file of one byte."""
    assert speed_explained(100.0, 4_000_000_000, has_gpu=False)
    assert not speed_explained(100.0001, 4_000_000_000, has_gpu=False)
    assert speed_explained(100.0, 100_000_000_000, has_gpu=True)
    assert not speed_explained(100.0001, 100_000_000_000, has_gpu=True)
    assert speed_explained(4e11, 1, has_gpu=False) and not speed_explained(4.1e11, 1, has_gpu=False)
    assert speed_explained(1e30, 0, has_gpu=False)  # size unknown: explained


def test_budget_is_one_percent_of_capacity_for_a_busy_node() -> None:
    b = ProbeBudget()
    # 4 slots, 0.5 s each: 28,800 requests an hour; 1 % = 288 probes an hour
    per_hour = b.probes_per_hour(max_concurrency=4, service_s=0.5, models=2)
    assert per_hour == pytest.approx(288.0)
    interval = b.interval_s(max_concurrency=4, service_s=0.5, models=2)
    assert interval == pytest.approx(2 * HOUR_S / 288)
    assert share_used(288, 28_800) == pytest.approx(0.01)


def test_budget_keeps_one_probe_per_model_per_hour_for_a_small_node() -> None:
    b = ProbeBudget()
    # 1 slot, 60 s a request: 60 requests an hour; 1 % is 0.6 < 3 models
    assert b.probes_per_hour(max_concurrency=1, service_s=60.0, models=3) == 3.0
    assert b.interval_s(max_concurrency=1, service_s=60.0, models=3) == HOUR_S


def test_next_due_is_random_with_the_interval_as_its_mean() -> None:
    """Exponential waits (a Poisson process): random, after the last probe, the interval
    their mean, the hourly minimum a mean too (no wait is bounded: a bound is a deadline
    a node could count on; tests/core/test_probe_budget.py plays that node)."""
    b = ProbeBudget()
    rng = random.Random(1)
    dues = [b.next_due(100.0, 600.0, rng) for _ in range(4000)]
    assert min(dues) > 100.0
    assert len({round(d, 3) for d in dues}) > 3900
    mean = sum(dues) / len(dues) - 100.0
    assert 570 < mean < 630
    hourly = [b.next_due(0.0, 2 * HOUR_S, rng) for _ in range(4000)]
    assert 0.95 * HOUR_S < sum(hourly) / len(hourly) < 1.05 * HOUR_S


def test_budget_validates() -> None:
    with pytest.raises(ValueError):
        ProbeBudget(share=2.0)
    with pytest.raises(ValueError):
        ProbeBudget(min_interval_s=0)
