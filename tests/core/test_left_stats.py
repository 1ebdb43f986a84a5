"""A node's routing statistics across a goodbye (``core/left_stats.py``, ``Router.remove_node``
with the time, ``Router.upsert_node``): found 2026-12-05 (ewma31), a node the router judged
poorly (failures: a low success EWMA; slow answers: high ttft / per-token peak-EWMAs) said
goodbye (``DELETE``, signed by its own key) and registered again, and was scored as a
newcomer, on the priors: it won traffic back. It comes back as it left now, as a twin that
stayed registered (and idle) would be, within ``LeftPolicy.keep_s`` and ``max_kept``."""

from __future__ import annotations

import random

import pytest

from LLM_Mesh.core.balancer import Outcome, Router, RoutingPolicy
from LLM_Mesh.core.left_stats import LeftPolicy
from LLM_Mesh.core.outlier import EjectionPolicy
from LLM_Mesh.core.scoring import NodeStats, RouteRequest, node_cost

REQ = RouteRequest(("m",))
# no ejection: the goodbye's effect on the statistics alone (an ejection is kept anyway,
# test_outlier.py::test_a_node_that_leaves_while_ejected_comes_back_ejected)
NO_EJECT = EjectionPolicy(max_ejected_fraction=0.0)


def _router(seed: int = 5, left: LeftPolicy | None = None) -> tuple[Router, random.Random]:
    rng = random.Random(seed)
    pol = RoutingPolicy(ejection=NO_EJECT, left=left or LeftPolicy())
    r = Router(pol, rng)
    for nid in ("a", "b", "c", "d", "e", "bad"):
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=4, max_queue=4)
    return r, rng


def _serve(r: Router, nid: str, at: float, ttft_s: float, total_s: float, ok: bool) -> None:
    att = r.begin(nid, "m", at)
    r.first_token(att, at + ttft_s)
    outcome = Outcome.SUCCESS if ok else Outcome.SERVER_ERROR
    r.finish(att, at + total_s, outcome, completion_tokens=50)


def _judged(r: Router) -> None:
    """The honest nodes answer 50 tokens in 2.3 s (first token 0.3 s: slower than the
    priors' 200 ms and 20 ms a token); ``bad`` fails three of five and answers the others
    in 8 s (first token 3 s)."""
    for i in range(5):
        t = float(i)
        for nid in ("a", "b", "c", "d", "e"):
            _serve(r, nid, t, 0.3, 2.3, True)
        _serve(r, "bad", t, 3.0, 8.0, i % 2 == 1)


def _cost(r: Router, nid: str, now: float) -> float:
    st = r.node(nid)
    assert st is not None
    return node_cost(st, "m", 256, now, r.policy.scoring, r.outliers.weight(nid, now))


def _picks(r: Router, rng: random.Random, nid: str, now: float, n: int = 2000) -> int:
    rng.seed(11)
    return sum(r.pick(REQ, now).node_id == nid for _ in range(n))


def test_a_node_judged_poorly_gains_nothing_by_a_goodbye_and_a_registration() -> None:
    """The attack: ``bad`` (a low success EWMA, slow answers) is sent nothing while any
    honest node is drawn with it; it says goodbye and registers again at once. It was
    scored on the priors (200 ms to a first token, no failure), cheaper than every
    honest node: it took every pick it was drawn for (about two in three)."""
    r, rng = _router()
    _judged(r)
    now = 12.0
    cost = _cost(r, "bad", now)
    before = _picks(r, rng, "bad", now)
    assert before == 0
    st = r.node("bad")
    assert st is not None and st.success.value is not None and st.success.value < 0.6
    r.remove_node("bad", now)  # the goodbye
    r.upsert_node("bad", ("m",), now=now, max_concurrency=4, max_queue=4)  # and again
    assert _cost(r, "bad", now) == cost
    assert _picks(r, rng, "bad", now) <= before
    back = r.node("bad")
    assert back is not None and back.success.value == st.success.value
    assert back.latency.value == st.latency.value


