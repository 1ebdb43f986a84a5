import math
import random
from array import array

import pytest

from LLM_Mesh.core.scoring import (
    NodeStats,
    RouteRequest,
    ScoringPolicy,
    cheapest,
    cheapest_rows,
    node_cost,
    node_row,
    permits,
    service_ms,
)

P = ScoringPolicy()


def stats(nid: str = "a", **kw: object) -> NodeStats:
    return NodeStats(nid, ("m",), P, **kw)  # type: ignore[arg-type]


def test_constraints_filter() -> None:
    eu = stats("a", region="eu")
    req = RouteRequest(("m",), avoid_regions=frozenset({"eu"}))
    assert not permits(req, eu)
    assert permits(req, stats("b", region="us"))
    assert not permits(RouteRequest(("m",), deny_nodes=frozenset({"a"})), eu)
    assert not permits(RouteRequest(("m",), exclude=frozenset({"a"})), eu)
    assert permits(RouteRequest(("m",), allow_nodes=frozenset({"a"})), eu)
    assert not permits(RouteRequest(("m",), allow_nodes=frozenset({"x"})), eu)


def test_cost_rises_with_load_failures_cold_and_slow_start() -> None:
    base = node_cost(stats(), "m", 100, 0.0, P, 1.0)
    busy = stats(max_concurrency=2)
    busy.in_flight = 2
    assert node_cost(busy, "m", 100, 0.0, P, 1.0) == 2 * base
    sick = stats()
    sick.success.observe(0.5, 0.0)
    assert node_cost(sick, "m", 100, 0.0, P, 1.0) > 5 * base
    cold = stats(loaded=())
    assert node_cost(cold, "m", 100, 0.0, P, 1.0) > base + 10_000
    assert node_cost(stats(), "m", 100, 0.0, P, 0.1) == 10 * base


def test_heartbeat_load_counts_and_saturation() -> None:
    s = stats(max_concurrency=1, max_queue=1)
    s.hb_load = 2
    assert s.load == 2 and s.saturated
    s.hb_load = 0
    s.in_flight = 1
    assert not s.saturated


def test_stalled_requests_raise_cost_before_any_answer() -> None:
    s = stats()
    s.waiting, s.waiting_since_sum = 1, 0.0
    fresh = node_cost(s, "m", 10, 0.1, P, 1.0)
    stalled = node_cost(s, "m", 10, 5.0, P, 1.0)
    assert stalled > 2 * fresh


def test_per_model_cold_start_overrides_the_node_default() -> None:
    s = NodeStats("a", ("m", "m2", "m3"), P, loaded=("m",), model_cold_start_ms={"m2": 1500.0})
    warm = node_cost(s, "m", 100, 0.0, P, 1.0)
    assert node_cost(s, "m2", 100, 0.0, P, 1.0) == warm + 1500.0
    assert node_cost(s, "m3", 100, 0.0, P, 1.0) == warm + s.cold_start_ms  # fallback
    assert s.cold_start_for("m2") == 1500.0 and s.cold_start_for("m3") == 30_000.0
    s.set_cold_starts({"m3": 800.0, "m2": float("nan"), "other": 1.0, "m": -5.0})
    assert s.model_cold_start_ms == {"m2": 1500.0, "m3": 800.0}
    assert node_cost(s, "m", 100, 0.0, P, 1.0) == warm  # loaded: no cold start


def test_cost_formula_exactly() -> None:
    # no samples yet: the priors, 200 ms + 100 tokens × 20 ms
    assert node_cost(stats(), "m", 100, 0.0, P, 1.0) == 2200.0
    sick = stats()
    sick.success.observe(0.5, 0.0)
    assert node_cost(sick, "m", 100, 0.0, P, 1.0) == 2200.0 * (1 + 10 * 0.5)
    flaky = stats(uptime=0.75)
    assert node_cost(flaky, "m", 100, 0.0, P, 1.0) == 2200.0 * (1 + 2 * 0.25)
    broken = stats(uptime=-0.5)  # a nonsense uptime counts as 0, not below
    assert node_cost(broken, "m", 100, 0.0, P, 1.0) == 2200.0 * 3
    proud = stats(uptime=1.5)  # nor does one above 1 earn a discount
    assert node_cost(proud, "m", 100, 0.0, P, 1.0) == 2200.0


