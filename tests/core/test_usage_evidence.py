"""The usage audit's evidence as shared rows (``core/usage_evidence.py``) judges as the
in-memory audit does (``core/usage_audit.py``): the same answers in the same windows give
the same evidence and verdicts, whether folded window by window or still open."""

from __future__ import annotations

import random

from LLM_Mesh.core.usage_audit import AuditPolicy, AuditSample, Evidence, NodeUsage, UsageAudit
from LLM_Mesh.core.usage_evidence import (
    bucket_of,
    fold_window,
    fold_windows,
    open_bucket,
    standing,
    unread_sums,
    verdicts,
    window_due,
)

POLICY = AuditPolicy(min_requests=40, check_every=10**9, bucket_s=600.0, window=10**6)
NODES = {"a": 0.25, "b": 0.3, "c": 0.28, "liar": 1.0}


def _sample(rng: random.Random, share: float) -> AuditSample:
    cap = rng.randint(20, 400)
    return AuditSample(min(cap, round(cap * share)), cap, 40, 160)


def test_folded_and_open_windows_judge_as_the_in_memory_audit() -> None:
    rng = random.Random(7)
    memory = UsageAudit(POLICY)
    windows: dict[int, dict[str, NodeUsage]] = {}
    for w in range(4):  # 4 windows; the liar online in the last 2 only, "c" in the first
        for _ in range(25):
            for node, share in NODES.items():
                if (node == "liar" and w < 2) or (node == "c" and w > 0):
                    continue
                now = w * 600.0 + 5.0
                s = _sample(rng, share)
                memory.observe(node, "m", s, now)
                windows.setdefault(bucket_of(now, POLICY), {}).setdefault(node, NodeUsage()).add(s)
    closed = {b: u for b, u in windows.items() if window_due(b, 3 * 600.0 + 30.0, POLICY, 30.0)}
    assert sorted(closed) == [0, 1, 2]  # the last window still open
    evidence = fold_windows({}, closed, POLICY)
    now = standing(evidence, [windows[3]], POLICY)
    for node in NODES:
        mine, theirs = now.get(node, Evidence()), memory.evidence(node, "m")
        assert theirs is not None
        assert (mine.requests, mine.peer_requests) == (theirs.requests, theirs.peer_requests)
        for kind in ("completion", "prompt"):
            assert abs(mine.priced[kind] - theirs.priced[kind]) < 1e-6
            assert abs(mine.ref[kind] - theirs.ref[kind]) < 1e-6
    found = verdicts("m", now, POLICY)
    assert [v.node_id for v in found] == ["liar"]
    assert found[0] == memory.verdict("liar", "m")


def test_a_window_is_due_only_after_its_grace() -> None:
    assert bucket_of(1205.0, POLICY) == 2
    assert not window_due(2, 1800.0 + 29.0, POLICY, 30.0)
    assert window_due(2, 1800.0 + 30.0, POLICY, 30.0)
    assert bucket_of(float("inf"), POLICY) == 0


def test_unread_sums() -> None:
    read = {(1, "a"): (3, 9), (1, "b"): (2, 2), (2, "b"): (5, 5)}
    now = {(1, "a"): (3, 9), (1, "b"): (4, 6), (2, "b"): (1, 1), (2, "c"): (1, 2)}
    # a: nothing new; b: 2 more in window 1, window 2 started over (1 new); c: all new
    assert unread_sums(now, read) == {"b": (3, 5), "c": (1, 2)}


def _usage(n: int, completion: int = 10) -> NodeUsage:
    u = NodeUsage()
    for _ in range(n):
        u.add(AuditSample(completion, 100, 40, 160))
    return u


def test_windows_shorter_than_a_second_are_cut_at_their_own_length() -> None:
    half = AuditPolicy(bucket_s=0.5)
    assert bucket_of(1.2, half) == 2
    assert not window_due(2, 1.49, half, 0.0)
    assert window_due(2, 1.5, half, 0.0)


def test_no_grace_or_a_negative_one_is_due_at_the_window_end() -> None:
    assert not window_due(2, 1799.9, POLICY, 0.0)
    assert window_due(2, 1800.0, POLICY, 0.0)
    assert window_due(2, 1800.0, POLICY, -60.0)


def test_a_sum_for_a_folded_window_goes_to_the_first_window_still_open() -> None:
    assert open_bucket(5, -1) == 5  # nothing folded yet
    assert open_bucket(5, 4) == 5  # the window after the last folded
    assert open_bucket(3, 4) == 5  # a late replica's window already folded
    assert open_bucket(3, 9) == 10


def test_a_node_that_adds_nothing_leaves_the_rest_of_the_window_folded() -> None:
    """A node with no answer counted first in the window (its add is None) passes over
    it: the nodes after it are folded all the same."""
    window = {"quiet": NodeUsage(), "a": _usage(5), "b": _usage(5, 20)}
    out = fold_window({}, window, POLICY)
    assert sorted(out) == ["a", "b"]
    assert (out["a"].requests, out["a"].peer_requests) == (5, 5)


def test_evidence_at_exactly_the_window_is_halved() -> None:
    """Past ``window`` answers means at it: 2 answers with a window of 2 (the least the
    policy allows) halve the evidence to 1."""
    small = AuditPolicy(bucket_min=2, window=2)
    out = fold_window({}, {"a": _usage(2), "b": _usage(2, 20)}, small)
    assert out["a"].requests == 1
    assert out["a"].priced["completion"] == 10.0  # 20 priced, halved
    wide = AuditPolicy(bucket_min=2, window=3)
    assert fold_window({}, {"a": _usage(2), "b": _usage(2, 20)}, wide)["a"].requests == 2


def test_standing_counts_an_open_window_for_a_node_with_no_folded_evidence() -> None:
    now = standing({}, [{"a": _usage(4), "b": _usage(4, 30)}], POLICY)
    assert sorted(now) == ["a", "b"]
    assert (now["a"].requests, now["a"].peer_requests, now["a"].peers) == (4, 4, 1)
    assert now["b"].priced["completion"] == 120.0
