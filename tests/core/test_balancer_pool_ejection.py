"""Ejection per model pool (found 2026-12-05, ``attack31``; closed ``eject31``).

``Router._maybe_eject`` ejected a node only if every model pool it is in could spare it
(``may_eject``: never more than ``max_ejected_fraction`` of a model's nodes), and a one-node
pool never can: a node failing a popular model's requests that also declared a model no other
node serves was never ejected for any model, stayed in the popular model's routing at full
weight and kept its uptime credit. Now it leaves the pools that can spare it, stays (rested,
as a one-node model's node is) in those that cannot, and counts as ejected for its credit
(``OutlierDetector.is_ejected``)."""

from __future__ import annotations

import random

from LLM_Mesh.core.balancer import Outcome, Router, RoutingPolicy, Verdict
from LLM_Mesh.core.outlier import EjectionPolicy
from LLM_Mesh.core.scoring import RouteRequest

POP, OWN = RouteRequest(("pop",)), RouteRequest(("own",))


def mesh(honest: int = 3) -> Router:
    r = Router(rng=random.Random(7))
    for i in range(honest):
        r.upsert_node(f"h{i}", ("pop",), now=0.0, max_concurrency=4)
    r.upsert_node("x", ("pop", "own"), now=0.0, max_concurrency=4)
    return r


def fail(r: Router, nid: str, model: str, now: float) -> bool:
    return r.finish(r.begin(nid, model, now), now, Outcome.SERVER_ERROR)


def test_a_node_with_a_model_of_its_own_leaves_the_popular_models_routing() -> None:
    r = mesh()
    assert fail(r, "x", "pop", 1.0)  # before: False (rested, never ejected)
    assert r.outliers.is_ejected("x")  # for its uptime credit: ejected
    assert r.pool_counts("pop") == (3, 0, 1) and r.pool_counts("own") == (1, 0, 0)
    assert "x" not in {r.pick(POP, 2.0).node_id for _ in range(300)}
    d = r.pick(OWN, 2.0)  # its own model is still served, at full weight (a rest)
    assert d.verdict is Verdict.OK and d.node_id == "x" and d.cost_ms < float("inf")
    assert r.ejected_for("x", "pop") and not r.ejected_for("x", "own")
    # a 502's estimate: the ejection for the popular model, the rest for its own
    assert r.back_in("x", ("pop",), 11.0) == 20.0 and r.back_in("x", ("own",), 11.0) == 20.0
    r.tick(31.0)  # the ejection ends: back in the popular model's pool, slowly
    assert not r.outliers.is_ejected("x") and not r.ejected_for("x", "pop")
    assert r.pool_counts("pop") == (4, 0, 0) and r.pool_counts("own") == (1, 0, 0)
    assert r.outliers.weight("x", 32.0) < 0.1


def test_failing_again_where_it_is_kept_rests_it_and_the_count_grows_as_before() -> None:
    r = mesh()
    assert fail(r, "x", "pop", 0.0)
    assert not fail(r, "x", "own", 5.0)  # no second ejection; the rest stands (30 s)
    assert r.back_in("x", ("own",), 5.0) == 25.0 and r.outliers.ejection_count("x") == 1
    r.tick(30.0)
    assert fail(r, "x", "pop", 40.0)  # its second ejection: 60 s
    assert r.back_in("x", ("pop",), 40.0) == 60.0 and r.outliers.ejection_count("x") == 2
    assert r.pool_counts("pop") == (3, 0, 1)


def test_a_node_only_its_models_pools_need_is_still_only_rested() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("solo", ("own", "other-own"), now=0.0)
    assert not fail(r, "solo", "own", 0.0)
    assert not r.outliers.is_ejected("solo") and r.back_in("solo", ("own",), 0.0) == 30.0
    assert r.pool_counts("own") == (1, 0, 0) and r.pool_counts("other-own") == (1, 0, 0)


def test_the_fraction_holds_per_pool_with_many_such_nodes() -> None:
    r = Router(rng=random.Random(3))
    for i in range(2):
        r.upsert_node(f"h{i}", ("pop",), now=0.0)
    for i in range(4):
        r.upsert_node(f"x{i}", ("pop", f"own{i}"), now=0.0)
    out = [fail(r, f"x{i}", "pop", 1.0) for i in range(4)]
    assert out == [True, True, True, False]  # 3 of the 6 popular nodes at most
    assert r.pool_counts("pop") == (3, 0, 3)
    assert all(r.pool_counts(f"own{i}") == (1, 0, 0) for i in range(4))
    assert r.back_in("x3", ("pop",), 1.0) == 30.0  # the last one rested


def test_the_split_stands_across_a_goodbye_and_a_registration() -> None:
    """attack30: an ejection is kept across a goodbye; so is the split (computed again as it
    comes back: the pools that can spare it, not those it alone serves)."""
    r = mesh()
    assert fail(r, "x", "pop", 0.0)
    r.remove_node("x", 1.0)
    r.upsert_node("x", ("pop", "own", "own2"), now=2.0)
    assert r.outliers.is_ejected("x")
    assert r.pool_counts("pop") == (3, 0, 1)
    assert r.pool_counts("own") == (1, 0, 0) and r.pool_counts("own2") == (1, 0, 0)
    r.set_routable("x", False)
    assert r.pool_counts("pop") == (3, 0, 0) and r.pool_counts("own") == (0, 0, 0)
    r.set_routable("x", True)
    assert r.pool_counts("pop") == (3, 0, 1) and r.pool_counts("own") == (1, 0, 0)
    r.tick(30.0)
    assert r.pool_counts("pop") == (4, 0, 0) and r.pool_counts("own2") == (1, 0, 0)


def test_a_kept_node_moves_between_its_bands_in_the_pools_it_stays_in() -> None:
    pol = RoutingPolicy(ejection=EjectionPolicy())
    r = Router(pol, random.Random(5))
    for i in range(3):
        r.upsert_node(f"h{i}", ("pop",), now=0.0)
    r.upsert_node("x", ("pop", "own"), now=0.0, max_concurrency=1, max_queue=0)
    assert fail(r, "x", "pop", 0.0)
    att = r.begin("x", "own", 1.0)
    assert r.pool_counts("own") == (0, 1, 0) and r.pool_counts("pop") == (3, 0, 1)
    assert r.pick(OWN, 1.0).verdict is Verdict.SATURATED
    r.finish(att, 2.0, Outcome.SUCCESS, completion_tokens=3)
    assert r.pool_counts("own") == (1, 0, 0) and r.pool_counts("pop") == (3, 0, 1)
