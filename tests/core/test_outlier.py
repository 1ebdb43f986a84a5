import math

import pytest

from LLM_Mesh.core.outlier import EjectionPolicy, OutlierDetector, may_eject


def test_ejection_grows_with_count_and_caps() -> None:
    d = OutlierDetector(EjectionPolicy(base_s=10.0, max_s=25.0, forget_after_s=1000.0))
    now = 0.0
    lengths = []
    for _ in range(4):
        until = d.eject("a", now)
        lengths.append(until - now)
        assert d.release_due(until - 0.001) == []
        assert d.release_due(until) == ["a"]
        now = until + 1.0
    assert lengths == [10.0, 20.0, 25.0, 25.0]


def test_count_forgotten_after_quiet_period() -> None:
    d = OutlierDetector(EjectionPolicy(base_s=10.0, max_s=100.0, forget_after_s=50.0))
    d.release_due(d.eject("a", 0.0))
    assert d.eject("a", 100.0) == 110.0  # reset: base again, not 2 × base


def test_half_cap() -> None:
    assert may_eject(0, 11, 0.5) and may_eject(4, 11, 0.5)
    assert not may_eject(5, 11, 0.5)
    assert not may_eject(0, 1, 0.5)  # never eject a model's only node


def test_slow_start_ramps_linearly() -> None:
    d = OutlierDetector(EjectionPolicy(base_s=10.0, slow_start_s=20.0, min_weight=0.05))
    assert d.weight("a", 0.0) == 1.0
    d.eject("a", 0.0)
    assert d.weight("a", 5.0) == 0.0
    d.release_due(10.0)
    assert d.weight("a", 10.0) == 0.05
    assert d.weight("a", 20.0) == pytest.approx(0.5)
    assert d.weight("a", 30.0) == 1.0


def test_policy_validates() -> None:
    with pytest.raises(ValueError):
        EjectionPolicy(base_s=10.0, max_s=5.0)
    with pytest.raises(ValueError):
        EjectionPolicy(max_ejected_fraction=1.5)


def test_policy_edges() -> None:
    for kw in (
        {"base_s": 0.0},
        {"base_s": -1.0},
        {"max_ejected_fraction": -0.1},
        {"slow_start_s": -1.0},
        {"min_weight": 0.0},
        {"min_weight": 1.5},
    ):
        with pytest.raises(ValueError):
            EjectionPolicy(**kw)  # type: ignore[arg-type]
    # the limits themselves are allowed
    EjectionPolicy(base_s=0.5, max_s=0.5, max_ejected_fraction=0.0)
    EjectionPolicy(max_ejected_fraction=1.0, slow_start_s=0.0, min_weight=1.0)
    with pytest.raises(ValueError, match="count starts at 1"):
        EjectionPolicy().duration(0)


def test_a_node_never_ejected_has_no_record() -> None:
    d = OutlierDetector()
    assert d.ejection_count("a") == 0 and not d.is_ejected("a")
    assert d.weight("a", 100.0) == 1.0
    assert d.release_due(1e9) == []


def test_first_ejection_lasts_base_even_long_after_start() -> None:
    d = OutlierDetector(EjectionPolicy(base_s=10.0, max_s=100.0, forget_after_s=50.0))
    assert d.eject("a", 5.0) == 15.0 and d.ejection_count("a") == 1
    assert d.eject("a", 6.0) == 15.0  # ejected already: unchanged
    assert d.ejection_count("a") == 1 and d.is_ejected("a")


def test_forget_after_counts_from_the_end_of_the_last_ejection() -> None:
    pol = EjectionPolicy(base_s=10.0, max_s=100.0, forget_after_s=50.0)
    d = OutlierDetector(pol)
    d.release_due(d.eject("a", 0.0))  # out 0..10
    assert d.eject("a", 60.0) == 80.0  # clear for exactly 50 s: remembered, 2 × base
    d.release_due(80.0)
    assert d.ejection_count("a") == 2
    big = OutlierDetector(pol)
    big.release_due(big.eject("b", 1000.0))  # out 1000..1010
    assert big.eject("b", 1020.0) == 1040.0  # 10 s later: 2 × base


def test_release_reports_each_node_once_and_ignores_stale_heap_entries() -> None:
    d = OutlierDetector(EjectionPolicy(base_s=10.0, max_s=100.0))
    d.eject("a", 0.0)
    d.eject("b", 5.0)
    d.forget("a")  # left the mesh while ejected
    assert d.release_due(20.0) == ["b"]
    assert d.release_due(20.0) == [] and not d.is_ejected("b")
    assert d.ejection_count("a") == 0
    d.forget("nobody")  # unknown: nothing happens


