"""``keyed-rush`` with the keyed requests' opt-in wait for a slot (``--keyed-wait``):
deterministic per seed, and the wait does what it is for on the virtual clock."""

from __future__ import annotations

import dataclasses
import math

import pytest

from LLM_Mesh.simulator.scenarios import MAX_WAIT_S, Report, run_scenario


def _run(seed: int, wait_s: float) -> Report:
    return run_scenario("keyed-rush", "ours", seed, duration_s=15.0, anonymous_share=1.0,
                        keyed_wait_s=wait_s)  # fmt: skip


def _figures(r: Report) -> Report:
    return dataclasses.replace(r, wall_s=0.0)


def test_a_run_with_the_wait_is_a_pure_function_of_its_seed() -> None:
    a, b, c = _run(2, 10.0), _run(2, 10.0), _run(3, 10.0)
    assert _figures(a) == _figures(b)
    assert _figures(a) != _figures(c)


def test_keyed_requests_that_wait_are_refused_less_and_counted() -> None:
    without, waited = _run(1, 0.0), _run(1, 10.0)
    k0, k1 = without.classes["keyed"], waited.classes["keyed"]
    assert k0.waited == 0 and math.isnan(k0.gate_wait_p50_ms)
    assert k0.refused > 0  # every node full: refused at once without a wait
    assert k1.waited > 0 and k1.refused < k0.refused
    assert 0 < k1.gate_wait_p50_ms <= k1.gate_wait_p95_ms <= 10_000.0
    assert waited.classes["anonymous"].waited == 0  # only keyed requests opt in here


def test_the_wait_is_checked() -> None:
    for bad in (-1.0, MAX_WAIT_S + 1, math.nan):
        with pytest.raises(ValueError):
            run_scenario("keyed-rush", "ours", 1, duration_s=1.0, keyed_wait_s=bad)
