"""What a node has shown it serves, over windows of time (core/shown_window.py; found
2026-12-06, share35b: it never decayed, so a phantom that once served ``k`` at once lent
the anonymous share ``k`` slots for good)."""

from __future__ import annotations

import random

from LLM_Mesh.core.balancer import Outcome, Router
from LLM_Mesh.core.scoring import NodeStats, ScoringPolicy
from LLM_Mesh.core.shown_window import SHOWN_WINDOW_S, forget_shown, note_shown, roll_shown

W = SHOWN_WINDOW_S


def _node(slots: int = 8) -> NodeStats:
    return NodeStats("a", frozenset({"m"}), ScoringPolicy(), max_concurrency=slots)


def _answered(st: NodeStats, n: int, now: float) -> None:
    st.in_flight = n
    note_shown(st, now)
    st.in_flight = 0


def test_a_count_lasts_one_to_two_windows_after_the_node_last_held_that_many() -> None:
    st = _node()
    _answered(st, 3, 10 * W + 0.5 * W)  # mid-window
    assert (st.shown, st.answered) == (3, True)
    roll_shown(st, 11 * W + 0.9 * W)  # the next window: still counted
    assert st.shown == 3
    roll_shown(st, 12 * W)  # two windows on: gone, but it has answered here
    assert (st.shown, st.answered) == (0, True)
    _answered(st, 2, 13 * W - 1.0)  # at a window's very end: 1 window and a second
    roll_shown(st, 14 * W - 0.5)
    assert st.shown == 2
    roll_shown(st, 14 * W)
    assert st.shown == 0


def test_a_node_that_keeps_serving_keeps_its_count_and_the_most_of_two_windows() -> None:
    st = _node()
    for w in range(20):  # 4 at once each window, fewer in between
        _answered(st, 4, w * W + 0.7 * W)
        _answered(st, 1, w * W + 0.9 * W)
        assert st.shown == 4
        roll_shown(st, (w + 1) * W + 0.1)
        assert st.shown == 4
    _answered(st, 2, 20 * W + 0.5)  # it now serves 2 at once: 4 still, from the window before
    assert st.shown == 4
    roll_shown(st, 21 * W)
    assert st.shown == 2  # the last window's most


def test_a_clock_set_back_rolls_nothing_and_at_most_its_slots_count() -> None:
    st = _node(slots=2)
    _answered(st, 5, 100 * W)
    assert st.shown == 2
    roll_shown(st, 50 * W)  # another replica's older time
    assert st.shown == 2
    roll_shown(st, float("nan"))
    assert st.shown == 2
    forget_shown(st)  # a hard failure: starts over, answered no more
    assert (st.shown, st.shown_last, st.answered) == (0, 0, False)


def test_a_decayed_model_counts_what_is_shown_not_its_declared_slots_again() -> None:
    """The phantom's k slots stop counting when its heartbeat comes two windows on; the
    model's nodes having answered here, the share counts what they show (at least 2), not
    every declared slot as a fresh process does."""
    r = Router(rng=random.Random(1))
    r.upsert_node("a", ("m",), now=0.0, max_concurrency=2, max_queue=0)
    r.upsert_node("z", ("m",), now=0.0, max_concurrency=2**31 - 1, max_queue=0)
    atts = [r.begin("z", "m", 0.0) for _ in range(6)]
    for att in atts:
        r.finish(att, 0.1, Outcome.SUCCESS)  # served 6 at once, honestly, once
    a = [r.begin("a", "m", 0.0) for _ in range(2)]
    for att in a:
        r.finish(att, 0.1, Outcome.SUCCESS)
    assert r.slots("m") == 8
    now = 0.0
    while now < 2 * W + 10:  # heartbeats every 10 s; a keeps serving 2 at once, z nothing
        now += 10.0
        a = [r.begin("a", "m", now) for _ in range(2)]
        for att in a:
            r.finish(att, now, Outcome.SUCCESS)
        for n in ("a", "z"):
            r.heartbeat(n, now, in_flight=0, queued=0)
    assert (r.node("z").shown, r.node("a").shown) == (0, 2)
    assert r.slots("m") == 2
    r.heartbeat("a", now + 3 * W, in_flight=0, queued=0)  # a idle too, later: the floor
    assert r.node("a").shown == 0 and r.slots("m") == 2  # not 2 + 2^31 - 1


def test_a_clock_reading_that_is_no_number_moves_no_window() -> None:
    """``now`` of ∞ or NaN (a replica's broken ``at``) rolls nothing: what the node showed
    stays in its own window and leaves on time, not a window late."""
    st = _node()
    _answered(st, 3, 0.5 * W)
    before = (st.shown, st.shown_last, st.shown_window)
    for now in (float("inf"), float("nan"), float("-inf")):
        roll_shown(st, now)
        assert (st.shown, st.shown_last, st.shown_window) == before
    _answered(st, 2, 0.6 * W)
    roll_shown(st, 1.5 * W)
    assert st.shown == 3
    roll_shown(st, 2.5 * W)
    assert st.shown == 0