def test_a_zero_weight_node_costs_infinity() -> None:
    assert node_cost(stats(), "m", 100, 0.0, P, 0.0) == math.inf
    assert node_cost(stats(), "m", 100, 0.0, P, -1.0) == math.inf


def test_observed_latencies_replace_the_priors() -> None:
    s = stats()
    s.per_token.observe(5.0, 0.0)
    assert node_cost(s, "m", 100, 0.0, P, 1.0) == 200.0 + 100 * 5.0
    s.ttft.observe(50.0, 0.0)
    assert node_cost(s, "m", 100, 0.0, P, 1.0) == 50.0 + 100 * 5.0


def test_latency_estimates_blend_with_latency_tau_and_decay_with_idle_tau() -> None:
    pol = ScoringPolicy(latency_tau_s=10.0, idle_tau_s=60.0, stale_penalty=1.0)
    s = NodeStats("a", ("m",), pol)
    for est in (s.ttft, s.per_token):
        est.observe(1000.0, 0.0)
        est.observe(100.0, 10.0)  # lower: blended in with tau 10 s
    blended = 1000.0 * math.exp(-1.0) + 100.0 * (1.0 - math.exp(-1.0))
    assert node_cost(s, "m", 1, 10.0, pol, 1.0) == pytest.approx(2 * blended)
    # 60 s without samples: decayed by e^-1 (idle tau), not e^-6 (latency tau)
    cost = node_cost(s, "m", 1, 70.0, pol, 1.0)
    assert cost == pytest.approx(2 * blended * math.exp(-1.0))


def test_a_stale_heartbeat_multiplies_the_cost() -> None:
    s = stats(now=100.0)
    fresh = node_cost(s, "m", 100, 100.0, P, 1.0)
    assert node_cost(s, "m", 100, 115.0, P, 1.0) == fresh  # exactly stale_after_s: not yet
    assert node_cost(s, "m", 100, 115.5, P, 1.0) == 4 * fresh


def test_stalled_time_is_measured_from_the_average_start() -> None:
    s = stats(max_concurrency=4)
    s.in_flight, s.waiting, s.waiting_since_sum = 2, 2, 1.0 + 3.0  # started at 1 s and 3 s
    # waiting on average since 2 s: at 10 s that is 8000 ms, more than the 2200 ms service
    assert node_cost(s, "m", 100, 10.0, P, 1.0) == 8000.0 * (1 + 2 / 4)
    assert node_cost(s, "m", 100, 3.0, P, 1.0) == 2200.0 * (1 + 2 / 4)  # 1 s: not stalled


def test_defaults_of_a_new_node() -> None:
    s = NodeStats("a", ("m", "m2"), P)
    assert s.capacity == 1 + 8 and s.max_concurrency == 1
    assert s.loaded == {"m", "m2"} and s.routable and s.uptime == 1.0
    assert s.success.value == 1.0  # innocent until proven otherwise
    assert s.hb_at == 0.0 and s.waiting_since_sum == 0.0 and s.load == 0
    assert node_cost(s, "m", 100, 15.0, P, 1.0) == 2200.0
    assert node_cost(s, "m", 100, 15.5, P, 1.0) == 4 * 2200.0


@pytest.mark.parametrize("kw", [{"max_concurrency": 0}, {"max_queue": -1}])
def test_node_stats_validate(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="max_concurrency >= 1 and max_queue >= 0"):
        stats(**kw)


def test_a_node_without_queue_is_valid() -> None:
    s = stats(max_concurrency=1, max_queue=0)
    assert s.capacity == 1
    s.in_flight = 1
    assert s.saturated


def test_instant_cold_start_is_kept() -> None:
    s = NodeStats("a", ("m",), P, loaded=(), model_cold_start_ms={"m": 0.0})
    assert s.cold_start_for("m") == 0.0
    assert node_cost(s, "m", 100, 0.0, P, 1.0) == 2200.0


@pytest.mark.parametrize(
    "kw",
    [
        {"prior_ttft_ms": -1.0},
        {"prior_per_token_ms": -1.0},
        {"failure_penalty": -0.1},
        {"downtime_penalty": -0.1},
        {"stale_penalty": 0.9},
    ],
)
def test_scoring_policy_validates(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"negative|penalties"):
        ScoringPolicy(**kw)


