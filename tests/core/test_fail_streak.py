"""A run of failures of a repeated task: the first said in full, then one a minute, the end once."""

from __future__ import annotations

from LLM_Mesh.core.fail_streak import FailStreak


def test_a_run_says_its_first_failure_then_one_a_minute_then_its_end() -> None:
    s = FailStreak(remind_s=60.0)
    assert s.ok(0.0) is None  # nothing failed: nothing to say
    said = [s.fail(float(t)) for t in range(1, 131)]  # every second for 130 s
    assert said[0] == "first"
    assert [i + 1 for i, x in enumerate(said) if x == "remind"] == [61, 121]
    assert said.count("quiet") == 127
    assert s.failing_s(130.0) == 129.0
    assert s.ok(131.0) == (130, 130.0)
    assert s.failing_s(131.0) == 0.0 and s.fail(132.0) == "first"  # a new run


def test_silent_s_counts_from_the_last_success_or_the_start() -> None:
    s = FailStreak()
    assert s.silent_s(10.0, started=4.0) == 6.0
    s.ok(12.0)
    s.fail(13.0)
    assert s.silent_s(20.0, started=4.0) == 8.0


# (mutation testing, mut31b)


def test_a_run_of_one_failure_ends_said_and_the_count_starts_over() -> None:
    s = FailStreak()
    assert s.fail(10.0) == "first"
    assert s.ok(15.0) == (1, 5.0)
    assert (s.failures, s.since) == (0, None)
    assert s.ok(16.0) is None


def test_no_time_failing_or_silent_at_the_instant_itself() -> None:
    s = FailStreak()
    assert s.silent_s(7.0, 7.0) == 0.0  # started just now
    s.fail(10.0)
    assert s.failing_s(10.0) == 0.0 and s.failing_s(9.5) == 0.0  # a clock that went back
    s.ok(12.0)
    assert s.silent_s(12.0, 0.0) == 0.0 and s.silent_s(12.5, 0.0) == 0.5
