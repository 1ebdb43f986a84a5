import math
import random

import pytest

from LLM_Mesh.core.balancer import Outcome, Router, RoutingPolicy, Verdict
from LLM_Mesh.core.outlier import EjectionPolicy
from LLM_Mesh.core.scoring import RouteRequest

REQ = RouteRequest(("m",))


def fleet(n: int, **kw: object) -> Router:
    r = Router(rng=random.Random(1), **kw)  # type: ignore[arg-type]
    for i in range(n):
        r.upsert_node(f"n{i}", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    return r


def test_no_node_vs_saturated_with_wait() -> None:
    r = Router(rng=random.Random(1))
    assert r.pick(REQ, 0.0).verdict is Verdict.NO_NODE
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    d = r.pick(REQ, 0.0)
    assert d.verdict is Verdict.OK and d.node_id == "a"
    r.begin("a", "m", 0.0)
    d = r.pick(REQ, 0.0)
    assert d.verdict is Verdict.SATURATED and d.wait_s is not None and d.wait_s > 0
    assert r.pick(RouteRequest(("other",)), 0.0).verdict is Verdict.NO_NODE


def test_hard_failure_ejects_at_once_but_never_over_half() -> None:
    r = fleet(4)
    ejected = [r.finish(r.begin(f"n{i}", "m", 0.0), 0.1, Outcome.CONNECT_ERROR) for i in range(4)]
    assert ejected == [True, True, False, False]
    assert r.pool_counts("m") == (2, 0, 2)
    assert {r.pick(REQ, 0.2).node_id for _ in range(50)} == {"n2", "n3"}


def test_ejected_node_returns_after_its_time_with_slow_start() -> None:
    pol = RoutingPolicy(ejection=EjectionPolicy(base_s=5.0, slow_start_s=10.0))
    r = fleet(3, policy=pol)
    r.finish(r.begin("n0", "m", 0.0), 0.0, Outcome.SERVER_ERROR)
    assert r.pool_counts("m") == (2, 0, 1)
    r.tick(5.0)
    assert r.pool_counts("m") == (3, 0, 0)
    assert r.outliers.weight("n0", 6.0) < 0.2
    assert r.outliers.weight("n0", 15.0) == 1.0


def test_index_consistent_on_add_remove_and_routable() -> None:
    r = fleet(5)
    r.remove_node("n1")
    r.set_routable("n2", False)
    assert r.pool_counts("m") == (3, 0, 0)
    seen = {r.pick(REQ, 0.0).node_id for _ in range(200)}
    assert seen == {"n0", "n3", "n4"}
    r.set_routable("n2", True)
    r.upsert_node("n0", ("other",), now=0.0)  # re-registration moves it
    assert r.pool_counts("m") == (3, 0, 0) and r.pool_counts("other") == (1, 0, 0)
    att = r.begin("n3", "m", 0.0)
    assert r.pool_counts("m") == (2, 1, 0)  # concurrency 1, no queue: full
    r.finish(att, 0.1, Outcome.SUCCESS, completion_tokens=5)
    assert r.pool_counts("m") == (3, 0, 0)


def test_prefers_fast_node_and_reacts_to_one_slow_answer() -> None:
    r = Router(rng=random.Random(3))
    for nid in ("fast", "slow"):
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=8)
    for nid, lat in (("fast", 0.05), ("slow", 0.05)):
        att = r.begin(nid, "m", 0.0)
        r.first_token(att, lat)
        r.finish(att, lat, Outcome.SUCCESS, completion_tokens=1)
    att = r.begin("slow", "m", 1.0)
    r.first_token(att, 3.0)  # one slow sample
    r.finish(att, 3.0, Outcome.SUCCESS, completion_tokens=1)
    assert all(r.pick(REQ, 3.0).node_id == "fast" for _ in range(20))


def test_constraints_and_allow_list() -> None:
    r = Router(rng=random.Random(2))
    for i in range(100):
        r.upsert_node(f"n{i}", ("m",), now=0.0, region="eu" if i else "us")
    assert r.pick(RouteRequest(("m",), avoid_regions=frozenset({"eu"})), 0.0).node_id == "n0"
    allow = RouteRequest(("m",), allow_nodes=frozenset({"n5", "n6", "x"}))
    assert {r.pick(allow, 0.0).node_id for _ in range(50)} == {"n5", "n6"}
    none = RouteRequest(("m",), allow_nodes=frozenset({"x"}))
    assert r.pick(none, 0.0).verdict is Verdict.NO_NODE


