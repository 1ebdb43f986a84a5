"""The router's smaller answers, each at the input that tells a right one from a near miss
(core/balancer.py; found by mutation testing, session 34): a node heard through another
replica, the busiest nodes' list, a model with no pool, an ejection that outlived a
goodbye, a 502's estimate where a node's rest and ejection end apart, a refusal counted
as a failure after the fact."""

from __future__ import annotations

import random

from LLM_Mesh.core.balancer import Attempt, Outcome, Router, Verdict
from LLM_Mesh.core.route_pools import KEPT, OPEN
from LLM_Mesh.core.scoring import RouteRequest

ANON = RouteRequest(("m",))


def fail(r: Router, nid: str, model: str, now: float) -> bool:
    return r.finish(r.begin(nid, model, now), now, Outcome.SERVER_ERROR)


def one_slot_router(*node_ids: str) -> Router:
    """A router of ``node_ids``, each serving "m" with one slot and no queue."""
    r = Router(rng=random.Random(1))
    for nid in node_ids:
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=1, max_queue=0)
    return r


def begun_before_a_goodbye() -> tuple[Router, Attempt]:
    """Nodes "a" and "b"; an attempt at "a" begun at 0, then "a" said goodbye at 0.5."""
    r = one_slot_router("a", "b")
    att = r.begin("a", "m", 0.0)
    r.remove_node("a", 0.5)
    return r, att


def test_heard_of_a_node_it_does_not_know_opens_nothing() -> None:
    r = Router(rng=random.Random(1))
    assert r.heard("nobody", 1.0, keyed_at=0.5) is False
    assert r.node("nobody") is None


def test_heard_at_the_time_of_its_last_beat_keeps_the_peak() -> None:
    """A beat elsewhere at the same instant as the one heard already is no newer: the
    peak since that beat stands (``take_peak``'s window)."""
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=4, max_queue=0)
    r.heartbeat("a", 1.0, in_flight=0, queued=0)
    atts = [r.begin("a", "m", 1.1) for _ in range(2)]
    r.finish(atts[0], 1.2, Outcome.SUCCESS)
    r.heard("a", 1.0)
    assert r.take_peak("a")[:2] == (1, 2)
    r.begin("a", "m", 1.3)
    r.heard("a", 1.5)  # newer: the window starts over from what is in flight
    assert r.take_peak("a")[:2] == (2, 2)


def test_a_load_of_one_reported_here_is_dropped_once_the_node_beats_elsewhere() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    r.heartbeat("a", 1.0, in_flight=1, queued=0)
    assert r.pick(ANON, 1.5).verdict is Verdict.SATURATED
    assert r.heard("a", 2.0) is True  # open again: what wakes requests waiting for it
    st = r.node("a")
    assert st is not None and (st.load, st.hb_load_at) == (0, 2.0)
    assert r.pick(ANON, 2.1).node_id == "a"


def test_an_anonymous_429s_close_ends_when_the_node_is_heard_elsewhere() -> None:
    """``anon_closed`` with no load reported: a beat at another replica after the 429
    reopens the node to anonymous requests (the 429's word is older than the beat)."""
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=8)
    r.finish(r.begin("a", "m", 0.0, keyed=True), 0.1, Outcome.SUCCESS)  # keeps places now
    r.finish(r.begin("a", "m", 0.2), 0.3, Outcome.OVERLOADED)
    st = r.node("a")
    assert st is not None and st.anon_closed and st.hb_load == 0
    assert r._place["a"] == KEPT
    assert r.heard("a", 0.25) is False and st.anon_closed  # older than the 429
    assert r.heard("a", 1.0) is True
    assert not st.anon_closed and r._place["a"] == OPEN
    assert r.pick(ANON, 1.1).node_id == "a"


def test_the_busiest_nodes_are_listed_first_ties_by_node_id() -> None:
    r = Router(rng=random.Random(1))
    for nid in ("c", "b", "a", "d"):  # registered out of name order
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=8, max_queue=0)
    for nid, n in (("c", 1), ("b", 1), ("a", 1), ("d", 3)):
        for _ in range(n):
            r.begin(nid, "m", 0.0)
    assert r.in_flight_by_node(1) == ({"d": 3}, True)
    assert r.in_flight_by_node(2) == ({"d": 3, "a": 1}, True)
    assert list(r.in_flight_by_node(3)[0]) == ["d", "a", "b"]
    assert r.in_flight_by_node(0) == ({}, True)


