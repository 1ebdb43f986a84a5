import math

import pytest

from LLM_Mesh.core.ewma import Ewma, PeakEwma


def test_peak_ewma_jumps_at_once_on_one_slow_sample() -> None:
    e = PeakEwma(tau_s=10.0)
    for t in range(20):
        e.observe(50.0, float(t))
    e.observe(2000.0, 20.0)
    assert e.get(20.0) == 2000.0


def test_peak_ewma_blends_down_slowly_and_decays_when_idle() -> None:
    e = PeakEwma(tau_s=10.0, idle_tau_s=60.0)
    e.observe(1000.0, 0.0)
    e.observe(100.0, 1.0)
    v = e.get(1.0)
    assert v is not None and 900.0 < v < 1000.0  # one fast sample barely moves it
    assert e.get(61.0) == pytest.approx(v * math.exp(-1.0))


def test_ewma_time_weighted_and_validates() -> None:
    e = Ewma(tau_s=1.0, initial=1.0)
    e.observe(0.0, 0.0)
    assert e.value == 0.0  # first sample replaces the prior
    e.observe(1.0, 100.0)  # long gap: old value forgotten
    assert e.value == pytest.approx(1.0)
    with pytest.raises(ValueError):
        Ewma(tau_s=0.0)
    with pytest.raises(ValueError):
        PeakEwma(1.0).observe(-1.0, 0.0)


def test_ewma_blends_by_elapsed_time() -> None:
    e = Ewma(tau_s=10.0)
    assert e.value is None
    e.observe(100.0, 50.0)
    assert e.value == 100.0
    e.observe(0.0, 60.0)  # 10 s later: the old value keeps weight e^-1
    assert e.value == pytest.approx(100.0 * math.exp(-1.0))
    e.observe(0.0, 60.0)  # same instant: no decay, the sample has no weight
    assert e.value == pytest.approx(100.0 * math.exp(-1.0))
    e.observe(1000.0, 59.0)  # a clock that stepped back counts as no time
    assert e.value == pytest.approx(100.0 * math.exp(-1.0))


def test_ewma_initial_value_until_the_first_sample() -> None:
    e = Ewma(tau_s=1.0, initial=0.75)
    assert e.value == 0.75


def test_peak_ewma_blends_by_elapsed_time_and_equal_samples_change_nothing() -> None:
    e = PeakEwma(tau_s=10.0, idle_tau_s=1e9)
    e.observe(100.0, 50.0)
    e.observe(100.0, 55.0)
    assert e.get(55.0) == 100.0
    e.observe(0.0, 65.0)  # 10 s after the last sample
    assert e.get(65.0) == pytest.approx(100.0 * math.exp(-1.0))
    e.observe(0.0, 65.0)  # no time passed: no change
    assert e.get(65.0) == pytest.approx(100.0 * math.exp(-1.0))


def test_peak_ewma_first_sample_at_any_time() -> None:
    e = PeakEwma(tau_s=10.0)
    assert e.get(0.0) is None
    e.observe(100.0, 1000.0)
    assert e.get(1000.0) == 100.0
    assert e.get(999.0) == 100.0  # reading before the sample: not decayed
    assert e.get(1000.5) == pytest.approx(100.0 * math.exp(-0.05))


def test_tau_validation_messages() -> None:
    with pytest.raises(ValueError, match=r"tau_s must be > 0, got -1\.0"):
        Ewma(tau_s=-1.0)
    with pytest.raises(ValueError, match="tau_s must be > 0"):
        PeakEwma(tau_s=1.0, idle_tau_s=0.0)
    with pytest.raises(ValueError, match=r"cannot be negative, got -2\.0"):
        PeakEwma(1.0).observe(-2.0, 0.0)