def test_scoring_policy_edges_are_valid() -> None:
    pol = ScoringPolicy(
        prior_ttft_ms=0.0,
        prior_per_token_ms=0.0,
        failure_penalty=0.0,
        downtime_penalty=0.0,
        stale_penalty=1.0,
    )
    s = NodeStats("a", ("m",), pol, uptime=0.0)
    s.success.observe(0.0, 0.0)
    assert node_cost(s, "m", 100, 100.0, pol, 1.0) == 0.0  # no prior, no penalty


def test_route_request_validates() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        RouteRequest(())
    with pytest.raises(ValueError, match="expected_tokens cannot be negative"):
        RouteRequest(("m",), expected_tokens=-1)
    assert RouteRequest(("m",), expected_tokens=0).expected_tokens == 0
    assert not RouteRequest(("m",)).constrained
    assert RouteRequest(("m",), allow_nodes=frozenset()).constrained


def test_strict_regions_avoid_nodes_of_unknown_region() -> None:
    from LLM_Mesh.core.scoring import UNKNOWN_REGION

    eu, nowhere, blank = stats("eu", region="eu"), stats("x"), stats("b", region="")
    plain = RouteRequest(("m",), avoid_regions=frozenset({"us"}))
    strict = RouteRequest(("m",), avoid_regions=frozenset({"us", UNKNOWN_REGION}))
    assert permits(plain, eu) and permits(plain, nowhere) and permits(plain, blank)
    assert permits(strict, eu) and not permits(strict, nowhere) and not permits(strict, blank)


def _random_node(rng: random.Random, nid: str) -> NodeStats:
    s = NodeStats(nid, ("m", "m2"), P, loaded=rng.choice([("m",), ("m", "m2"), ()]),
                  max_concurrency=rng.choice([1, 2, 4]), uptime=rng.choice([1.0, 0.8, -0.1]),
                  now=rng.uniform(0, 20), model_cold_start_ms=rng.choice([{}, {"m2": 900.0}]))  # fmt: skip
    if rng.random() < 0.7:
        s.ttft.observe(rng.uniform(10, 500), rng.uniform(0, 10))
    if rng.random() < 0.7:
        s.per_token.observe(rng.uniform(1, 50), rng.uniform(0, 10))
    if rng.random() < 0.5:
        s.success.observe(rng.random(), rng.uniform(0, 10))
    s.in_flight, s.hb_load = rng.randint(0, 3), rng.randint(0, 3)
    if rng.random() < 0.3:
        s.waiting, s.waiting_since_sum = 1, rng.uniform(0, 30)
    return s


def test_node_cost_is_the_documented_formula_over_service_ms() -> None:
    """``cheapest`` writes service_ms out for speed; this pins it to ``service_ms`` and to
    the module docstring's formula, bit for bit, over random node states."""
    rng = random.Random(4)
    for i in range(2000):
        s = _random_node(rng, f"n{i}")
        now, model, tokens = rng.uniform(5, 40), rng.choice(["m", "m2"]), rng.choice([0, 64])
        weight = rng.choice([1.0, 0.5, 0.0])
        service = service_ms(s, model, tokens, now, P)
        if s.waiting:
            service = max(service, (now - s.waiting_since_sum / s.waiting) * 1000.0)
        cost = service * (1.0 + s.load / s.max_concurrency)
        ok = s.success.value
        if ok is not None and ok < 1.0:
            cost *= 1.0 + P.failure_penalty * (1.0 - ok)
        if s.uptime < 1.0:
            cost *= 1.0 + P.downtime_penalty * (1.0 - max(0.0, s.uptime))
        if now - s.hb_at > P.stale_after_s:
            cost *= P.stale_penalty
        expected = math.inf if weight == 0.0 else cost / weight
        assert node_cost(s, model, tokens, now, P, weight) == expected