def test_a_model_no_node_ever_served_has_no_slots() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=3, max_queue=0)
    assert (r.slots("m"), r.slots("other"), r.slots("other", held_out=True)) == (3, 0, 0)


def test_an_ejection_kept_past_a_goodbye_still_holds_for_the_node_id() -> None:
    r = one_slot_router("a", "b")
    assert fail(r, "a", "m", 1.0)
    r.remove_node("a", 2.0)  # with a time: its ejection stays with the id
    assert r.outliers.is_ejected("a") and r.ejected_for("a", "m")


def test_a_node_back_while_ejected_where_no_pool_can_spare_it_is_placed_whole() -> None:
    """An ejected node coming back into routing where its pools cannot spare it any more is
    placed in its band with no pool left out: ``ejected_for`` says so for each model."""
    r = one_slot_router("a", "b", "c")
    assert fail(r, "a", "m", 1.0)  # 1 of 3 at 0.5
    r.set_routable("a", False)
    assert fail(r, "b", "m", 2.0)  # 1 of the 2 left
    r.set_routable("a", True)  # 3 again, 1 ejected: a cannot go too
    assert r.outliers.is_ejected("a") and r._place["a"] == OPEN
    assert not r.ejected_for("a", "m") and r.ejected_for("b", "m")
    assert r.pool_counts("m") == (2, 0, 1)


def test_a_502s_estimate_is_the_rest_where_the_node_is_kept_the_ejection_elsewhere() -> None:
    """``back_in``: where a rest and an ejection end at different times (the node was rested
    once before its first ejection), a model whose pool keeps it gets the rest's end, one
    it is ejected from the ejection's, any kept model among several the rest's."""
    r = Router(rng=random.Random(1))
    r.upsert_node("h", ("pop",), now=0.0, max_concurrency=4)
    r.upsert_node("x", ("pop", "own"), now=0.0, max_concurrency=4)
    assert fail(r, "h", "pop", 0.0)  # 1 of 2: ejected until 30
    assert not fail(r, "x", "pop", 1.0)  # no pool can spare it: rested until 31
    r.tick(32.0)
    assert fail(r, "x", "pop", 40.0)  # ejected (its first: 30 s), rested (its second: 60 s)
    assert r.ejected_for("x", "pop") and not r.ejected_for("x", "own")
    assert r.back_in("x", ("pop",), 40.0) == 30.0
    assert r.back_in("x", ("own",), 40.0) == 60.0
    assert r.back_in("x", ("pop", "own"), 40.0) == 60.0


def test_fault_counts_only_a_finished_attempt() -> None:
    r = one_slot_router("a", "b")
    att = r.begin("a", "m", 0.0)
    assert r.fault(att, 0.5) is False and not r.outliers.is_ejected("a")
    r.finish(att, 1.0, Outcome.SUCCESS)
    assert r.fault(att, 1.5) is True and r.outliers.is_ejected("a")


def test_fault_of_an_attempt_begun_before_a_goodbye_counts_for_the_node_back_since() -> None:
    r, att = begun_before_a_goodbye()
    assert r.finish(att, 1.0, Outcome.SUCCESS) is False
    r.upsert_node("a", ("m",), now=2.0, max_concurrency=1, max_queue=0)
    assert r.fault(att, 3.0) is True and r.outliers.is_ejected("a")


def test_a_late_success_at_a_node_back_since_ejects_nothing() -> None:
    r, att = begun_before_a_goodbye()
    r.upsert_node("a", ("m",), now=1.0, max_concurrency=1, max_queue=0)
    assert r.finish(att, 2.0, Outcome.SUCCESS) is False
    assert not r.outliers.is_ejected("a") and r.pool_counts("m") == (2, 0, 0)


