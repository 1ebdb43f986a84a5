"""LRU load/unload under a memory budget (core/memory_budget.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.memory_budget import LoadedInfo, plan_load


def test_fits_in_free_memory() -> None:
    d = plan_load("b", 30, {"a": LoadedInfo(50, last_used=1.0)}, budget=100)
    assert d.load and d.unload == []


def test_unloads_least_recently_used_idle_first() -> None:
    loaded = {
        "old": LoadedInfo(40, last_used=1.0),
        "mid": LoadedInfo(40, last_used=5.0),
        "new": LoadedInfo(20, last_used=9.0),
    }
    d = plan_load("x", 40, loaded, budget=100)
    assert d.load and d.unload == ["old"]
    d = plan_load("x", 70, loaded, budget=100)
    assert d.load and d.unload == ["old", "mid"]


def test_never_unloads_busy_models() -> None:
    loaded = {
        "old-busy": LoadedInfo(60, last_used=1.0, in_flight=2),
        "new-idle": LoadedInfo(30, last_used=9.0),
    }
    d = plan_load("x", 40, loaded, budget=100)
    assert d.load and d.unload == ["new-idle"]
    d = plan_load("x", 50, loaded, budget=100)
    assert not d.load and d.unload == []
    assert "old-busy" in d.reason


def test_larger_than_budget_refused() -> None:
    d = plan_load("huge", 200, {}, budget=100)
    assert not d.load and "whole budget" in d.reason


def test_already_loaded() -> None:
    d = plan_load("a", 10, {"a": LoadedInfo(10, 0.0)}, budget=100)
    assert not d.load and d.unload == [] and "already loaded" in d.reason


def test_exact_fit_and_negative() -> None:
    assert plan_load("a", 100, {}, budget=100).load
    with pytest.raises(ValueError):
        plan_load("a", -1, {}, budget=100)


def test_default_budget_is_80_percent_of_available() -> None:
    from LLM_Mesh.core.memory_budget import default_budget

    assert default_budget(10_000) == 8_000
    assert default_budget(10_000, 0.5) == 5_000
    for bad in ((-1, 0.8), (10, 0.0), (10, 1.5)):
        with pytest.raises(ValueError):
            default_budget(*bad)


def test_load_time_estimate_prefers_the_measured_time() -> None:
    from LLM_Mesh.core.memory_budget import estimate_load_time_s

    assert estimate_load_time_s(2_000_000_000) == 2.5  # 0.5 s + 2 GB at 1 GB/s
    assert estimate_load_time_s(2_000_000_000, measured_s=0.123456) == 0.123
    with pytest.raises(ValueError):
        estimate_load_time_s(-1)


def test_zero_sizes_are_valid_and_negatives_are_not() -> None:
    assert plan_load("empty", 0, {}, budget=0).load  # nothing to load fits anywhere
    assert plan_load("a", 0, {"b": LoadedInfo(10, 0.0)}, budget=10).unload == []
    for size, budget in ((-1, 10), (10, -1)):
        with pytest.raises(ValueError, match=r"^size and budget must not be negative$"):
            plan_load("a", size, {}, budget=budget)


def test_a_model_serving_one_request_is_busy() -> None:
    loaded = {
        "one-request": LoadedInfo(50, last_used=1.0, in_flight=1),
        "idle": LoadedInfo(50, last_used=2.0),
    }
    d = plan_load("x", 60, loaded, budget=100)
    assert d.load is False and d.unload == []
    assert d.reason == (
        "x needs 0.00 GB; only 0.00 GB could be freed (busy, not unloadable: one-request)"
    )


def test_refusal_reasons_in_gigabytes() -> None:
    gb = 1_000_000_000
    d = plan_load("big", 3 * gb, {}, budget=2 * gb)
    assert d.load is False
    assert d.reason == "big needs 3.00 GB, more than the whole budget of 2.00 GB"
    loaded = {"a": LoadedInfo(gb, 1.0, in_flight=2), "b": LoadedInfo(gb, 2.0, in_flight=1)}
    d = plan_load("x", 2 * gb, loaded, budget=2 * gb)
    assert d.reason == ("x needs 2.00 GB; only 0.00 GB could be freed (busy, not unloadable: a, b)")
    d = plan_load("x", 2 * gb, {"c": LoadedInfo(gb // 2, 1.0, in_flight=1)}, budget=2 * gb)
    assert d.reason == "x needs 2.00 GB; only 1.50 GB could be freed (busy, not unloadable: c)"


def test_reasons_when_loading() -> None:
    gb = 1_000_000_000
    d = plan_load("x", gb, {"a": LoadedInfo(gb, 1.0)}, budget=3 * gb)
    assert d.load and d.reason == "fits in the 2.00 GB free"
    loaded = {"a": LoadedInfo(gb, 1.0), "b": LoadedInfo(gb, 2.0), "c": LoadedInfo(gb, 3.0)}
    d = plan_load("x", 2 * gb, loaded, budget=3 * gb)
    assert d.load and d.unload == ["a", "b"]
    assert d.reason == "unloading least recently used idle model(s) a, b to make room"
    d = plan_load("a", gb, loaded, budget=3 * gb)
    assert d.load is False and d.reason == "a is already loaded"


def test_equal_last_use_breaks_ties_by_name() -> None:
    loaded = {"b": LoadedInfo(40, 5.0), "a": LoadedInfo(40, 5.0), "c": LoadedInfo(20, 9.0)}
    assert plan_load("x", 40, loaded, budget=100).unload == ["a"]


def test_default_budget_edges() -> None:
    from LLM_Mesh.core.memory_budget import default_budget

    assert default_budget(0) == 0  # no RAM free: a zero budget, not an error
    assert default_budget(1000, 1.0) == 1000  # the whole of it is allowed
    assert default_budget(999) == 799  # rounded down to whole bytes
    with pytest.raises(ValueError, match=r"^available_bytes must not be negative$"):
        default_budget(-1)
    with pytest.raises(ValueError, match=r"^fraction must be in \(0, 1\], got 1.5$"):
        default_budget(10, 1.5)


def test_load_time_estimate_edges() -> None:
    from LLM_Mesh.core.memory_budget import estimate_load_time_s

    assert estimate_load_time_s(0) == 0.5  # the fixed overhead only
    assert estimate_load_time_s(0, measured_s=0.0) == 0.0  # a measured instant load counts
    assert estimate_load_time_s(1_234_567) == 0.501
    assert estimate_load_time_s(10, measured_s=-1.0) == 0.5  # a bogus measurement is ignored
    with pytest.raises(ValueError, match=r"^size must not be negative$"):
        estimate_load_time_s(-1)
