from LLM_Mesh.core.scoring import NodeStats, RouteRequest, ScoringPolicy, node_cost, permits

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


def test_strict_regions_avoid_nodes_of_unknown_region() -> None:
    from LLM_Mesh.core.scoring import UNKNOWN_REGION

    eu, nowhere, blank = stats("eu", region="eu"), stats("x"), stats("b", region="")
    plain = RouteRequest(("m",), avoid_regions=frozenset({"us"}))
    strict = RouteRequest(("m",), avoid_regions=frozenset({"us", UNKNOWN_REGION}))
    assert permits(plain, eu) and permits(plain, nowhere) and permits(plain, blank)
    assert permits(strict, eu) and not permits(strict, nowhere) and not permits(strict, blank)