def test_weight_ramp_edges() -> None:
    d = OutlierDetector(EjectionPolicy(base_s=10.0, slow_start_s=20.0, min_weight=0.05))
    d.release_due(d.eject("a", 0.0))  # back at 10
    assert d.weight("a", 29.99) < 1.0
    assert d.weight("a", 30.0) == 1.0
    no_ramp = OutlierDetector(EjectionPolicy(base_s=10.0, slow_start_s=0.0))
    no_ramp.release_due(no_ramp.eject("a", 0.0))
    assert no_ramp.weight("a", 10.0) == 1.0  # no slow start: full weight at once
    half = OutlierDetector(EjectionPolicy(base_s=10.0, slow_start_s=0.5, min_weight=0.05))
    half.release_due(half.eject("a", 0.0))
    assert half.weight("a", 10.25) == 0.5  # a ramp shorter than a second still ramps


def test_next_release_and_all_full_weight_follow_ejections() -> None:
    """The two attributes the router's pick reads instead of asking the detector."""
    d = OutlierDetector(EjectionPolicy(base_s=10.0, max_s=100.0, slow_start_s=5.0))
    assert d.next_release == math.inf and d.all_full_weight
    d.eject("a", 0.0)
    d.eject("b", 5.0)
    assert d.next_release == 10.0 and not d.all_full_weight
    assert d.release_due(9.0) == [] and d.next_release == 10.0
    assert d.release_due(12.0) == ["a"] and d.next_release == 15.0
    d.eject("a", 12.0)  # its second ejection: 20 s, back at 32
    assert d.next_release == 15.0
    assert d.release_due(40.0) == ["b", "a"] and d.next_release == math.inf
    assert not d.all_full_weight  # both still remembered (their slow start, their counts)
    d.forget("a")
    assert not d.all_full_weight
    d.forget("b")
    assert d.all_full_weight
    d.eject("c", 50.0)
    d.forget("c")  # forgotten while ejected: its stale heap entry keeps next_release
    assert d.all_full_weight and d.next_release == 60.0
    assert d.release_due(60.0) == [] and d.next_release == math.inf


def test_all_full_weight_means_every_weight_is_one() -> None:
    d = OutlierDetector(EjectionPolicy(base_s=10.0, slow_start_s=20.0))
    for t in (0.0, 5.0, 11.0, 100.0):
        if d.all_full_weight:
            assert d.weight("a", t) == 1.0 and d.weight("b", t) == 1.0
        if t == 0.0:
            d.eject("a", t)
        d.release_due(t)
    assert not d.all_full_weight and d.weight("a", 11.0) < 1.0


def test_a_released_node_is_not_ejected_as_a_bool_callers_add_up() -> None:
    """``is_ejected`` is summed by the registry's metrics (``ejected += ...``): after a
    release it is ``False`` itself, not merely falsy."""
    d = OutlierDetector(EjectionPolicy(base_s=10.0))
    assert d.is_ejected("a") is False
    until = d.eject("a", 0.0)
    assert d.is_ejected("a") is True
    assert d.release_due(until) == ["a"]
    assert d.is_ejected("a") is False
    assert sum([d.is_ejected("a"), d.is_ejected("b")]) == 0


def test_each_policy_refusal_in_its_words() -> None:
    cases: list[tuple[dict[str, float], str]] = [
        ({"base_s": 0.0}, "need 0 < base_s <= max_s"),
        ({"base_s": 10.0, "max_s": 5.0}, "need 0 < base_s <= max_s"),
        ({"max_ejected_fraction": 1.5}, "max_ejected_fraction must be within [0, 1]"),
        ({"slow_start_s": -1.0}, "need slow_start_s >= 0 and 0 < min_weight <= 1"),
        ({"min_weight": 0.0}, "need slow_start_s >= 0 and 0 < min_weight <= 1"),
    ]
    for kwargs, words in cases:
        with pytest.raises(ValueError) as exc:
            EjectionPolicy(**kwargs)
        assert str(exc.value) == words, kwargs
    with pytest.raises(ValueError) as exc:
        EjectionPolicy().duration(0)
    assert str(exc.value) == "count starts at 1"


def test_a_node_that_leaves_while_ejected_comes_back_ejected() -> None:
    """A goodbye and a registration again must not end an ejection (found 2026-12-05,
    attack30): ``forget`` with the time keeps a state that still counts (ejected, or within
    ``forget_after_s`` of its last ejection: its count and slow start), and drops it once
    stale, at a later ``forget``; without the time it drops it, as before."""
    d = OutlierDetector(EjectionPolicy(base_s=30, forget_after_s=600))
    d.eject("n", 0.0)
    d.forget("n", 1.0)
    assert d.is_ejected("n") and d.ejection_count("n") == 1
    assert d.release_due(31.0) == ["n"]
    assert d.weight("n", 32.0) < 1.0  # slow start, as if it had stayed
    d.forget("n", 40.0)  # left again, ejected lately: its count stays
    assert d.eject("n", 50.0) == 50.0 + 60.0 and d.ejection_count("n") == 2
    d.forget("n", 51.0)
    d.eject("m", 2000.0)
    d.forget("m", 2001.0)  # any later forget drops what went stale ...
    assert d.ejection_count("n") == 0 and d.ejection_count("m") == 1
    d.forget("m")  # ... and one without the time drops the node's state
    assert d.ejection_count("m") == 0 and not d.is_ejected("m")
    assert d.all_full_weight


