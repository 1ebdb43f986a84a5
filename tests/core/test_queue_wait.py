"""Retry-After as the queue's drain time: the rule the node and the gateway share."""

from __future__ import annotations

import math

import pytest

from LLM_Mesh.core.queue_wait import ServiceTime, queue_wait_s, retry_after_header


def test_the_wait_is_the_queue_ahead_times_the_service_time() -> None:
    # defect 11: 1 running + 8 queued at ~1 s each is ~9 s, not 1 s
    assert queue_wait_s(9, 1.0, 1) == pytest.approx(9.0)
    assert queue_wait_s(9, 1.0, 3) == pytest.approx(3.0)
    assert queue_wait_s(0, 1.0, 1) == 0.0
    assert queue_wait_s(4, 0.0, 1) == 0.0


def test_work_done_on_running_requests_is_taken_off() -> None:
    # the running one is 0.4 s into a 1 s service: 0.6 s left, then 8 queued
    assert queue_wait_s(9, 1.0, 1, running_elapsed_s=[0.4]) == pytest.approx(8.6)
    # a running request counts at most one service time, and never negative
    assert queue_wait_s(2, 1.0, 1, running_elapsed_s=[5.0, -1.0]) == pytest.approx(1.0)


def test_bad_concurrency_raises() -> None:
    with pytest.raises(ValueError):
        queue_wait_s(1, 1.0, 0)


def test_retry_after_rounds_up_and_is_at_least_one() -> None:
    assert retry_after_header(8.01) == 9
    assert retry_after_header(8.0) == 8
    assert retry_after_header(0.0) == 1
    with pytest.raises(ValueError):
        retry_after_header(math.inf)


def test_service_time_starts_at_the_prior_then_follows_samples() -> None:
    st = ServiceTime(alpha=0.5, prior_s=2.0)
    assert st.measured_s is None and st.estimate() == 2.0
    st.observe(1.0)
    assert st.measured_s == 1.0 and st.samples == 1
    st.observe(3.0)
    assert st.measured_s == pytest.approx(2.0)
    st.observe(2.0)
    assert st.estimate() == pytest.approx(2.0)


def test_a_running_request_older_than_the_estimate_raises_it() -> None:
    st = ServiceTime(prior_s=1.0)
    st.observe(0.5)
    assert st.estimate([0.2]) == 0.5
    assert st.estimate([0.2, 4.0]) == 4.0


def test_service_time_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        ServiceTime(alpha=0.0)
    with pytest.raises(ValueError):
        ServiceTime(prior_s=0.0)
    with pytest.raises(ValueError):
        ServiceTime().observe(-1.0)
    with pytest.raises(ValueError):
        ServiceTime().observe(math.nan)


def test_an_empty_queue_or_no_service_time_means_no_wait() -> None:
    assert queue_wait_s(0, 2.0, 1) == 0.0
    assert queue_wait_s(3, 0.0, 1) == 0.0
    assert queue_wait_s(1, 2.0, 1) == 2.0  # one ahead is a wait
    assert queue_wait_s(-1, 2.0, 1, running_elapsed_s=[-5.0]) == 0.0  # not a negative done
    assert queue_wait_s(2, -1.0, 1, running_elapsed_s=[-5.0]) == 0.0


def test_refusals_of_bad_settings_say_what_is_allowed() -> None:
    cases = [
        (lambda: queue_wait_s(1, 1.0, 0), "concurrency must be at least 1"),
        (lambda: retry_after_header(math.inf), "wait_s must be finite, got inf"),
        (lambda: ServiceTime(alpha=1.5), "alpha must be in (0, 1]"),
        (lambda: ServiceTime(prior_s=-1.0), "prior_s must be > 0"),
        (lambda: ServiceTime().observe(-0.5), "a service time must be finite and >= 0, got -0.5"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as exc:
            call()
        assert str(exc.value) == message


def test_alpha_one_follows_the_last_sample_and_zero_seconds_is_a_sample() -> None:
    st = ServiceTime(alpha=1.0)
    st.observe(0.0)
    assert st.measured_s == 0.0
    for s in (3.0, 5.0):
        st.observe(s)
    assert (st.measured_s, st.samples) == (5.0, 3)


def test_a_wait_under_a_second_is_quoted_as_it_is() -> None:
    """Under a second of work ahead is that fraction (``retry_after_header`` rounds it up
    to 1 s, not this), and work already done past the queue's leaves no wait."""
    assert queue_wait_s(1, 0.5, 1) == 0.5
    assert queue_wait_s(1, 0.5, 2) == 0.25
    assert queue_wait_s(2, 1.0, 1, running_elapsed_s=[0.75]) == 1.25
    assert queue_wait_s(1, 2.0, 1, running_elapsed_s=[5.0]) == 0.0


def test_no_service_time_means_no_wait_whatever_is_running() -> None:
    """A service time of 0 or below (nothing measured to plan with) quotes no wait, even
    with requests that ran long: they count at most one service time, never against it."""
    assert queue_wait_s(3, 0.0, 1, running_elapsed_s=[5.0, 5.0]) == 0.0
    assert queue_wait_s(1, -1.0, 1, running_elapsed_s=[5.0, 5.0, 5.0]) == 0.0
