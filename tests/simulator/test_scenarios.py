import pytest

from LLM_Mesh.simulator import SCENARIOS, run_scenario


def test_slow_node_ours_beats_round_robin_in_a_short_run() -> None:
    ours = run_scenario("slow-node", "ours", seed=3, duration_s=25.0)
    rr = run_scenario("slow-node", "round-robin", seed=3, duration_s=25.0)
    assert ours.requests == rr.requests > 5000
    assert rr.success_rate < 0.98
    assert ours.success_rate >= 0.998
    assert ours.success_rate > rr.success_rate


def test_mixed_speeds_ours_halves_random_p99() -> None:
    ours = run_scenario("mixed-speeds", "ours", seed=1)
    rnd = run_scenario("mixed-speeds", "random", seed=1)
    assert ours.p99_ms <= 0.5 * rnd.p99_ms


def test_runs_are_deterministic_per_seed() -> None:
    a = run_scenario("slow-node", "ours", seed=5, duration_s=5.0)
    b = run_scenario("slow-node", "ours", seed=5, duration_s=5.0)
    assert (a.succeeded, a.p99_ms, a.attempts) == (b.succeeded, b.p99_ms, b.attempts)


def test_unknown_names_raise() -> None:
    with pytest.raises(ValueError):
        run_scenario("nope", "ours")
    with pytest.raises(ValueError):
        run_scenario("slow-node", "nope")


def test_scenario_names() -> None:
    assert set(SCENARIOS) == {"slow-node", "mixed-speeds", "mass-kill"}
