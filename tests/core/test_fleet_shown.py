"""What each node has shown at every replica (``core/fleet_shown.py``, redisshare36): the
room a replica publishes, the changes it sends, the sums it reads (stale replicas left
out), and the router's count of them (each node up to its slots, the floor of 2)."""

from __future__ import annotations

import math
import random

from LLM_Mesh.core.anonymous_share import anonymous_cap
from LLM_Mesh.core.balancer import Router
from LLM_Mesh.core.fleet_shown import (
    FADE_S,
    NONE_ELSEWHERE,
    Elsewhere,
    changes,
    fleet_sums,
    own_room,
    own_view,
    parse_view,
    published,
)
from LLM_Mesh.core.route_types import Outcome

HUGE = 2**31 - 1


def served_at_once(r: Router, node: str, model: str, n: int, now: float) -> None:
    """``node`` answered ``n`` requests it held at once (``tests/registry/helpers.py``'s)."""
    atts = [r.begin(node, model, now) for _ in range(n)]
    for att in atts:
        r.finish(att, now, Outcome.SUCCESS, completion_tokens=1, ttft_ms=1.0)


def _router(**slots: int) -> Router:
    r = Router(rng=random.Random(1))
    for n, mc in slots.items():
        r.upsert_node(n, ["m"], now=0.0, max_concurrency=mc, max_queue=0)
    return r


def test_own_room_is_what_was_shown_or_2n_plus_1_while_held_at_most_the_slots() -> None:
    r = _router(a=8, p=HUGE)
    served_at_once(r, "a", "m", 3, 0.0)
    a = r.node("a")
    assert a is not None and own_room(a) == 3
    atts = [r.begin("a", "m", 1.0) for _ in range(2)]
    assert own_room(a) == 5  # 2n + 1
    atts += [r.begin("a", "m", 1.0) for _ in range(3)]
    assert own_room(a) == 8  # 11, at most its slots
    p = r.node("p")
    assert p is not None and own_room(p) == 0  # a phantom sent nothing shows nothing
    # what it publishes: what was shown and what it holds there (trust37), apart
    assert own_view(a) == "3,5" and parse_view(b"3,5") == (3, 5)
    assert published([a, p]) == {"a": "3,5"}  # only nodes answered here
    for att in atts:
        r.finish(att, 2.0, Outcome.SUCCESS)
    assert own_view(a) == "5"  # held 5 at an answer: shown 5, nothing held


def test_own_room_keeps_more_shown_before_and_counts_one_held_as_three() -> None:
    """``2n + 1`` only raises the room: a node that showed 6 at once and holds 2 now shows
    6, not 5; one request held by a node that showed nothing yet is a room of 3."""
    r = _router(a=8, b=8)
    served_at_once(r, "a", "m", 6, 0.0)
    atts = [r.begin("a", "m", 1.0) for _ in range(2)]
    a = r.node("a")
    assert a is not None and (a.shown, a.in_flight) == (6, 2) and own_room(a) == 6
    atts.append(r.begin("b", "m", 1.0))
    b = r.node("b")
    assert b is not None and (b.shown, b.in_flight) == (0, 1) and own_room(b) == 3
    for att in atts:
        r.finish(att, 2.0, Outcome.SUCCESS)


def test_changes_send_what_differs_or_everything_when_unknown() -> None:
    assert changes(None, {"a": 1}) == ({"a": 1}, [])
    assert changes({"a": 1, "b": 2, "c": 0}, {"a": 1, "b": 3, "d": 0}) == ({"b": 3, "d": 0}, ["c"])
    assert changes({"a": 1}, {"a": 1}) == ({}, [])