def test_warm_node_and_preferred_model_win() -> None:
    r = Router(rng=random.Random(2))
    r.upsert_node("cold", ("m",), now=0.0, loaded=())
    r.upsert_node("warm", ("m",), now=0.0)
    assert all(r.pick(REQ, 0.0).node_id == "warm" for _ in range(10))
    r.upsert_node("alt", ("m2",), now=0.0)
    d = r.pick(RouteRequest(("m", "m2")), 0.0)
    assert d.node_id == "warm" and d.model == "m"


def test_cold_node_serves_when_no_warm_one_has_room() -> None:
    r = Router(rng=random.Random(3))
    r.upsert_node("warm", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    r.upsert_node("cold", ("m",), now=0.0, loaded=(), max_concurrency=1, max_queue=0)
    assert all(r.pick(REQ, 0.0).node_id == "warm" for _ in range(10))
    att = r.begin("warm", "m", 0.0)  # warm is full now
    d = r.pick(REQ, 0.0)
    assert d.verdict is Verdict.OK and d.node_id == "cold"
    assert d.cost_ms >= 30_000.0  # the load time is counted
    r.finish(att, 0.1, Outcome.SUCCESS)
    assert r.pick(REQ, 0.2).node_id == "warm"


def test_model_cold_start_from_registration_and_heartbeat() -> None:
    r = Router(rng=random.Random(4))
    r.upsert_node("slow", ("m",), now=0.0, loaded=(), model_cold_start_ms={"m": 60_000.0})
    r.upsert_node("fast", ("m",), now=0.0, loaded=(), model_cold_start_ms={"m": 500.0})
    assert all(r.pick(REQ, 0.0).node_id == "fast" for _ in range(10))
    r.heartbeat("slow", 1.0, in_flight=0, queued=0, model_cold_start_ms={"m": 100.0})
    assert all(r.pick(REQ, 1.0).node_id == "slow" for _ in range(10))
    r.heartbeat("slow", 2.0, in_flight=0, queued=0, loaded_models=["m"])
    st = r.node("slow")
    assert st is not None and st.loaded == {"m"}


def test_success_marks_the_model_loaded() -> None:
    r = Router(rng=random.Random(5))
    r.upsert_node("a", ("m", "m2"), now=0.0, loaded=())
    r.finish(r.begin("a", "m", 0.0), 0.5, Outcome.SERVER_ERROR)
    st = r.node("a")
    assert st is not None and st.loaded == frozenset()
    r.finish(r.begin("a", "m", 1.0), 2.0, Outcome.SUCCESS, completion_tokens=3)
    assert st.loaded == {"m"}
    r.finish(r.begin("a", "zz", 3.0), 3.5, Outcome.SUCCESS)  # not hosted: ignored
    assert st.loaded == {"m"}


def test_attempt_from_before_a_removal_does_not_corrupt_the_new_counts() -> None:
    """A node leaves (DELETE) with attempts in flight and registers again: the old attempts
    finishing must not drive the new node's in-flight count negative (a leak forever)."""
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    old = [r.begin("a", "m", 0.0) for _ in range(3)]
    r.first_token(old[0], 0.1)
    r.remove_node("a")
    r.upsert_node("a", ("m",), now=1.0, max_concurrency=1, max_queue=0)
    for att in old:
        r.first_token(att, 1.1)
        r.finish(att, 1.2, Outcome.SERVER_ERROR)
    st = r.node("a")
    assert st is not None and st.in_flight == 0 and st.waiting == 0
    busy = r.begin("a", "m", 2.0)  # one request of ours: the node is full again
    assert r.pick(REQ, 2.0).verdict is Verdict.SATURATED
    r.finish(busy, 2.1, Outcome.SUCCESS)
    # an attempt begun while the node was unknown counts nowhere either
    r.remove_node("a")
    ghost = r.begin("a", "m", 3.0)
    r.upsert_node("a", ("m",), now=3.0, max_concurrency=1, max_queue=0)
    r.finish(ghost, 3.1, Outcome.SUCCESS)
    st = r.node("a")
    assert st is not None and st.in_flight == 0 and st.waiting == 0


def _saturated(r: Router, now: float) -> float:
    d = r.pick(REQ, now)
    assert d.verdict is Verdict.SATURATED and d.wait_s is not None
    return d.wait_s


def test_saturated_wait_is_the_queue_drain_time_from_the_nodes_service_time() -> None:
    """Defect 11 (gateway side): 1 running + 8 queued at 1 s each is ~9 s, as the node says."""
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=8)
    r.heartbeat("a", 0.0, in_flight=1, queued=8, service_s=1.0)
    assert _saturated(r, 0.0) == pytest.approx(9.0)
    r.upsert_node("a", ("m",), now=0.5, max_concurrency=3, max_queue=6)  # kept: 1 s per request
    assert _saturated(r, 0.5) == pytest.approx(3.0)