def test_it_comes_back_as_a_twin_that_stayed_would_be() -> None:
    """Away a while: its estimates moved as a twin's that stayed registered and idle did
    (the peak-EWMAs decayed toward zero, so it is probed again as the twin is; the success
    EWMA holds without samples), no better."""
    left, _ = _router()
    twin, _ = _router()
    for r in (left, twin):
        _judged(r)
    left.remove_node("bad", 12.0)
    left.upsert_node("bad", ("m",), now=200.0, max_concurrency=4, max_queue=4)
    for now in (200.0, 400.0, 1000.0):
        for r in (left, twin):  # the twin heartbeats on as the node does
            r.heartbeat("bad", now, in_flight=0, queued=0)
        assert _cost(left, "bad", now) == _cost(twin, "bad", now)


def test_a_node_that_came_back_better_is_judged_on_its_answers() -> None:
    """An honest operator who restarted on a better machine: its statistics still learn
    (time-weighted: an answer after a long pause weighs almost all)."""
    r, _ = _router()
    _judged(r)
    r.remove_node("bad", 20.0)
    r.upsert_node("bad", ("m",), now=100.0, max_concurrency=4, max_queue=4)
    _serve(r, "bad", 200.0, 0.2, 0.4, True)
    _serve(r, "bad", 201.0, 0.2, 0.4, True)
    st = r.node("bad")
    assert st is not None and st.success.value is not None and st.success.value > 0.99
    assert st.ttft.peak is not None and st.ttft.peak < 201.0  # 200 ms now, not 3 s


def test_kept_within_keep_s_then_a_newcomer() -> None:
    r, _ = _router(left=LeftPolicy(keep_s=100.0))
    _judged(r)
    r.remove_node("bad", 20.0)
    assert "bad" in r.left
    r.upsert_node("bad", ("m",), now=120.0, max_concurrency=4, max_queue=4)  # 100 s after
    st = r.node("bad")
    assert st is not None and st.success.value == 1.0 and st.ttft.peak is None
    assert "bad" not in r.left


def test_a_removal_without_the_time_drops_them() -> None:
    r, _ = _router()
    _judged(r)
    r.remove_node("bad")
    r.upsert_node("bad", ("m",), now=20.0, max_concurrency=4, max_queue=4)
    st = r.node("bad")
    assert st is not None and st.success.value == 1.0 and len(r.left) == 0


def test_a_node_as_good_as_a_newcomer_leaves_nothing_behind() -> None:
    """A fresh start would not be cheaper for it, so nothing is kept (no memory)."""
    r, _ = _router()
    for nid in ("a", "b", "c"):  # first token in 0.1 s, then 10 ms a token
        _serve(r, nid, 0.0, 0.1, 0.6, True)
        r.remove_node(nid, 1.0)
    assert len(r.left) == 0
    _judged(r)  # slower than the priors (40 ms a token): kept
    r.remove_node("d", 20.0)
    assert "d" in r.left


def test_a_flood_of_goodbyes_keeps_at_most_max_kept_and_none_past_keep_s() -> None:
    """Memory: ids that failed and said goodbye are kept at most ``max_kept`` (the oldest
    goodbye dropped first) and none ``keep_s`` after its goodbye, dropped at a later
    goodbye or registration."""
    r = Router(RoutingPolicy(ejection=NO_EJECT, left=LeftPolicy(keep_s=100.0, max_kept=3)))
    for i in range(50):
        nid = f"x{i}"
        r.upsert_node(nid, ("m",), now=float(i))
        r.finish(r.begin(nid, "m", float(i)), float(i), Outcome.SERVER_ERROR)
        r.remove_node(nid, float(i))
        assert len(r.left) <= 3
    assert [f"x{i}" in r.left for i in (46, 47, 48, 49)] == [False, True, True, True]
    r.upsert_node("y", ("m",), now=200.0)
    r.remove_node("y", 200.0)  # nothing to keep of it; the stale ones go
    assert len(r.left) == 0


