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