def test_cheapest_is_the_first_lowest_factor_times_cost() -> None:
    rng = random.Random(9)
    assert cheapest([], "m", 64, 0.0, P) == (None, math.inf)
    for _ in range(500):
        nodes = [_random_node(rng, f"n{i}") for i in range(rng.randint(1, 5))]
        if rng.random() < 0.3:
            nodes.append(nodes[0])  # a tie: the first one wins
        now, factor = rng.uniform(5, 40), rng.choice([1.0, 1.5])
        weights = {n.node_id: rng.choice([1.0, 0.3, 0.0]) for n in nodes}
        costs = [factor * node_cost(n, "m", 64, now, P, weights[n.node_id]) for n in nodes]
        i = costs.index(min(costs))
        weigh = lambda nid, _now, w=weights: w[nid]  # noqa: E731
        got = cheapest(nodes, "m", 64, now, P, weigh, factor)
        assert got[0] is nodes[i] and got[1] == costs[i]
        if all(w == 1.0 for w in weights.values()):  # no weight function: all 1
            assert cheapest(nodes, "m", 64, now, P, None, factor) == got


def test_a_nodes_region_is_compared_without_case_or_blanks_at_either_end() -> None:
    from LLM_Mesh.core.scoring import UNKNOWN_REGION, region_key

    avoid_eu = RouteRequest(("m",), avoid_regions=frozenset({region_key(" EU-West")}))
    for written in ("eu-west", "EU-West", " eu-west\t", "EU-WEST "):
        assert not permits(avoid_eu, stats("a", region=written)), written
    assert not permits(avoid_eu, stats("b", region="eu-west-2"))  # within eu-west
    assert permits(avoid_eu, stats("b", region="eu-western"))  # another label
    strict = RouteRequest(("m",), avoid_regions=frozenset({UNKNOWN_REGION}))
    assert not permits(strict, stats("c", region="   "))  # blanks only: no region
    assert region_key(None) == region_key("") == region_key(" ") == UNKNOWN_REGION


def test_cheapest_rows_of_no_slot_is_none_at_infinity() -> None:
    assert cheapest_rows(array("d"), (), (), 100, 0.0, P) == (-1, math.inf)


def test_a_row_says_loaded_with_no_cold_start_or_not_loaded_with_its_cold_start() -> None:
    loaded = node_row(stats(loaded=("m",), cold_start_ms=500.0), "m")
    assert loaded[6:8] == [1.0, 0.0]
    cold = node_row(stats(loaded=(), cold_start_ms=500.0), "m")
    assert cold[6:8] == [0.0, 500.0]


@pytest.mark.parametrize("sample", [0.0, 0.5])
def test_a_peak_under_one_millisecond_is_a_sample_not_the_prior(sample: float) -> None:
    """A peak of 0 or 0.5 ms is what was observed; only "no sample yet" reads the prior."""
    fast = stats(loaded=("m",))
    fast.ttft.observe(sample, 0.0)
    fast.per_token.observe(sample, 0.0)
    # at the sample's own time: no decay, service = ttft + 10 x per-token
    assert node_cost(fast, "m", 10, 0.0, P, 1.0) == pytest.approx(11 * sample)


def test_avoiding_a_region_avoids_the_regions_within_it() -> None:
    """Found 2026-12-05 (a new user): the README's key example avoids ``eu,us`` and its node
    example is ``region = "eu-west"``, yet avoiding ``eu`` routed to an ``eu-west`` node.
    A label names its parts before each ``-``: avoiding ``eu`` avoids ``eu``, ``eu-west``
    and ``eu-west-1``; never a label that only starts with the same letters."""
    from LLM_Mesh.core.scoring import UNKNOWN_REGION, region_scopes

    avoid_eu = RouteRequest(("m",), avoid_regions=frozenset({"eu"}))
    for inside in ("eu", "EU-West", "eu-west-1", " eu-central "):
        assert not permits(avoid_eu, stats("a", region=inside)), inside
    for outside in ("europe-west1", "eus", "us-east", "west-eu", None, "-eu"):
        assert permits(avoid_eu, stats("b", region=outside)), outside
    deep = RouteRequest(("m",), avoid_regions=frozenset({"us-east"}))
    assert not permits(deep, stats("c", region="us-east-1"))
    assert permits(deep, stats("d", region="us")) and permits(deep, stats("e", region="us-west"))
    assert region_scopes("eu-west-1") == frozenset({"eu", "eu-west", "eu-west-1"})
    assert region_scopes(None) == region_scopes("  ") == frozenset({UNKNOWN_REGION})
    assert region_scopes("-eu--west-") == frozenset({"-eu", "-eu--west", "-eu--west-"})