@pytest.mark.parametrize("kw", [{"keep_s": -1.0}, {"max_kept": -1}])
def test_the_policy_is_checked(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LeftPolicy(**kw)  # type: ignore[arg-type]


def test_only_statistics_move() -> None:
    """What comes back is the statistics, not the load or the registration's figures."""
    r, _ = _router()
    _judged(r)
    r.begin("bad", "m", 19.0)  # in flight at the goodbye
    r.remove_node("bad", 20.0)
    st = r.upsert_node("bad", ("m", "m2"), now=20.0, max_concurrency=2, max_queue=1)
    assert isinstance(st, NodeStats)
    assert st.in_flight == 0 and st.max_concurrency == 2 and st.models == {"m", "m2"}


@pytest.mark.parametrize("back", [True, False])
def test_a_failure_of_an_attempt_begun_before_the_goodbye_still_counts(back: bool) -> None:
    """The attack: a node holds requests it will not answer and says goodbye (and registers
    again) before the gateway's timeout; their timeouts counted nowhere (the attempts were
    the earlier registration's), so a node that hung every request was never ejected nor
    judged for it. They count for the node id's success EWMA (and, back, its ejection);
    its in-flight counts stay the registration's (test_balancer.py's old attempts)."""
    r = Router(rng=random.Random(1))
    for nid in ("a", "b", "c", "hang"):
        r.upsert_node(nid, ("m",), now=0.0, max_concurrency=4, max_queue=4)
    held = [r.begin("hang", "m", 0.0) for _ in range(2)]
    r.remove_node("hang", 50.0)  # just before the gateway's 60 s
    if back:
        r.upsert_node("hang", ("m",), now=50.0, max_concurrency=4, max_queue=4)
    ejected = [r.finish(att, 60.0, Outcome.TIMEOUT) for att in held]
    assert ejected == [back, False]  # away: nothing to eject (it comes back as judged)
    if not back:
        r.upsert_node("hang", ("m",), now=70.0, max_concurrency=4, max_queue=4)
    st = r.node("hang")
    assert st is not None and st.in_flight == 0
    assert st.success.value is not None and st.success.value < 0.1
    assert st.ttft.peak == 60_000.0  # a minute without a first token
    assert r.outliers.is_ejected("hang") is back  # back: ejected at its first timeout


# --- LeftStats alone (its policy's bounds, what counts, the order of goodbyes) ---

from LLM_Mesh.core.left_stats import LeftStats, counts  # noqa: E402
from LLM_Mesh.core.route_types import Attempt  # noqa: E402
from LLM_Mesh.core.scoring import ScoringPolicy  # noqa: E402

SP = ScoringPolicy()


def _st(nid: str, *, ok: bool = False, ttft: float | None = None, tok: float | None = None,
        at: float = 0.0) -> NodeStats:  # fmt: skip
    st = NodeStats(nid, ("m",), SP)
    if not ok:
        st.success.observe(0.0, at)
    if ttft is not None:
        st.ttft.observe(ttft, at)
    if tok is not None:
        st.per_token.observe(tok, at)
    return st


def _att(nid: str, started: float = 0.0, first_token: float | None = None) -> Attempt:
    att = Attempt(nid, "m", started)
    att.lineage = object()  # begun on a registration of the node
    att.first_token_at = first_token
    return att


def test_the_smallest_policy_is_allowed_and_a_bad_one_said_in_words() -> None:
    LeftPolicy(keep_s=0.0, max_kept=0)
    LeftPolicy(keep_s=0.5, max_kept=1)
    with pytest.raises(ValueError, match=r"^need keep_s >= 0 and max_kept >= 0$"):
        LeftPolicy(keep_s=-0.5)


def test_a_peak_above_its_prior_counts_at_its_prior_not() -> None:
    """A success EWMA of 1 and one peak-EWMA at or above its prior: only above counts."""
    assert not counts(_st("n", ok=True), 0.0, SP)
    assert not counts(_st("n", ok=True, ttft=SP.prior_ttft_ms), 0.0, SP)
    assert counts(_st("n", ok=True, ttft=SP.prior_ttft_ms + 1.0), 0.0, SP)
    assert not counts(_st("n", ok=True, tok=SP.prior_per_token_ms), 0.0, SP)
    assert counts(_st("n", ok=True, tok=SP.prior_per_token_ms + 1.0), 0.0, SP)


def test_a_second_goodbye_replaces_the_first() -> None:
    """A node kept, back, judged well, gone again: what it left the first time is dropped."""
    ls = LeftStats(LeftPolicy(), SP)
    ls.keep(_st("n"), 0.0)
    ls.keep(_st("n", ok=True), 1.0)  # as good as a newcomer now: nothing to keep
    assert "n" not in ls and len(ls) == 0


def test_one_kept_at_a_max_of_one_the_newest() -> None:
    ls = LeftStats(LeftPolicy(max_kept=1), SP)
    ls.keep(_st("a"), 0.0)
    assert "a" in ls
    ls.keep(_st("b"), 1.0)
    assert "b" in ls and "a" not in ls


def test_restored_only_when_kept_and_said_so() -> None:
    ls = LeftStats(LeftPolicy(keep_s=10.0), SP)
    st = _st("n", ttft=900.0, at=5000.0)
    ls.keep(st, 5000.0)  # late on the clock: an age, not a sum of times
    back = NodeStats("n", ("m",), SP)
    assert ls.restore(back, 5009.0) is True
    assert back.ttft is st.ttft and back.success is st.success
    assert ls.restore(NodeStats("x", ("m",), SP), 5009.0) is False  # never kept
    assert ls.restore(NodeStats("n", ("m",), SP), 5009.0) is False  # given back already


def test_dropped_exactly_keep_s_after_the_goodbye_the_oldest_first() -> None:
    ls = LeftStats(LeftPolicy(keep_s=10.0), SP)
    ls.keep(_st("a"), 5000.0)
    ls.keep(_st("b"), 5005.0)
    ls.keep(_st("ok", ok=True), 5009.0)  # nothing to keep; the stale ones go
    assert "a" in ls and "b" in ls
    ls.keep(_st("ok", ok=True), 5010.0)
    assert "a" not in ls and "b" in ls
    assert ls.restore(NodeStats("b", ("m",), SP), 5014.0) is True


def test_a_late_failure_is_only_a_hard_failure_of_a_known_registration() -> None:
    ls = LeftStats(LeftPolicy(), SP)
    st = NodeStats("n", ("m",), SP)
    for outcome in (Outcome.SUCCESS, Outcome.CANCELLED, Outcome.OVERLOADED):
        assert ls.failed(_att("n"), 1.0, outcome, st) is False
    unknown = Attempt("n", "m", 0.0)  # begun while the node was unknown
    assert ls.failed(unknown, 1.0, Outcome.TIMEOUT, st) is False
    assert st.success.value == 1.0 and len(ls) == 0
    assert ls.failed(_att("n"), 1.0, Outcome.SERVER_ERROR, st) is True
    assert st.success.value == 0.0


def test_a_late_failure_adds_to_what_the_node_left_with() -> None:
    ls = LeftStats(LeftPolicy(), SP)
    ls.keep(_st("n", ttft=5000.0), 0.0)
    assert ls.failed(_att("n"), 1.0, Outcome.SERVER_ERROR, None) is False
    back = NodeStats("n", ("m",), SP)
    assert ls.restore(back, 2.0)
    assert back.ttft.peak == 5000.0  # what it left with, not a newcomer's


def test_only_a_timeout_before_the_first_token_is_a_ttft_sample() -> None:
    ls = LeftStats(LeftPolicy(), SP)
    ls.failed(_att("err"), 30.0, Outcome.SERVER_ERROR, None)
    ls.failed(_att("late", first_token=1.0), 30.0, Outcome.TIMEOUT, None)
    ls.failed(_att("hung", started=10.0), 30.0, Outcome.TIMEOUT, None)
    got = {}
    for nid in ("err", "late", "hung"):
        got[nid] = NodeStats(nid, ("m",), SP)
        assert ls.restore(got[nid], 30.0)
        assert got[nid].success.value == 0.0
    assert got["err"].ttft.peak is None and got["late"].ttft.peak is None
    assert got["hung"].ttft.peak == 20_000.0


def test_a_late_failure_away_is_kept_within_max_kept_the_newest_wins() -> None:
    none = LeftStats(LeftPolicy(max_kept=0), SP)
    assert none.failed(_att("a"), 1.0, Outcome.TIMEOUT, None) is False and len(none) == 0
    one = LeftStats(LeftPolicy(max_kept=1), SP)
    one.failed(_att("a"), 1.0, Outcome.TIMEOUT, None)
    assert "a" in one
    one.failed(_att("b"), 2.0, Outcome.TIMEOUT, None)
    assert "b" in one and "a" not in one
    two = LeftStats(LeftPolicy(max_kept=2), SP)
    two.keep(_st("a"), 0.0)
    two.failed(_att("b"), 1.0, Outcome.TIMEOUT, None)
    assert "a" in two and "b" in two