def test_a_node_the_pool_cannot_spare_is_rested_as_an_ejection_would_be() -> None:
    """``spare``: not ejected (routing unchanged: weight 1, nothing released), but
    ``back_in`` says when a retry is worth it, growing as ejections do; a failure while
    resting adds nothing; forgotten after ``forget_after_s`` clear."""
    det = OutlierDetector(EjectionPolicy(base_s=30.0, max_s=300.0, forget_after_s=600.0))
    assert det.back_in("a", 0.0) == 0.0  # never failed
    assert det.spare("a", 0.0) == 30.0
    assert not det.is_ejected("a") and det.weight("a", 1.0) == 1.0 and det.all_full_weight
    assert det.back_in("a", 10.0) == 20.0
    assert det.spare("a", 10.0) == 30.0  # while resting: the same rest
    assert det.spare("a", 31.0) == 31.0 + 60.0  # the next: longer
    assert det.back_in("a", 91.0) == 0.0
    assert det.spare("a", 91.0 + 601.0) == 692.0 + 30.0  # clear for 600 s: from one again
    assert det.release_due(10_000.0) == [] and det.ejection_count("a") == 0


def test_back_in_reads_an_ejection_before_a_rest() -> None:
    det = OutlierDetector(EjectionPolicy(base_s=30.0))
    det.spare("a", 0.0)
    det.eject("a", 5.0)  # the pool grew: ejected now, until 35
    assert det.back_in("a", 10.0) == 25.0
    det.release_due(35.0)
    assert det.back_in("a", 35.0) == 0.0


def test_a_goodbye_keeps_a_recent_rest() -> None:
    det = OutlierDetector(EjectionPolicy(base_s=30.0, forget_after_s=600.0))
    det.spare("a", 0.0)
    det.forget("a", 10.0)  # said goodbye while resting: it comes back as it left
    assert det.back_in("a", 10.0) == 20.0
    det.forget("a", 700.0)  # stale: dropped
    assert det.back_in("a", 700.0) == 0.0 and det.spare("a", 700.0) == 730.0


def test_rests_alone_keep_every_weight_whole() -> None:
    det = OutlierDetector(EjectionPolicy(base_s=30.0))
    det.eject("a", 0.0)
    det.spare("b", 0.0)
    det.forget("a")  # gone: only b's rest is left, which weighs nothing
    assert det.all_full_weight and det.weight("b", 1.0) == 1.0


# Rests and goodbyes at their boundaries (mutation testing, mut32)
P = EjectionPolicy(base_s=10.0, max_s=100.0, forget_after_s=50.0)


def test_a_failure_at_exactly_the_end_of_a_rest_starts_the_next_longer_one() -> None:
    for start in (0.0, 1e7):  # late on the clock too
        d = OutlierDetector(P)
        assert d.spare("a", start) == start + 10.0
        assert d.spare("a", start + 5.0) == start + 10.0  # while resting: the same rest
        assert d.spare("a", start + 10.0) == start + 10.0 + 20.0  # the second rest
        # exactly forget_after_s clear of the last rest: still counted
        assert d.spare("a", start + 30.0 + 50.0) == start + 80.0 + 30.0
        # more than forget_after_s clear: forgotten, one rest again
        assert d.spare("a", start + 110.0 + 50.5) == start + 160.5 + 10.0


def test_an_ejected_node_still_in_a_pool_is_routed_at_full_weight() -> None:
    """Its pool could not spare it (the router keeps it there, rested): 1, not the slow
    start's least weight."""
    d = OutlierDetector(EjectionPolicy(base_s=10.0, slow_start_s=30.0, min_weight=0.05))
    d.eject("a", 0.0)
    assert d.routed_weight("a", 5.0) == 1.0
    d.release_due(10.0)
    assert d.routed_weight("a", 10.0) == 0.05  # released: the slow start
    assert d.routed_weight("a", 25.0) == 0.5


def test_a_goodbye_drops_a_state_stale_at_exactly_that_time() -> None:
    d = OutlierDetector(P)
    d.eject("a", 0.0)  # back at 10, stale at 60
    d.release_due(10.0)
    d.forget("a", 60.0)
    assert "a" not in d._nodes
    d.eject("b", 0.0)
    d.release_due(10.0)
    d.forget("b", 20.0)  # still counts: kept
    assert "b" in d._nodes
    d.forget("c", 60.0)  # a later goodbye at exactly b's stale time drops it
    assert "b" not in d._nodes


def test_a_goodbye_passes_over_a_kept_state_dropped_since() -> None:
    d = OutlierDetector(P)
    for node, at in (("a", 0.0), ("b", 1.0)):
        d.eject(node, at)
        d.release_due(at + 10.0)
        d.forget(node, at + 10.0)  # kept: stale at 60 and 61
    d.forget("a")  # dropped outright since
    d.forget("c", 100.0)
    assert "b" not in d._nodes and "a" not in d._nodes