def test_saturated_wait_without_a_reported_service_time_uses_the_observed_one() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=1)
    att = r.begin("a", "m", 0.0)
    r.first_token(att, 0.2)  # ttft 200 ms
    r.finish(att, 1.0, Outcome.SUCCESS, completion_tokens=8)  # 100 ms a token
    r.heartbeat("a", 1.0, in_flight=1, queued=1)
    tokens = 8
    expected = 2 * (200 + tokens * 100) / 1000.0  # load 2 × 1 s
    wait = r.pick(RouteRequest(("m",), expected_tokens=tokens), 1.0).wait_s
    assert wait == pytest.approx(expected, rel=0.02)  # the TTFT estimate decays a little


def test_a_nodes_retry_after_is_a_floor_for_the_gateways_wait() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    r.heartbeat("a", 0.0, in_flight=0, queued=0, service_s=0.1)
    att = r.begin("a", "m", 0.0)
    r.finish(att, 0.0, Outcome.OVERLOADED, retry_after_s=7.0)  # the node: 7 s
    assert _saturated(r, 1.0) == pytest.approx(6.0)
    r.heartbeat("a", 1.0, in_flight=1, queued=0, service_s=0.1)
    assert _saturated(r, 2.0) == pytest.approx(5.0)


def test_routing_policy_validates() -> None:
    assert RoutingPolicy(choices=1, max_draws=1).choices == 1
    for kw in ({"choices": 0}, {"choices": 5, "max_draws": 4}):
        with pytest.raises(ValueError, match="choices"):
            RoutingPolicy(**kw)  # type: ignore[arg-type]


def test_router_without_a_seeded_rng_still_routes() -> None:
    r = Router()
    r.upsert_node("a", ("m",), now=0.0)
    assert r.pick(REQ, 0.0).node_id == "a"


def test_registration_defaults_and_values_reach_the_node() -> None:
    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0)
    assert (st.max_concurrency, st.max_queue, st.uptime, st.cold_start_ms) == (1, 8, 1.0, 30_000.0)
    st = r.upsert_node(
        "b", ("m",), now=100.0, max_concurrency=4, max_queue=2, uptime=0.5, cold_start_ms=5.0
    )
    assert (st.max_concurrency, st.max_queue, st.uptime, st.cold_start_ms) == (4, 2, 0.5, 5.0)
    assert st.hb_at == 100.0


def test_begin_first_token_finish_bookkeeping() -> None:
    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=4)
    a1 = r.begin("a", "m", 1.0)
    a2 = r.begin("a", "m", 3.0)
    assert (st.in_flight, st.waiting, st.waiting_since_sum) == (2, 2, 4.0)
    r.first_token(a1, 1.5)
    assert (st.in_flight, st.waiting, st.waiting_since_sum) == (2, 1, 3.0)
    assert st.ttft.get(1.5) == 500.0
    r.first_token(a1, 2.0)  # only the first first token counts
    assert (st.waiting, st.waiting_since_sum) == (1, 3.0)
    assert r.finish(a1, 2.5, Outcome.SUCCESS, completion_tokens=10) is False
    assert (st.in_flight, st.waiting) == (1, 1)
    assert st.latency.value == 1500.0
    assert st.per_token.get(2.5) == (1500.0 - 500.0) / 10
    assert r.finish(a1, 2.6, Outcome.SERVER_ERROR) is False  # finished once only
    assert st.in_flight == 1 and st.success.value == 1.0
    r.first_token(a1, 2.7)  # a finished attempt's late token is ignored
    assert st.waiting == 1
    r.finish(a2, 4.0, Outcome.CANCELLED)
    assert (st.in_flight, st.waiting, st.waiting_since_sum) == (0, 0, 0.0)