def test_views_per_node_take_the_most_shown_add_the_held_and_leave_out_stale_ones() -> None:
    now = 100.0
    views = [
        (now - 1.0, {b"a": b"3,1", b"b": b"0"}),
        (now - FADE_S, {"a": "2,4"}),  # as old as the fade: still in
        (now - FADE_S - 0.01, {"a": "50,50"}),  # older: gone
        (math.nan, {"a": "50"}),
        (now, {"a": "-4", "c": "x", "d": "1,y"}),  # nonsense: 0, the node answered there
    ]
    # a: the most shown (3; their sum, 5, before trust37), the held added (1 + 4)
    assert fleet_sums(views, now) == {
        "a": Elsewhere(3, 5),
        "b": Elsewhere(0, 0),
        "c": Elsewhere(0, 0),
        "d": Elsewhere(0, 0),
    }


def test_the_fleet_sum_counts_each_node_up_to_its_slots_and_a_phantom_nothing() -> None:
    """Two honest nodes of 2 slots and a phantom of 2^31 - 1 declared: this replica saw
    the honest ones serve 1 at once; another saw them serve 2 (review35c: a replica that
    sees few requests); the phantom answered nowhere."""
    r = _router(a=2, b=2, p=HUGE)
    for n in ("a", "b"):
        served_at_once(r, n, "m", 1, 0.0)
    assert r.slots("m") == 2  # its own view: 1 + 1
    own = r.fleet_shown({"a": Elsewhere(2, 0), "b": Elsewhere(2, 0)})
    assert own == {"a": "1", "b": "1"}  # what it publishes
    assert r.slots("m") == 4  # the most seen, 2 each; the phantom 0
    assert anonymous_cap(r.slots("m"), 0.75) == 3  # before (declared): 2^31 + 3
    # the phantom answered one at another replica
    r.fleet_shown({"a": Elsewhere(2, 0), "b": Elsewhere(2, 0), "p": Elsewhere(1, 0)})
    assert r.slots("m") == 5
    r.fleet_shown(None)  # Redis out: this replica's own again (review35d)
    assert r.slots("m") == 2
    p = r.node("p")
    assert p is not None and p.shown_elsewhere == NONE_ELSEWHERE


def test_a_node_answered_only_at_another_replica_counts_shown_slots_not_declared() -> None:
    """A replica none of whose nodes answered here counts declared slots (a fresh start);
    one of them answered at another replica: what they showed there, at least 2."""
    r = _router(a=2, p=HUGE)
    assert r.slots("m") == HUGE + 2
    r.fleet_shown({"a": Elsewhere(0, 0)})  # answered there, shows nothing now (decayed)
    assert r.slots("m") == 2  # the floor, not the phantom's 2^31 - 1
    r.fleet_shown({"a": Elsewhere(2, 0)})
    assert r.slots("m") == 2
    r.fleet_shown({})
    assert r.slots("m") == HUGE + 2  # nobody has seen any answer: declared, as before


def test_a_phantom_answering_once_at_each_replica_counts_as_at_one() -> None:
    """trust37: a phantom that answered one request, one at a time, at this replica and at
    R - 1 others counts 1 slot, as one replica seeing all R answers would (their sum, R,
    before); what the replicas hold there together counts ``2n + 1``, as one replica
    holding all of them would."""
    r = _router(**{f"h{i}": 2 for i in range(4)}, p=HUGE)
    for i in range(4):
        served_at_once(r, f"h{i}", "m", 2, 0.0)
    served_at_once(r, "p", "m", 1, 0.0)
    honest = {f"h{i}": Elsewhere(2, 0) for i in range(4)}
    for replicas in (2, 3, 10):
        views = [(0.0, {"p": "1", **{n: "2" for n in honest}})] * (replicas - 1)
        r.fleet_shown(fleet_sums(views, 0.0))
        assert r.slots("m") == 9  # 8 honest + 1 (before: 8 + replicas)
        assert anonymous_cap(r.slots("m"), 0.75) == 6
    # three other replicas each hold one request at p now: 2 × 3 + 1
    r.fleet_shown({**honest, "p": Elsewhere(1, 3)})
    assert r.slots("m") == 8 + 7
    att = r.begin("p", "m", 1.0)  # and this one's: 2 × 4 + 1
    assert r.slots("m") == 8 + 9
    r.finish(att, 1.0, Outcome.SUCCESS, completion_tokens=1)
