"""The usage audit's evidence as shared rows (``core/usage_evidence.py``) judges as the
in-memory audit does (``core/usage_audit.py``): the same answers in the same windows give
the same evidence and verdicts, whether folded window by window or still open."""

from __future__ import annotations

import random

from LLM_Mesh.core.usage_audit import AuditPolicy, AuditSample, Evidence, NodeUsage, UsageAudit
from LLM_Mesh.core.usage_evidence import (
    bucket_of,
    fold_windows,
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