def test_a_non_streamed_success_takes_the_nodes_ttft_if_given() -> None:
    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=4)
    r.finish(r.begin("a", "m", 10.0), 12.0, Outcome.SUCCESS, ttft_ms=400.0, completion_tokens=4)
    assert st.ttft.get(12.0) == 400.0
    assert st.per_token.get(12.0) == (2000.0 - 400.0) / 4
    st2 = r.upsert_node("b", ("m",), now=0.0, max_concurrency=4)
    # a ttft longer than the whole answer is capped; no tokens: no per-token sample
    r.finish(r.begin("b", "m", 10.0), 11.0, Outcome.SUCCESS, ttft_ms=5000.0)
    assert st2.ttft.get(11.0) == 1000.0 and st2.per_token.get(11.0) is None
    st3 = r.upsert_node("c", ("m",), now=0.0, max_concurrency=4)
    r.finish(r.begin("c", "m", 10.0), 10.5, Outcome.SUCCESS, completion_tokens=1)
    assert st3.ttft.get(10.5) == 500.0 and st3.per_token.get(10.5) == 0.0


def test_failures_feed_success_rate_and_a_timeout_feeds_ttft() -> None:
    r = Router(rng=random.Random(1))
    nodes = {n: r.upsert_node(n, ("m",), now=0.0, max_concurrency=4) for n in "abcdefgh"}
    r.finish(r.begin("a", "m", 0.0), 2.0, Outcome.TIMEOUT)
    assert nodes["a"].success.value == 0.0
    assert nodes["a"].ttft.get(2.0) == 2000.0  # it never answered: at least this slow
    att = r.begin("b", "m", 0.0)
    r.first_token(att, 0.1)
    r.finish(att, 5.0, Outcome.TIMEOUT)  # it had answered: its ttft stands
    assert nodes["b"].ttft.get(5.0) == pytest.approx(100.0 * math.exp(-4.9 / 60.0))
    r.finish(r.begin("c", "m", 0.0), 3.0, Outcome.SERVER_ERROR)
    assert nodes["c"].ttft.get(3.0) is None and nodes["c"].success.value == 0.0
    r.finish(r.begin("d", "m", 0.0), 1.0, Outcome.OVERLOADED)
    assert nodes["d"].success.value == 1.0  # a full queue says nothing about health
    r.finish(r.begin("e", "m", 0.0), 1.0, Outcome.CANCELLED)
    assert nodes["e"].success.value == 1.0 and nodes["e"].hb_load == 0


def test_a_429_marks_the_node_full_until_its_next_heartbeat() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=2, max_queue=1)
    r.finish(r.begin("a", "m", 0.0), 0.1, Outcome.OVERLOADED)
    assert r.node("a").hb_load == 3  # type: ignore[union-attr]
    assert r.pool_counts("m") == (0, 1, 0)
    assert r.pick(REQ, 0.2).verdict is Verdict.SATURATED
    r.heartbeat("a", 1.0, in_flight=1, queued=0)
    assert r.pool_counts("m") == (1, 0, 0)


def test_heartbeat_load_is_running_plus_queued() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=2, max_queue=1)
    r.heartbeat("a", 1.0, in_flight=2, queued=1, uptime=0.5)
    st = r.node("a")
    assert st is not None and st.hb_load == 3 and st.uptime == 0.5 and st.hb_at == 1.0
    assert r.pool_counts("m") == (0, 1, 0)
    r.heartbeat("a", 2.0, in_flight=-5, queued=-5)  # nonsense counts as nothing
    assert st.hb_load == 0 and st.uptime == 0.5  # uptime kept when not sent
    r.heartbeat("ghost", 2.0, in_flight=1, queued=1)  # unknown: ignored
    r.set_routable("ghost", False)
    r.remove_node("ghost")
    assert r.node("ghost") is None


