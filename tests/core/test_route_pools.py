"""The router's kept places (core/route_pools.py through core/balancer.py): a node keeps
the last places of its line for keyed requests (core/priority.admits); the router applies
the same rule, so an anonymous request's 429 closes the node to anonymous requests only
(found 2026-12-05: it marked the node full for every request until its next heartbeat,
and an anonymous flood kept keyed requests out of every node it filled)."""

from __future__ import annotations

import random

from LLM_Mesh.core.balancer import Outcome, Router, Verdict
from LLM_Mesh.core.priority import KEYED_SEEN_S, kept_places
from LLM_Mesh.core.route_pools import FULL, KEPT, OPEN, anonymous_limit, band
from LLM_Mesh.core.scoring import RouteRequest

ANON = RouteRequest(("m",))
KEYED = RouteRequest(("m",), keyed=True)


def _router(max_queue: int = 8) -> Router:
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=1, max_queue=max_queue)
    return r


def test_an_anonymous_429_closes_the_node_to_anonymous_requests_only() -> None:
    r = _router()
    r.begin("a", "m", 1.0, keyed=True)  # the node keeps places now, as it does itself
    r.finish(r.begin("a", "m", 1.1), 1.2, Outcome.OVERLOADED, retry_after_s=2.0)
    assert r.pick(ANON, 1.3).verdict is Verdict.SATURATED
    d = r.pick(KEYED, 1.3)
    assert d.verdict is Verdict.OK and d.node_id == "a"
    assert r.pool_counts("m") == (0, 1, 0)  # full, as an anonymous request sees it
    r.heartbeat("a", 2.0, in_flight=1, queued=3)  # its line has room again
    assert r.pick(ANON, 2.1).node_id == "a"


def test_a_keyed_429_or_one_at_a_node_keeping_nothing_closes_it_to_everyone() -> None:
    r = _router()
    r.begin("a", "m", 1.0, keyed=True)
    r.finish(r.begin("a", "m", 1.1, keyed=True), 1.2, Outcome.OVERLOADED)
    assert r.pick(KEYED, 1.3).verdict is Verdict.SATURATED
    r = _router()  # no keyed request yet: the node keeps nothing, as before
    r.finish(r.begin("a", "m", 1.1), 1.2, Outcome.OVERLOADED)
    assert r.pick(KEYED, 1.3).verdict is Verdict.SATURATED
    assert r.pick(ANON, 1.3).verdict is Verdict.SATURATED


def test_anonymous_requests_fill_all_but_the_kept_places_keyed_ones_every_place() -> None:
    r = _router()
    r.begin("a", "m", 0.0, keyed=True)  # running
    kept = kept_places(8)
    for _ in range(8 - kept):  # the anonymous flood: 6 waiting places of 8
        d = r.pick(ANON, 0.1)
        assert d.node_id == "a"
        r.begin("a", "m", 0.1)
    st = r.node("a")
    assert st is not None and band(st) is KEPT
    assert r.pick(ANON, 0.2).verdict is Verdict.SATURATED
    for _ in range(kept):
        assert r.pick(KEYED, 0.2).node_id == "a"
        r.begin("a", "m", 0.2, keyed=True)
    assert band(st) is FULL and r.pick(KEYED, 0.3).verdict is Verdict.SATURATED


def test_a_line_full_of_keyed_requests_still_takes_anonymous_ones() -> None:
    """Kept from anonymous requests, not for keyed ones alone: the node's rule."""
    r = _router()
    for _ in range(8):
        r.begin("a", "m", 0.0, keyed=True)
    st = r.node("a")
    assert st is not None and band(st) is OPEN
    assert r.pick(ANON, 0.1).node_id == "a"


def test_places_are_kept_only_while_a_keyed_request_went_there_lately() -> None:
    r = _router()
    st = r.node("a")
    assert st is not None and anonymous_limit(st, 0.0) == st.capacity
    r.begin("a", "m", 10.0, keyed=True)
    assert anonymous_limit(st, 10.0) == st.capacity - kept_places(8)
    assert anonymous_limit(st, 10.0 + KEYED_SEEN_S) == st.capacity
    r.heartbeat("a", 10.0 + KEYED_SEEN_S, in_flight=0, queued=0)
    assert st.open_below == st.capacity


