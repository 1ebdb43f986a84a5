"""attack31: many node ids that failed a request (each rested or ejected) say goodbye within
the outlier detector's ``forget_after_s``: each goodbye must cost the same, however many
left before it (``OutlierDetector.forget``). docs/security.md, "Earnings"."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.core.outlier import EjectionPolicy, OutlierDetector


class _CountingDict(dict[str, Any]):
    """The detector's per-node states, counting how often all of them are read."""

    scans = 0

    def values(self) -> Any:
        type(self).scans += 1
        return super().values()


def _flood(d: OutlierDetector, n: int, now: float, *, eject: bool) -> float:
    """``n`` ids each fail a request (a one-node custom model's: rested; else ejected) and
    say goodbye at once, 0.01 s apart."""
    for i in range(n):
        nid = f"sybil-{i}"
        if eject:
            d.eject(nid, now)
        else:
            d.spare(nid, now)
        d.forget(nid, now)
        now += 0.01
    return now


@pytest.mark.parametrize("eject", [False, True], ids=["rested", "ejected"])
def test_a_flood_of_goodbyes_costs_each_goodbye_the_same(
    monkeypatch: pytest.MonkeyPatch, eject: bool
) -> None:
    """4,000 ids that each failed once and left within 40 s: every goodbye read every state
    kept of those that left before it (``[n for n in _left ...]`` and ``_stale`` each), and
    every state of the detector (``any(... _nodes.values())``): 8 million state reads, the
    gateway's event loop held ~9 ms a goodbye at 20,000 (found 2026-12-05, attack31: rests
    of one-node pools, ``small31``, are kept too). Now a goodbye reads only the states whose
    time is up."""
    d = OutlierDetector(EjectionPolicy())
    d._nodes = _CountingDict()
    calls = {"stale": 0}
    stale = OutlierDetector._stale

    def counted(self: OutlierDetector, st: Any, now: float) -> bool:
        calls["stale"] += 1
        return stale(self, st, now)

    monkeypatch.setattr(OutlierDetector, "_stale", counted)
    n = 4000
    now = _flood(d, n, 1000.0, eject=eject)
    assert calls["stale"] <= 4 * n, calls  # was n² / 2: 8,000,000
    assert _CountingDict.scans == 0
    # every state kept (each still counts: within forget_after_s of its end) ...
    assert all(d.back_in(f"sybil-{i}", now) >= 0.0 for i in range(n))
    assert all(d.is_ejected(f"sybil-{i}") == eject for i in range(n))
    assert d.all_full_weight is not eject
    # ... and dropped once stale, at a later goodbye
    later = now + 2 * d.policy.max_s + d.policy.forget_after_s
    d.forget("another", later)
    assert not d._left and not d._nodes
    assert d.all_full_weight


def test_a_node_back_and_failing_again_is_kept_until_its_new_state_goes_stale() -> None:
    """A node that left, came back, was ejected again and left again keeps its newer
    ejection however its first goodbye's time runs out (the heap's older entry read)."""
    p = EjectionPolicy(base_s=10.0, max_s=100.0, forget_after_s=50.0)
    d = OutlierDetector(p)
    d.eject("a", 0.0)
    d.forget("a", 1.0)  # kept: stale at 10 + 50 = 60
    d.release_due(10.0)
    d.eject("a", 40.0)  # back since and ejected again (the count grows: 20 s): until 60
    d.forget("a", 41.0)  # already kept: no second entry
    d.forget("b", 70.0)  # the first entry is due: read, not stale (60 + 50), kept again
    assert d.is_ejected("a") and d.ejection_count("a") == 2 and not d.all_full_weight
    d.forget("a", 109.0)  # told again while its state still counts
    d.forget("b", 111.0)
    assert "a" not in d._left and d.ejection_count("a") == 0 and d.all_full_weight
