from LLM_Mesh.core.worker_restart import RestartPolicy


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