def test_the_nodes_own_word_keeps_places_at_a_router_that_sent_it_no_keyed_request() -> None:
    """Found 2026-12-05: each gateway replica counted a node's kept places from the keyed
    requests it sent itself; one that sent none took the node for keeping none, and an
    anonymous 429 there closed the node to keyed requests too. The node's heartbeat says
    when its last keyed request came (``keyed_at`` here, ``route_pools.heard_keyed``)."""
    r = _router()
    r.heartbeat("a", 1.0, in_flight=1, queued=0, keyed_at=0.5)  # its heartbeat here
    st = r.node("a")
    assert st is not None and st.keyed_at == 0.5
    assert st.open_below == st.capacity - kept_places(8)
    r.finish(r.begin("a", "m", 1.1), 1.2, Outcome.OVERLOADED, retry_after_s=2.0)
    assert r.pick(ANON, 1.3).verdict is Verdict.SATURATED
    assert r.pick(KEYED, 1.3).node_id == "a"  # before: saturated for keyed ones too
    # heard through another replica (no load report): an open node whose anonymous
    # requests hold all the places not kept turns kept at once, its rows in step
    r = _router()
    for _ in range(7):
        r.begin("a", "m", 2.0)
    st = r.node("a")
    assert st is not None and band(st) is OPEN
    r.heard("a", 3.0, keyed_at=2.5)
    assert band(st) is KEPT and r.pool_counts("m") == (0, 1, 0)
    assert r.pick(ANON, 3.1).verdict is Verdict.SATURATED
    assert r.pick(KEYED, 3.1).node_id == "a"
    # never earlier than this router's own keyed request there; no word leaves it
    r.begin("a", "m", 4.0, keyed=True)
    r.heard("a", 5.0, keyed_at=3.0)
    r.heartbeat("a", 6.0, in_flight=0, queued=0)
    assert st.keyed_at == 4.0


def test_the_sets_and_their_rows_stay_in_step_with_keyed_and_anonymous_traffic() -> None:
    """Every routable node not ejected is in the set ``band`` names, and the open and kept
    sets' rows are ``node_row`` of their nodes, through any sequence of keyed and
    anonymous begins and ends, 429s, heartbeats and beats heard elsewhere."""
    from LLM_Mesh.core.route_pools import Pool
    from LLM_Mesh.core.scoring import node_row

    rng = random.Random(5)
    r = Router(rng=random.Random(2))
    for i in range(4):
        r.upsert_node(f"n{i}", ("m",), now=0.0, max_concurrency=rng.choice([1, 2]),
                      max_queue=rng.choice([2, 4, 8]))  # fmt: skip
    atts = []
    now = 0.0
    seen = {OPEN: 0, KEPT: 0, FULL: 0}
    for _ in range(4000):
        now += rng.uniform(0.0, 0.5)
        nid = f"n{rng.randrange(4)}"
        x = rng.random()
        if x < 0.05:
            r.heartbeat(nid, now, in_flight=rng.randint(0, 3), queued=rng.randint(0, 3))
        elif x < 0.08:  # heard elsewhere, sometimes with the node's word on keyed requests
            r.heard(nid, now, rng.choice([None, now - rng.uniform(0.0, 2 * KEYED_SEEN_S)]))
        elif x < 0.45 and atts:
            att = atts.pop(rng.randrange(len(atts)))
            r.finish(att, now, rng.choice([Outcome.SUCCESS, Outcome.OVERLOADED]))
        else:
            keyed = rng.random() < 0.3
            d = r.pick(KEYED if keyed else ANON, now)
            if d.node_id is not None:
                atts.append(r.begin(d.node_id, "m", now, keyed=keyed))
        pool: Pool = r._pools["m"]
        for i in range(4):
            st = r.node(f"n{i}")
            assert st is not None
            where = band(st)
            seen[where] += 1
            if where == FULL:
                assert st in pool.full
            else:
                rows = pool.open if where == OPEN else pool.kept
                assert st in rows and rows.row(st) == node_row(st, "m")
    assert all(seen.values())  # every band was reached


def test_the_nodes_word_moves_its_keyed_time_only_forward() -> None:
    from LLM_Mesh.core.route_pools import heard_keyed

    st = _router().node("a")
    assert st is not None and st.keyed_at is None
    assert heard_keyed(st, None) is False and st.keyed_at is None
    assert heard_keyed(st, 10.0) is True and st.keyed_at == 10.0
    assert heard_keyed(st, 10.0) is False  # the same word again: no move
    assert heard_keyed(st, 9.0) is False and st.keyed_at == 10.0
    assert heard_keyed(st, 11.0) is True and st.keyed_at == 11.0