def test_pool_counts_of_an_unknown_model() -> None:
    assert Router().pool_counts("nope") == (0, 0, 0)


def test_a_removed_node_comes_back_with_a_clean_record() -> None:
    r = fleet(3)
    assert r.finish(r.begin("n0", "m", 0.0), 0.1, Outcome.CONNECT_ERROR)
    assert r.outliers.ejection_count("n0") == 1
    r.remove_node("n0")
    assert r.pool_counts("m") == (2, 0, 0)
    r.upsert_node("n0", ("m",), now=1.0, max_concurrency=1, max_queue=0)
    assert r.outliers.ejection_count("n0") == 0 and not r.outliers.is_ejected("n0")
    assert r.pool_counts("m") == (3, 0, 0)


def test_no_ejection_of_a_node_out_of_routing_or_already_ejected() -> None:
    r = fleet(4)
    r.set_routable("n0", False)
    assert r.finish(r.begin("n0", "m", 0.0), 0.1, Outcome.CONNECT_ERROR) is False
    assert not r.outliers.is_ejected("n0")
    first, second = r.begin("n1", "m", 0.0), r.begin("n1", "m", 0.0)
    assert r.finish(first, 0.1, Outcome.TIMEOUT) is True
    assert r.finish(second, 0.2, Outcome.TIMEOUT) is False  # already out: not again
    assert r.outliers.ejection_count("n1") == 1


def test_pick_cost_uses_expected_tokens_model_rank_and_slow_start() -> None:
    pol = RoutingPolicy(ejection=EjectionPolicy(base_s=5.0, slow_start_s=10.0, min_weight=0.1))
    r = Router(pol, rng=random.Random(1))
    r.upsert_node("a", ("m2",), now=0.0, max_concurrency=4)
    d = r.pick(RouteRequest(("m2",), expected_tokens=10), 0.0)
    assert d.cost_ms == 200.0 + 10 * 20.0  # the priors, for 10 tokens
    d = r.pick(RouteRequest(("unknown", "m2"), expected_tokens=10), 0.0)
    assert d.node_id == "a" and d.model == "m2"
    assert d.cost_ms == 1.5 * 400.0  # second choice: × (1 + 0.5 × rank 1)
    d = r.pick(RouteRequest(("m2",)), 0.0)
    assert d.cost_ms == 200.0 + 256 * 20.0  # default_tokens
    r.upsert_node("b", ("m2",), now=0.0, max_concurrency=4)  # so "a" may be ejected
    assert r.finish(r.begin("a", "m2", 0.0), 0.0, Outcome.CONNECT_ERROR)
    r.tick(5.0)
    # back at 5 s, slow start from weight 0.1: at 7.5 s the weight is 0.25
    # (its cost also carries its failure record; compare with the same node at full weight)
    only_a = RouteRequest(("m2",), allow_nodes=frozenset({"a"}), expected_tokens=10)
    ramp = r.pick(only_a, 7.5)
    r.heartbeat("a", 29.0, in_flight=0, queued=0)
    full = r.pick(only_a, 30.0)
    assert ramp.node_id == full.node_id == "a"
    assert ramp.cost_ms == pytest.approx(4.0 * full.cost_ms)


def test_wait_estimate_of_a_saturated_pool() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=2, max_queue=0)
    r.begin("a", "m", 0.0)
    r.begin("a", "m", 0.0)
    d = r.pick(RouteRequest(("m",), expected_tokens=10), 0.0)
    # the queue's drain time (core/queue_wait.py): 2 ahead x 400 ms over 2 slots
    assert d.verdict is Verdict.SATURATED and d.wait_s == pytest.approx(0.4)
    r.upsert_node("b", ("m",), now=0.0, max_concurrency=1, max_queue=0, loaded=())
    r.begin("b", "m", 0.0)
    d = r.pick(RouteRequest(("m",), expected_tokens=10), 0.0)
    assert d.wait_s == pytest.approx(0.4)  # b would need its 30 s cold start: a is sooner
    r.begin("a", "m", 0.0)  # a third request at the gateway's count: 3 ahead over 2 slots
    assert r.pick(RouteRequest(("m",), expected_tokens=10), 0.0).wait_s == pytest.approx(0.6)


