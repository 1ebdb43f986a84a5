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
