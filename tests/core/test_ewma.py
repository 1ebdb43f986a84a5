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