def test_a_node_held_by_its_503_is_no_saturated_node() -> None:
    """A 503 (paused, draining) holds the node out until its Retry-After or next heartbeat:
    NO_NODE with that hold's end, not SATURATED (found 2026-12-05: the next request got 429
    ``overloaded``); with a saturated node beside it, SATURATED with that node's wait."""
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=2, max_queue=0)
    req = RouteRequest(("m",), expected_tokens=10)
    r.finish(r.begin("a", "m", 0.0), 0.0, Outcome.UNAVAILABLE, retry_after_s=7.0)
    d = r.pick(req, 1.0)
    assert d.verdict is Verdict.NO_NODE and d.wait_s == pytest.approx(6.0)
    r.upsert_node("b", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    r.begin("b", "m", 1.0)
    d = r.pick(req, 1.0)
    assert d.verdict is Verdict.SATURATED and d.wait_s is not None and d.wait_s < 6.0
    r.heartbeat("a", 2.0, in_flight=0, queued=0)  # back (paused no more): open again
    assert r.pick(req, 2.0).node_id == "a"
    r.finish(r.begin("a", "m", 2.0), 2.0, Outcome.UNAVAILABLE, retry_after_s=7.0)
    r.finish(r.begin("b", "m", 2.0), 2.0, Outcome.OVERLOADED, retry_after_s=3.0)
    assert r.pick(req, 2.0).verdict is Verdict.SATURATED  # b is full, not held


def _ranked_fleet(n: int, **kw: object) -> Router:
    """n nodes n0..n{n-1}; node i has i requests in flight, so n0 is the cheapest."""
    r = Router(rng=random.Random(7), **kw)  # type: ignore[arg-type]
    for i in range(n):
        r.upsert_node(f"n{i}", ("m",), now=0.0, max_concurrency=100, max_queue=0)
        for _ in range(i):
            r.begin(f"n{i}", "m", 0.0)
    return r


def _best_of_k_shape(r: Router, req: RouteRequest, n: int, k: int, picks: int = 2000) -> None:
    wins = [r.pick(req, 0.0).node_id for _ in range(picks)]
    ranks = [int(w[1:]) for w in wins if w is not None]
    assert len(ranks) == picks
    # the k-1 costliest can never be the cheapest of k distinct draws
    assert max(ranks) <= n - k
    # the cheapest wins whenever it is drawn: k of n draws
    share = ranks.count(0) / picks
    assert k / n - 0.05 < share < k / n + 0.05
    assert set(range(k)) <= set(ranks)


def test_best_of_four_distinct_draws_from_the_open_set() -> None:
    _best_of_k_shape(_ranked_fleet(10), REQ, n=10, k=4)


def test_best_of_one_is_a_uniform_draw() -> None:
    r = _ranked_fleet(5, policy=RoutingPolicy(choices=1))
    seen = [r.pick(REQ, 0.0).node_id for _ in range(500)]
    assert set(seen) == {f"n{i}" for i in range(5)}


def test_best_of_four_under_constraints() -> None:
    r = _ranked_fleet(11)
    deny_last = RouteRequest(("m",), deny_nodes=frozenset({"n10"}))
    _best_of_k_shape(r, deny_last, n=10, k=4)


def test_best_of_four_within_a_short_allow_list() -> None:
    r = _ranked_fleet(30)
    allow = RouteRequest(("m",), allow_nodes=frozenset(f"n{i}" for i in range(10)))
    _best_of_k_shape(r, allow, n=10, k=4)


def test_waiting_bookkeeping_when_an_attempt_ends_before_its_first_token() -> None:
    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=4)
    a, b, c = r.begin("a", "m", 1.0), r.begin("a", "m", 3.0), r.begin("a", "m", 4.0)
    r.finish(a, 5.0, Outcome.SERVER_ERROR)  # never answered
    assert (st.waiting, st.waiting_since_sum) == (2, 7.0)
    r.finish(b, 5.0, Outcome.CANCELLED)
    assert (st.waiting, st.waiting_since_sum) == (1, 4.0)
    r.finish(c, 6.0, Outcome.SUCCESS)
    assert (st.waiting, st.waiting_since_sum) == (0, 0.0)


