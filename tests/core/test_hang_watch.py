"""When a client takes a gateway for hung (core/hang_watch.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.hang_watch import DEFAULT_POLICY, HangPolicy, HangWatch, Probe


def test_the_default_gives_a_hung_gateway_up_after_about_9_s() -> None:
    """What the docs say: probes at 4 s and 7 s, each unanswered for 2 s."""
    p = DEFAULT_POLICY
    assert (p.first_s, p.every_s, p.probe_s, p.misses) == (4.0, 3.0, 2.0, 2)
    assert p.give_up_s == 9.0
    w = HangWatch(p, 100.0)
    assert w.probe_due(100.0) == 4.0
    assert w.probe_due(104.0) == 0.0
    assert not w.probed(104.0, Probe.SILENT)  # at 106: one miss
    assert w.probe_due(106.0) == 1.0  # the next at 107
    assert w.probed(107.0, Probe.SILENT)  # at 109: hung


def test_an_answered_probe_starts_the_misses_again() -> None:
    w = HangWatch(DEFAULT_POLICY, 0.0)
    assert not w.probed(4.0, Probe.SILENT)
    assert not w.probed(7.0, Probe.ANSWERED)  # alive: a slow gateway, not a hung one
    assert not w.probed(10.0, Probe.SILENT)
    assert w.probed(13.0, Probe.SILENT)


def test_a_live_gateway_is_never_given_up() -> None:
    w = HangWatch(DEFAULT_POLICY, 0.0)
    t = 4.0
    for _ in range(1000):  # ~50 min of probes, each answered
        assert not w.probed(t, Probe.ANSWERED)
        t += w.probe_due(t)
    assert w.missed == 0


def test_an_unknown_probe_says_nothing() -> None:
    """The client's own pool was full: neither a miss nor an answer."""
    w = HangWatch(HangPolicy(misses=2), 0.0)
    assert not w.probed(4.0, Probe.SILENT)
    assert not w.probed(7.0, Probe.UNKNOWN)
    assert w.missed == 1
    assert w.probed(10.0, Probe.SILENT)


def test_a_probe_longer_than_every_s_is_followed_at_once() -> None:
    p = HangPolicy(first_s=1.0, every_s=0.5, probe_s=2.0, misses=3)
    assert p.give_up_s == 1.0 + 2 * 2.0 + 2.0  # one probe at a time
    w = HangWatch(p, 0.0)
    w.probed(1.0, Probe.SILENT)  # ended at 3.0
    assert w.probe_due(3.0) == 0.0


@pytest.mark.parametrize(
    "kw",
    [{"first_s": 0}, {"every_s": -1}, {"probe_s": float("inf")}, {"misses": 0},
     {"first_s": float("nan")}],
)  # fmt: skip
def test_a_policy_that_could_not_work_is_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="misses"):
        HangPolicy(**kw)  # type: ignore[arg-type]


def test_one_miss_may_be_enough() -> None:
    """``misses=1`` is a policy (the least): one unanswered probe and the gateway is hung."""
    policy = HangPolicy(misses=1)
    assert policy.give_up_s == policy.first_s + policy.probe_s
    watch = HangWatch(policy, 0.0)
    assert watch.probed(4.0, Probe.SILENT)
    with pytest.raises(ValueError, match="misses >= 1"):
        HangPolicy(misses=0)
