from LLM_Mesh.core.worker_restart import DEFAULT_WORKER_TIMEOUT_S, HangPolicy, RestartPolicy


def test_a_worker_dying_at_start_waits_longer_each_time_up_to_the_cap() -> None:
    p = RestartPolicy()
    assert [p.died(0.5) for _ in range(8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_run_that_lived_steady_s_starts_the_count_again() -> None:
    p = RestartPolicy(steady_s=60.0)
    for _ in range(5):
        p.died(1.0)
    assert p.died(60.0) == 1.0  # news, not a crash loop
    assert p.died(59.9) == 2.0
    assert p.died(3600.0) == 1.0


def test_the_bounds_are_settings() -> None:
    p = RestartPolicy(first_s=0.25, max_s=1.0)
    assert [p.died(0.0) for _ in range(4)] == [0.25, 0.5, 1.0, 1.0]


def test_a_crash_loop_of_days_stays_at_the_cap() -> None:
    p = RestartPolicy(crashes=5_000)  # 2.0 ** 5000 would overflow a float
    assert p.died(0.0) == 30.0


def test_a_worker_silent_longer_than_the_timeout_after_a_beat_is_overdue() -> None:
    h = HangPolicy(timeout_s=30.0, start_s=120.0)
    assert h.silent_too_long(now=1030.0, started_at=0.0, beat_at=1000.0) is None  # just in time
    assert h.silent_too_long(now=1030.5, started_at=0.0, beat_at=1000.0) == 30.5
    assert h.silent_too_long(now=1001.0, started_at=0.0, beat_at=1000.0) is None


def test_a_worker_not_yet_beating_has_its_start_allowance() -> None:
    h = HangPolicy(timeout_s=30.0, start_s=120.0)
    assert h.silent_too_long(now=100.0, started_at=0.0, beat_at=None) is None  # starting
    assert h.silent_too_long(now=120.5, started_at=0.0, beat_at=None) == 120.5
    # the allowance is never shorter than the timeout itself
    assert HangPolicy(timeout_s=30.0, start_s=5.0).silent_too_long(29.0, 0.0, None) is None
    assert HangPolicy(timeout_s=30.0, start_s=5.0).silent_too_long(31.0, 0.0, None) == 31.0
    # counted from the worker's own start, on a clock that does not start at 0
    assert h.silent_too_long(now=5100.0, started_at=5000.0, beat_at=None) is None
    assert h.silent_too_long(now=5121.0, started_at=5000.0, beat_at=None) == 121.0


def test_a_timeout_under_a_second_still_kills() -> None:
    h = HangPolicy(timeout_s=0.5, start_s=0.5)
    assert h.silent_too_long(now=11.0, started_at=0.0, beat_at=10.0) == 1.0
    assert h.silent_too_long(now=10.25, started_at=0.0, beat_at=10.0) is None


def test_a_timeout_of_0_never_kills() -> None:
    h = HangPolicy(timeout_s=0.0, start_s=1.0)
    assert h.silent_too_long(now=1e9, started_at=0.0, beat_at=None) is None
    assert h.silent_too_long(now=1e9, started_at=0.0, beat_at=1.0) is None


def test_the_default_timeout_is_gunicorns() -> None:
    assert HangPolicy().timeout_s == DEFAULT_WORKER_TIMEOUT_S == 30.0