def test_a_failure_out_of_routing_neither_ejects_nor_rests_the_node() -> None:
    r = one_slot_router("a", "b", "c")
    att = r.begin("a", "m", 0.0)
    r.set_routable("a", False)  # draining
    assert r.finish(att, 1.0, Outcome.SERVER_ERROR) is False
    assert not r.outliers.is_ejected("a") and r.back_in("a", ("m",), 1.0) == 0.0


def test_a_second_failure_of_a_node_ejected_everywhere_adds_no_rest() -> None:
    r = Router(rng=random.Random(1))
    for nid in ("a", "b", "c"):
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=2, max_queue=0)
    first, second = r.begin("a", "m", 0.0), r.begin("a", "m", 0.0)
    assert r.finish(first, 1.0, Outcome.SERVER_ERROR) is True
    assert r.finish(second, 2.0, Outcome.SERVER_ERROR) is False
    assert r.outliers.back_in("a", 2.0, kept=True) == 0.0  # never rested
    assert r.back_in("a", ("m",), 2.0) == 29.0  # the ejection's end


def test_a_failure_where_an_ejected_node_is_kept_rests_it_there_anew() -> None:
    """Its rest over while its (second, longer) ejection runs: failing again in the pool
    that keeps it starts a new rest, which a 502's estimate for that model reads."""
    r = Router(rng=random.Random(1))
    for nid in ("h1", "h2"):
        r.upsert_node(nid, ("pop",), now=0.0, max_concurrency=4)
    r.upsert_node("x", ("pop",), now=0.0, max_concurrency=4)
    assert fail(r, "x", "pop", 0.0)  # its first ejection: until 30
    r.tick(30.0)
    r.upsert_node("x", ("pop", "own"), now=35.0, max_concurrency=4)
    assert fail(r, "x", "pop", 40.0)  # ejection 2: until 100; a first rest: until 70
    assert r.back_in("x", ("own",), 80.0) == 0.0 and r.back_in("x", ("pop",), 80.0) == 20.0
    assert not fail(r, "x", "own", 80.0)  # rested again (its second: 60 s)
    assert r.back_in("x", ("own",), 80.0) == 60.0


def test_a_pick_at_the_instant_an_ejection_ends_takes_the_node_back() -> None:
    r = one_slot_router("a", "b")
    assert fail(r, "a", "m", 0.0)
    r.remove_node("b")
    assert r.pick(ANON, 29.9).verdict is Verdict.NO_NODE
    assert r.pick(ANON, 30.0).node_id == "a"


def test_a_later_model_cheaper_after_its_factor_wins_a_tie_goes_to_the_first() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m1",), now=0.0, max_concurrency=1, max_queue=4)
    r.upsert_node("b", ("m2",), now=0.0, max_concurrency=1, max_queue=4)
    both = RouteRequest(("m1", "m2"))
    assert r.pick(both, 0.0).node_id == "a"  # equal nodes: m2's cost × 1.5
    for _ in range(3):
        r.begin("a", "m1", 0.0)  # m1's node 4× as costly: m2 wins despite its factor
    d = r.pick(both, 0.0)
    assert (d.node_id, d.model) == ("b", "m2")


def test_equal_costs_across_models_go_to_the_first_model() -> None:
    from LLM_Mesh.core.balancer import RoutingPolicy
    from LLM_Mesh.core.scoring import ScoringPolicy

    r = Router(RoutingPolicy(scoring=ScoringPolicy(specialty_step=0.0)), rng=random.Random(1))
    r.upsert_node("a", ("m1",), now=0.0, max_concurrency=1, max_queue=4)
    r.upsert_node("b", ("m2",), now=0.0, max_concurrency=1, max_queue=4)
    d = r.pick(RouteRequest(("m1", "m2")), 0.0)
    assert (d.node_id, d.model) == ("a", "m1")
    d = r.pick(RouteRequest(("m2", "m1")), 0.0)
    assert (d.node_id, d.model) == ("b", "m2")


