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