def test_success_and_latency_are_time_weighted() -> None:
    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=4)
    r.finish(r.begin("a", "m", 0.0), 0.0, Outcome.CONNECT_ERROR)
    r.finish(r.begin("a", "m", 30.0), 30.0, Outcome.SUCCESS)  # success_tau_s = 30
    assert st.success.value == pytest.approx(1.0 - math.exp(-1.0))
    r.finish(r.begin("a", "m", 40.0), 40.5, Outcome.SUCCESS)  # latency_tau_s = 10
    assert st.latency.value == pytest.approx(500.0 * (1.0 - math.exp(-1.05)))


def test_an_ejected_node_is_not_ejected_twice() -> None:
    r = fleet(6)
    first, second = r.begin("n1", "m", 0.0), r.begin("n1", "m", 0.0)
    assert r.finish(first, 0.1, Outcome.TIMEOUT) is True
    assert r.finish(second, 0.2, Outcome.TIMEOUT) is False
    assert r.outliers.ejection_count("n1") == 1 and r.pool_counts("m") == (5, 0, 1)


def _expected_pools(r: Router, models: list[str]) -> dict[str, tuple[set[int], set[int], int]]:
    """What each model's index must hold: the *current* NodeStats objects (by identity) of
    routable nodes, open or full, and the count of those ejected from the model's pool (a
    node its pool cannot spare stays in it while ejected from the others: eject31)."""
    out: dict[str, tuple[set[int], set[int], int]] = {m: (set(), set(), 0) for m in models}
    for nid in {f"n{i}" for i in range(8)}:
        st = r.node(nid)
        if st is None or not st.routable:
            continue
        for m in st.models:
            open_, full, ejected = out[m]
            if r.ejected_for(nid, m):
                out[m] = (open_, full, ejected + 1)
            else:
                (full if st.saturated else open_).add(id(st))
    return out


def test_the_pools_hold_the_current_node_objects_through_any_sequence_of_changes() -> None:
    """The per-model candidate sets the pick draws from hold NodeStats objects, not ids: they
    must stay in step with registrations (a re-registration makes a new object),
    heartbeats, begins and ends, 429s, ejections and their end, routability and removal."""
    rng = random.Random(11)
    models = ["a", "b", "c"]
    pol = RoutingPolicy(ejection=EjectionPolicy(base_s=1.0, slow_start_s=2.0))
    r = Router(pol, random.Random(3))
    atts = []
    now = 0.0
    for step in range(3000):
        now += rng.uniform(0.0, 0.1)
        nid = f"n{rng.randrange(8)}"
        x = rng.random()
        if x < 0.1 or r.node(nid) is None:
            r.upsert_node(nid, rng.sample(models, rng.randint(1, 3)), now=now,
                          max_concurrency=rng.choice([1, 2]), max_queue=rng.choice([0, 1]))  # fmt: skip
        elif x < 0.15:
            r.remove_node(nid)
        elif x < 0.25:
            r.set_routable(nid, rng.random() < 0.7)
        elif x < 0.4:
            r.heartbeat(nid, now, in_flight=rng.randint(0, 2), queued=rng.randint(0, 1))
        elif x < 0.65 and atts:
            att = atts.pop(rng.randrange(len(atts)))
            r.finish(att, now, rng.choice(list(Outcome)), retry_after_s=0.5)
        else:
            d = r.pick(RouteRequest(tuple(rng.sample(models, 2))), now)
            if d.node_id is not None and d.model is not None:
                st = r.node(d.node_id)
                assert st is not None and st.routable and not st.saturated
                assert not r.ejected_for(d.node_id, d.model)
                atts.append(r.begin(d.node_id, d.model, now))
        r.tick(now)
        for m, (open_, full, ejected) in _expected_pools(r, models).items():
            pool = r._pools.get(m)
            got = (set(), set(), 0) if pool is None else (
                {id(s) for s in pool.open}, {id(s) for s in pool.full}, pool.ejected)  # fmt: skip
            assert got == (open_, full, ejected), (step, m)