def test_a_move_says_whether_the_node_moved() -> None:
    from LLM_Mesh.core.route_pools import Pools

    st = _router().node("a")
    assert st is not None
    pools = Pools()
    assert pools.move(st, OPEN) is True
    assert pools.move(st, OPEN) is False
    assert pools.move(st, FULL) is True and len(pools.by_model["m"].full) == 1
    assert len(pools.by_model["m"].open) == 0


def test_a_node_about_to_join_its_pool_is_counted_in_it() -> None:
    """``unspared``: a model's only node cannot be spared; a node about to be counted
    (``placed=False``) beside one other makes two, one of which may go."""
    from LLM_Mesh.core.route_pools import unspared

    r = _router()
    ms = frozenset({"m"})
    assert unspared(r._index, ms, 0.5, placed=True) == ms  # "a" alone
    assert unspared(r._index, ms, 0.5, placed=False) == frozenset()  # "a" and the newcomer
    r.upsert_node("b", ("m",), now=0.0, max_concurrency=1, max_queue=8)
    assert unspared(r._index, ms, 0.5, placed=True) == frozenset()
    assert unspared(r._index, ms, 0.5, placed=False) == frozenset()
    assert unspared(r._index, frozenset({"none"}), 0.5, placed=False) == frozenset({"none"})


def test_only_a_full_node_or_one_closed_to_anonymous_requests_adds_idle_slots() -> None:
    """``idle_slots``: the slots this router holds none of on a node full by its own word
    (``FULL``) or closed to anonymous requests by a 429 (``KEPT`` and ``anon_closed``) are
    left out of the anonymous share's count; an open node's, or a kept one's still taking
    keyed requests, are not (their slots can be taken)."""
    from LLM_Mesh.core.route_pools import idle_slots

    r = Router(rng=random.Random(1))
    st = r.upsert_node("a", ("m",), now=0.0, max_concurrency=4, max_queue=0)
    st.in_flight = 1
    assert (idle_slots(st, FULL), idle_slots(st, KEPT), idle_slots(st, OPEN)) == (3, 0, 0)
    st.anon_closed = True
    assert (idle_slots(st, FULL), idle_slots(st, KEPT), idle_slots(st, OPEN)) == (3, 3, 0)
    st.in_flight = 6  # more than its slots (a heartbeat's count): none idle, never fewer
    assert (idle_slots(st, FULL), idle_slots(st, KEPT)) == (0, 0)


def test_a_keeper_named_before_its_node_is_placed_counts_once_it_is() -> None:
    """``Pools.set_keeps`` for a node known but not yet in any pool only notes it; the
    node's slots join ``held`` when it is placed, and leave when it keeps none."""
    from LLM_Mesh.core.route_pools import Pools

    st = _router().node("a")
    assert st is not None
    pools, ms = Pools(), frozenset({"m"})
    pools.set_keeps(st, "a", ms)
    assert pools.keeps == {"a": ms} and pools.by_model == {}
    pools.move(st, OPEN)
    assert pools.by_model["m"].held_out_slots() == st.max_concurrency == 1
    pools.set_keeps(st, "a", None)
    assert pools.by_model["m"].held_out_slots() == 0 and pools.keeps == {}


def test_a_model_with_no_pool_yet_may_lose_the_node_about_to_join_at_a_whole_fraction() -> None:
    """``unspared`` for a model no node has joined yet: the node about to join is its one
    node, which only a ``max_fraction`` of 1 may eject; counted already, it is none."""
    from LLM_Mesh.core.route_pools import Pools, unspared

    ms = frozenset({"m"})
    assert unspared(Pools(), ms, 1.0, placed=False) == frozenset()
    assert unspared(Pools(), ms, 0.99, placed=False) == ms
    assert unspared(Pools(), ms, 1.0, placed=True) == ms


def test_a_node_placed_in_every_pool_leaves_no_ejection_note() -> None:
    """``Pools.out`` holds a node only while it is ejected from some of its pools: a node
    placed whole, or gone, is not in it (``rewrite`` takes its slower path while it is
    not empty)."""
    r = _router()
    r.upsert_node("b", ("m", "n"), now=0.0, max_concurrency=1, max_queue=8)
    assert r._index.out == {}
    r.set_routable("b", False)
    r.set_routable("b", True)
    r.remove_node("b", 1.0)
    assert r._index.out == {}