def test_changes_count_each_change_the_node_listing_shows_once() -> None:
    """``Router.changes`` (the node listing's cache key): one per upsert, removal, routable
    flip, ejection and ejection's end; nothing for a request or a flip to the same value."""
    r = Router(rng=random.Random(1))
    assert r.changes == 0
    for nid in ("a", "b"):
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=1, max_queue=0)
    assert r.changes == 2
    r.set_routable("a", True)
    assert r.changes == 2
    r.set_routable("a", False)
    r.set_routable("a", True)
    assert r.changes == 4
    assert fail(r, "a", "m", 1.0)  # ejected
    assert r.changes == 5
    r.tick(31.0)  # its ejection ends
    assert r.changes == 6
    r.remove_node("b")
    r.remove_node("b")  # gone already
    assert r.changes == 7


def test_a_removed_node_leaves_nothing_in_the_routers_maps() -> None:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    r.remove_node("a", 1.0)
    assert "a" not in r._place and "a" not in r._lineage and r.node("a") is None


def test_a_node_back_into_routing_during_its_ejection_stays_out_where_it_can_be_spared() -> None:
    r = one_slot_router("a", "b")
    assert fail(r, "a", "m", 1.0)  # 1 of 2
    r.set_routable("a", False)
    r.set_routable("a", True)  # counted with b: 2 again, none ejected, so it may be out
    assert r.ejected_for("a", "m") and r.pool_counts("m") == (1, 0, 1)


def test_a_service_time_at_either_end_of_its_range_is_taken() -> None:
    from LLM_Mesh.core.queue_wait import MAX_WAIT_S

    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    r.heartbeat("a", 1.0, in_flight=0, queued=0, service_s=0.0)
    assert st.reported_service_ms == 0.0
    r.heartbeat("a", 2.0, in_flight=0, queued=0, service_s=MAX_WAIT_S)
    assert st.reported_service_ms == MAX_WAIT_S * 1000.0
    r.heartbeat("a", 3.0, in_flight=0, queued=0, service_s=MAX_WAIT_S * 1.01)
    assert st.reported_service_ms == MAX_WAIT_S * 1000.0  # out of range: the last kept


def test_anonymous_requests_in_flight_are_counted_apart_from_keyed_ones() -> None:
    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=4, max_queue=8)
    assert st.anon_in_flight == 0
    anon, keyed = r.begin("a", "m", 0.0), r.begin("a", "m", 0.0, keyed=True)
    assert (st.in_flight, st.anon_in_flight) == (2, 1)
    r.finish(keyed, 1.0, Outcome.SUCCESS)
    assert (st.in_flight, st.anon_in_flight) == (1, 1)
    r.finish(anon, 1.0, Outcome.SUCCESS)
    assert (st.in_flight, st.anon_in_flight) == (0, 0)


def test_a_429s_retry_after_under_a_second_still_sets_the_nodes_wait() -> None:
    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    r.heartbeat("a", 0.0, in_flight=0, queued=0, service_s=0.01)
    r.finish(r.begin("a", "m", 1.0), 1.0, Outcome.OVERLOADED, retry_after_s=0.5)
    assert st.busy_until == 1.5
    d = r.pick(ANON, 1.0)
    assert d.verdict is Verdict.SATURATED and d.wait_s == 0.5


def test_the_routing_policys_refusal_in_words() -> None:
    import pytest

    from LLM_Mesh.core.balancer import RoutingPolicy

    with pytest.raises(ValueError, match=r"^need 1 <= choices <= max_draws$"):
        RoutingPolicy(choices=5, max_draws=4)


def test_a_503s_hold_ends_when_the_node_is_heard_elsewhere() -> None:
    """After ``heard`` drops a 503's load the node is no longer held: full again with this
    router's own requests it is saturated (a 429's wait), not unavailable (no node)."""
    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=0)
    r.finish(r.begin("a", "m", 0.0), 0.1, Outcome.UNAVAILABLE, retry_after_s=5.0)
    assert st.unavailable and r.pick(ANON, 0.2).verdict is Verdict.NO_NODE
    assert r.heard("a", 1.0) is True and not st.unavailable
    r.begin("a", "m", 1.1)
    assert r.pick(ANON, 1.2).verdict is Verdict.SATURATED


def test_heard_says_false_when_the_dropped_load_leaves_the_node_where_it_was() -> None:
    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=4, max_queue=0)
    r.heartbeat("a", 1.0, in_flight=1, queued=0)  # open, and still open without it
    assert r.heard("a", 2.0) is False and st.load == 0