def test_a_429_ends_with_a_heartbeat_heard_through_another_replica() -> None:
    # the node heartbeats to another replica: this router only hears that it beat, never
    # its load; before, the capacity its 429 set stayed, and the node stayed full here
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=2, max_queue=1)
    r.finish(r.begin("a", "m", 0.0), 0.1, Outcome.OVERLOADED, retry_after_s=0.5)
    opened = [r.heard("a", 0.05)]  # a beat from before the 429 says nothing of it
    assert r.pick(REQ, 0.2).verdict is Verdict.SATURATED
    opened.append(r.heard("a", 2.0))
    assert r.pool_counts("m") == (1, 0, 0)
    assert r.pick(REQ, 2.1).node_id == "a"
    assert opened == [False, True]  # what wakes requests waiting for a node


def test_a_load_reported_here_is_dropped_once_the_node_beats_elsewhere() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=4, max_queue=0)
    r.heartbeat("a", 1.0, in_flight=3, queued=0)  # then it moved to another replica
    r.heard("a", 1.0)  # not newer than the report
    assert r.node("a").load == 3  # type: ignore[union-attr]
    r.heard("a", 3.0)
    assert r.node("a").load == 0  # type: ignore[union-attr]
    att = r.begin("a", "m", 3.0)  # this router's own requests still count
    r.heard("a", 4.0)
    assert r.node("a").load == 1  # type: ignore[union-attr]
    r.finish(att, 4.5, Outcome.SUCCESS)


def test_in_flight_by_node_lists_the_busy_nodes_up_to_a_bound() -> None:
    """What a replica publishes per node (uptime credit elsewhere: load another replica
    sent a node): only nodes with requests in flight; over the bound, the busiest."""
    r = fleet(4)
    assert r.in_flight_by_node(10) == ({}, False)
    atts = [r.begin("n0", "m", 0.0), r.begin("n2", "m", 0.0), r.begin("n2", "m", 0.0)]
    r.begin("n3", "m", 0.0)
    assert r.in_flight_by_node(10) == ({"n0": 1, "n2": 2, "n3": 1}, False)
    assert r.in_flight_by_node(3) == ({"n0": 1, "n2": 2, "n3": 1}, False)
    assert r.in_flight_by_node(2) == ({"n2": 2, "n0": 1}, True)
    for att in atts:
        r.finish(att, 1.0, Outcome.SUCCESS)
    assert r.in_flight_by_node(10) == ({"n3": 1}, False)


def test_take_peak_reports_the_most_in_flight_since_the_last_take() -> None:
    """What a heartbeat's uptime credit reads (core/rewards.known_at_report): the requests
    in flight at the node, the most it had since the previous take (a burst that came and
    went), when one last ended; each take starts the peak over from what is in flight."""
    r = fleet(2)
    assert r.take_peak("n0") == (0, 0, -math.inf)
    assert r.take_peak("nobody") == (0, 0, -math.inf)
    atts = [r.begin("n0", "m", 0.0) for _ in range(3)]
    for att in atts[:2]:
        r.finish(att, 1.5, Outcome.SUCCESS)
    assert r.take_peak("n0") == (1, 3, 1.5)
    assert r.take_peak("n0") == (1, 1, 1.5)  # started over from the one still in flight
    r.finish(atts[2], 2.0, Outcome.SUCCESS)
    assert r.take_peak("n0") == (0, 1, 2.0)
    assert r.take_peak("n0") == (0, 0, 2.0)
    r.upsert_node("n0", ("m",), now=3.0)  # a registration update keeps them
    r.begin("n0", "m", 3.0)
    r.upsert_node("n0", ("m",), now=3.0)
    assert r.take_peak("n0") == (1, 1, 2.0)
    more = [r.begin("n0", "m", 4.0) for _ in range(3)]  # a peak of 4 ...
    for att in more:
        r.finish(att, 4.5, Outcome.SUCCESS)
    r.heard("n0", 5.0)  # ... then the node heartbeated to another replica: it starts over
    assert r.take_peak("n0") == (1, 1, 4.5)
