import pytest

from LLM_Mesh.core import priority
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
    assert set(SCENARIOS) == {"slow-node", "mixed-speeds", "mass-kill", "keyed-rush"}


@pytest.mark.parametrize("strategy", ["ours", "random", "least-loaded", "round-robin"])
def test_saturated_nodes_keyed_requests_wait_less(strategy: str) -> None:
    """keyed-rush: nodes saturated, half the requests keyed: keyed ones wait less at p95,
    are never refused (the anonymous share keeps slots for them), and every class is
    counted (virtual-clock figures)."""
    r = run_scenario("keyed-rush", strategy, seed=1)
    keyed, anon = r.classes["keyed"], r.classes["anonymous"]
    assert keyed.requests + anon.requests == r.requests
    assert keyed.completed + anon.completed == r.succeeded
    assert anon.refused > 0.2 * anon.requests  # saturated: there is a queue to jump
    assert keyed.wait_p95_ms < anon.wait_p95_ms
    assert keyed.p95_ms < anon.p95_ms and keyed.p50_ms < anon.p50_ms
    assert keyed.refused == 0 and keyed.completed == keyed.requests
    assert 0 < r.failures["anonymous_share"] <= anon.refused


def test_the_anonymous_share_is_the_gateways_core_rule() -> None:
    """Share 1 keeps no slots (registry/admit.py): no share refusal; 0.25 refuses more."""
    off = run_scenario("keyed-rush", "ours", seed=1, anonymous_share=1.0)
    tight = run_scenario("keyed-rush", "ours", seed=1, anonymous_share=0.25)
    default = run_scenario("keyed-rush", "ours", seed=1)
    assert "anonymous_share" not in off.failures
    assert tight.failures["anonymous_share"] > default.failures["anonymous_share"] > 0
    assert tight.classes["keyed"].wait_p95_ms < off.classes["keyed"].wait_p95_ms


def _anonymous_under_keyed_load() -> tuple[float, float, float]:
    """Keyed requests alone (80 % of the traffic) more than the nodes serve, no share kept:
    (anonymous share of the completions, anonymous wait p95 ms, keyed wait p95 ms)."""
    r = run_scenario("keyed-rush", "ours", seed=1, keyed_share=0.8, anonymous_share=1.0)
    keyed, anon = r.classes["keyed"], r.classes["anonymous"]
    assert keyed.requests > 0.8 * 60.0 * 55  # ~48/s offered: more than ~41/s served
    return anon.completed / (keyed.completed + anon.completed), anon.wait_p95_ms, keyed.wait_p95_ms


def test_keyed_load_saturating_anonymous_requests_still_complete() -> None:
    share, anon_wait, keyed_wait = _anonymous_under_keyed_load()
    assert share >= 0.18  # ~1 slot in 5 (MAX_PASSED_OVER + 1)
    assert anon_wait < 1.5 * keyed_wait


def test_the_scenario_runs_core_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nodes' line calls ``core.priority.next_waiter``: without its bound (strict
    priority) anonymous requests wait far longer."""
    _, bounded, _ = _anonymous_under_keyed_load()
    strict = priority.next_waiter

    def unbounded(waiters: list[priority.Waiter], now: float) -> int:
        return strict(waiters, now, max_passed=10**9, max_wait_s=float("inf"))

    monkeypatch.setattr(priority, "next_waiter", unbounded)
    _, starved, _ = _anonymous_under_keyed_load()
    assert starved > 2 * bounded


def test_without_classes_no_class_figures_and_one_class_given_one() -> None:
    assert run_scenario("slow-node", "ours", seed=2, duration_s=2.0).classes == {}
    r = run_scenario("slow-node", "ours", seed=2, duration_s=2.0, keyed_share=1.0)
    assert r.classes["anonymous"].requests == 0 and r.classes["keyed"].requests == r.requests
    with pytest.raises(ValueError):
        run_scenario("slow-node", "ours", keyed_share=1.5)
    with pytest.raises(ValueError):
        run_scenario("keyed-rush", "ours", anonymous_share=-0.1)
