"""Ranking catalog models for a node (core/plan.py)."""

from __future__ import annotations

from LLM_Mesh.core.catalog import CATALOG, GB, get_spec
from LLM_Mesh.core.plan import ModelDemand, choose, plan_models, usable_ram_bytes
from LLM_Mesh.core.schemas import Hardware

BIG_DISK = 1000 * GB


def by_id(entries):  # type: ignore[no-untyped-def]
    return {e.model: e for e in entries}


def test_small_machine_only_gemma_fits() -> None:
    hw = Hardware(cpu_count=2, memory_bytes=2 * GB, disk_free_bytes=BIG_DISK)
    entries = plan_models(hw)
    assert entries[0].model == "gemma-3-270m" and entries[0].recommended
    e = by_id(entries)
    assert not e["mistral-7b"].fits and "memory" in e["mistral-7b"].reason
    assert {x.model for x in entries} == {s.id for s in CATALOG}


def test_ram_reserve() -> None:
    assert usable_ram_bytes(Hardware(memory_bytes=2 * GB)) == 1 * GB
    assert usable_ram_bytes(Hardware(memory_bytes=100 * GB)) == 80 * GB


def test_disk_limits_fit() -> None:
    hw = Hardware(memory_bytes=64 * GB, disk_free_bytes=1 * GB)
    e = by_id(plan_models(hw))
    assert e["gemma-3-270m"].fits
    assert not e["mistral-7b"].fits and "disk" in e["mistral-7b"].reason
    # Already hosted: no disk needed.
    e = by_id(plan_models(hw, already_hosted={"mistral-7b"}))
    assert e["mistral-7b"].fits and e["mistral-7b"].disk_needed_bytes == 0


def test_gpu_preferred_and_faster() -> None:
    gpu = {"name": "RTX", "memory_total_bytes": 24 * GB, "memory_free_bytes": 20 * GB}
    hw = Hardware(memory_bytes=64 * GB, disk_free_bytes=BIG_DISK, gpus=[gpu])
    e = by_id(plan_models(hw))
    assert e["mistral-7b"].device == "gpu"
    assert e["deepseek-llm-67b-chat"].device == "cpu"  # 34 GB > 20 GB free VRAM
    cpu_only = by_id(plan_models(Hardware(memory_bytes=64 * GB, disk_free_bytes=BIG_DISK)))
    assert e["mistral-7b"].est_tokens_per_s > cpu_only["mistral-7b"].est_tokens_per_s  # type: ignore[operator]


def test_ggml_model_never_fits() -> None:
    hw = Hardware(memory_bytes=1000 * GB, disk_free_bytes=BIG_DISK)
    e = by_id(plan_models(hw))
    assert not e["llama-2-70b-chat"].fits and "GGUF" in e["llama-2-70b-chat"].reason


def test_slow_or_unobtainable_not_recommended() -> None:
    hw = Hardware(memory_bytes=1000 * GB, disk_free_bytes=BIG_DISK)
    e = by_id(plan_models(hw))
    assert e["deepseek-llm-67b-chat"].fits and not e["deepseek-llm-67b-chat"].recommended
    assert "too slow" in e["deepseek-llm-67b-chat"].reason
    assert not e["starcoder-15b"].recommended and "download source" in e["starcoder-15b"].reason


def test_demand_ranks_underserved_first() -> None:
    hw = Hardware(memory_bytes=64 * GB, disk_free_bytes=BIG_DISK)
    demand = {
        "gemma-3-270m": ModelDemand("gemma-3-270m", 0, 0, nodes_serving=50),
        "mistral-7b": ModelDemand(
            "mistral-7b", requests_waiting=10, requests_refused=5, nodes_serving=2
        ),
        "code-llama-7b": ModelDemand("code-llama-7b", 0, 0, nodes_serving=0),
    }
    entries = plan_models(hw, demand=demand)
    order = [x.model for x in entries if x.recommended]
    assert order == ["mistral-7b", "code-llama-7b", "gemma-3-270m"]
    assert "10 waiting" in entries[0].reason
    assert choose(entries, BIG_DISK, max_models=2) == ["mistral-7b", "code-llama-7b"]
    spec = get_spec("mistral-7b")
    assert spec is not None
    assert choose(entries, int(spec.size_bytes * 1.05) + 1, max_models=3) == ["mistral-7b"]


def test_already_hosted_ranked_first() -> None:
    hw = Hardware(memory_bytes=64 * GB, disk_free_bytes=BIG_DISK)
    entries = plan_models(hw, already_hosted={"code-llama-7b"})
    assert entries[0].model == "code-llama-7b" and entries[0].reason.startswith("already hosted")
