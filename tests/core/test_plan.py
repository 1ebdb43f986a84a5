"""Ranking catalog models for a node (core/plan.py)."""

from __future__ import annotations

from LLM_Mesh.core.catalog import CATALOG, GB, ModelSpec, get_spec
from LLM_Mesh.core.plan import (
    SPEED_NOTE,
    ModelDemand,
    best_gpu_bytes,
    choose,
    evaluate,
    plan_models,
    usable_ram_bytes,
)
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


def spec(**kw: object) -> ModelSpec:
    """A 1 GB model: needs 1.2 GB of memory and 1.05 GB of disk."""
    fields: dict[str, object] = dict(
        id="x",
        name="X",
        size_bytes=GB,
        quantization="Q4",
        context_length=4096,
        specialties=("general",),
        file_name="x.gguf",
        params_b=1.0,
        url="https://example.invalid/x.gguf",
    )
    fields.update(kw)
    return ModelSpec(**fields)  # type: ignore[arg-type]


def test_fits_in_ram_with_the_reason_in_words() -> None:
    hw = Hardware(memory_bytes=10 * GB, disk_free_bytes=2 * GB)
    e = evaluate(spec(), hw, None, hosted=False)
    assert (e.fits, e.recommended, e.device, e.est_tokens_per_s) == (True, True, "cpu", 20.0)
    assert (e.memory_needed_bytes, e.disk_needed_bytes) == (1_200_000_000, 1_050_000_000)
    assert e.demand_score == 1.0 and not e.already_hosted
    assert e.reason == "fits: 1.2 GB in RAM, ~20 tokens/s estimated; demand 1.00"
    assert e.to_dict() == {
        "model": "x",
        "fits": True,
        "recommended": True,
        "device": "cpu",
        "memory_needed_bytes": 1_200_000_000,
        "disk_needed_bytes": 1_050_000_000,
        "est_tokens_per_s": 20.0,
        "demand_score": 1.0,
        "already_hosted": False,
        "reason": "fits: 1.2 GB in RAM, ~20 tokens/s estimated; demand 1.00",
    }


def test_gpu_memory_free_else_total() -> None:
    on_gpu = Hardware(memory_bytes=2 * GB, gpus=[{"name": "g", "memory_total_bytes": 2 * GB}])
    e = evaluate(spec(), on_gpu, None, hosted=True)
    assert e.device == "gpu" and e.est_tokens_per_s == 300.0 and e.disk_needed_bytes == 0
    assert e.reason == "already hosted: 1.2 GB in GPU memory, ~300 tokens/s estimated; demand 1.00"
    busy = {"name": "g", "memory_total_bytes": 24 * GB, "memory_free_bytes": GB}
    e = evaluate(spec(), Hardware(memory_bytes=10 * GB, gpus=[busy]), None, hosted=True)
    assert e.device == "cpu"  # 1 GB free on the card is not enough, whatever its total
    unknown_free = {"name": "g", "memory_total_bytes": 2 * GB, "memory_free_bytes": None}
    hw = Hardware(memory_bytes=GB, gpus=[unknown_free])
    assert evaluate(spec(), hw, None, hosted=True).device == "gpu"
    nothing_known = {"name": "g"}
    assert best_gpu_bytes(Hardware(gpus=[nothing_known, unknown_free])) == 2 * GB
    assert best_gpu_bytes(Hardware(gpus=[nothing_known])) == 0
    assert best_gpu_bytes(Hardware()) == 0


def test_memory_and_disk_limits_are_inclusive() -> None:
    exact_gpu = {"name": "g", "memory_total_bytes": 1_200_000_000}
    hw = Hardware(memory_bytes=GB, disk_free_bytes=1_050_000_000, gpus=[exact_gpu])
    e = evaluate(spec(), hw, None, hosted=False)
    assert e.fits and e.device == "gpu"
    exact_ram = Hardware(memory_bytes=2_200_000_000, disk_free_bytes=1_050_000_000)
    assert usable_ram_bytes(exact_ram) == 1_200_000_000
    e = evaluate(spec(), exact_ram, None, hosted=False)
    assert e.fits and e.device == "cpu"
    short_disk = Hardware(memory_bytes=10 * GB, disk_free_bytes=1_049_999_999)
    assert not evaluate(spec(), short_disk, None, hosted=False).fits


def test_does_not_fit_says_every_problem() -> None:
    small_gpu = {"name": "g", "memory_total_bytes": GB // 2}
    hw = Hardware(memory_bytes=2 * GB, disk_free_bytes=0, gpus=[small_gpu])
    e = evaluate(spec(file_format="ggml"), hw, None, hosted=False)
    assert (e.fits, e.recommended, e.device, e.est_tokens_per_s) == (False, False, None, None)
    assert e.reason == (
        "does not fit: needs 1.2 GB of memory, has 1.0 GB usable RAM, 0.5 GB GPU memory; "
        "needs 1.1 GB of disk, 0.0 GB free; old GGML file: convert it to GGUF first; "
        "demand 1.00"
    )
    e = evaluate(spec(), Hardware(memory_bytes=GB), None, hosted=True)
    assert e.reason == "does not fit: needs 1.2 GB of memory, has 0.0 GB usable RAM; demand 1.00"


def test_slow_and_unobtainable_notes() -> None:
    hw = Hardware(memory_bytes=10 * GB, disk_free_bytes=10 * GB)
    assert evaluate(spec(), hw, None, False, min_tokens_per_s=20.0).recommended  # exactly enough
    e = evaluate(spec(url=None), hw, None, False, min_tokens_per_s=21.0)
    assert e.fits and not e.recommended
    assert e.reason == (
        "fits: 1.2 GB in RAM, ~20 tokens/s estimated; demand 1.00; too slow here (~20.0 tokens/s estimated); "
        "no download source in the catalog: add the file yourself"
    )
    assert evaluate(spec(url=None, source="pypi:x"), hw, None, False).recommended
    assert evaluate(spec(url=None), hw, None, hosted=True).recommended  # the file is here


def test_demand_in_the_reason() -> None:
    hw = Hardware(memory_bytes=10 * GB, disk_free_bytes=10 * GB)
    e = evaluate(spec(), hw, ModelDemand("x", 3, 1, 1), hosted=False)
    assert e.demand_score == 2.5
    assert (
        e.reason
        == (
            "fits: 1.2 GB in RAM, ~20 tokens/s estimated; demand 2.50 (3 waiting, 1 refused, 1 node serving)"  # found 2026-12-04: "1 nodes"
        )
    )


def test_usable_ram_is_whole_bytes_and_never_negative() -> None:
    assert usable_ram_bytes(Hardware(memory_bytes=0)) == 0
    assert usable_ram_bytes(Hardware(memory_bytes=GB // 2)) == 0
    odd = usable_ram_bytes(Hardware(memory_bytes=10 * GB + 3))
    assert odd == 10 * GB + 3 - (10 * GB + 3) // 5 and isinstance(odd, int)


def test_ranking_fit_before_unfit_then_speed_then_name() -> None:
    hw = Hardware(memory_bytes=10 * GB, disk_free_bytes=100 * GB)
    catalog = [
        spec(id="big", size_bytes=4 * GB),  # 5 tokens/s
        spec(id="small", size_bytes=GB),  # 20 tokens/s
        spec(id="b-same", size_bytes=GB),
        spec(id="huge", size_bytes=40 * GB),  # does not fit
        spec(id="slow", size_bytes=5 * GB),  # fits, 4 tokens/s: not recommended at 4.5
    ]
    demand = {"huge": ModelDemand("huge", requests_waiting=100)}
    entries = plan_models(hw, catalog, demand, min_tokens_per_s=4.5)
    assert [e.model for e in entries] == ["b-same", "small", "big", "slow", "huge"]
    assert [e.recommended for e in entries] == [True, True, True, False, False]
    assert choose(entries, 100 * GB) == ["b-same"]  # one model by default
    # disk for exactly two 1.05 GB files
    assert choose(entries, 2_100_000_000, max_models=5) == ["b-same", "small"]
    assert choose(entries, 2_099_999_999, max_models=5) == ["b-same"]


def test_one_node_serving_is_said_in_the_singular() -> None:
    """Found 2026-12-04: the plan's reason read "1 nodes serving"."""
    hw = Hardware(memory_bytes=64 * GB, disk_free_bytes=BIG_DISK)
    demand = {"gemma-3-270m": ModelDemand("gemma-3-270m", 0, 0, nodes_serving=1)}
    gemma = next(e for e in plan_models(hw, demand=demand) if e.model == "gemma-3-270m")
    assert "1 node serving" in gemma.reason and "1 nodes" not in gemma.reason


def test_among_unfit_models_one_that_would_run_however_slowly_ranks_before_one_that_cannot() -> (
    None
):
    """Neither fits; one lacks only disk and would run at 0.5 tokens/s, the other needs more
    memory than the machine has (no speed at all): the slow one first, whatever the names."""
    hw = Hardware(memory_bytes=200 * GB, disk_free_bytes=0)
    catalog = [
        spec(id="a-no-memory", size_bytes=400 * GB),
        spec(id="b-no-disk", size_bytes=40 * GB),
    ]
    entries = plan_models(hw, catalog)
    assert [(e.model, e.fits, e.est_tokens_per_s) for e in entries] == [
        ("b-no-disk", False, 0.5),
        ("a-no-memory", False, None),
    ]


def test_the_speed_is_said_an_estimate_from_what_not_this_machines() -> None:
    """Found 2026-12-07: gemma-3-270m on a loaded 2-core box: "~79 tokens/s" (measured 1-4),
    as if it were this machine's speed."""
    gemma = get_spec("gemma-3-270m")
    assert gemma is not None
    hw = Hardware(memory_bytes=8 * GB, disk_free_bytes=20 * GB)
    e = evaluate(gemma, hw, None, hosted=False)
    assert e.device == "cpu" and e.est_tokens_per_s is not None
    assert f"~{e.est_tokens_per_s:.0f} tokens/s estimated" in e.reason
    for words in (
        "an estimate",
        "not measured here",
        "20 GB/s for RAM",
        "llm-mesh ask",
        "node info",
    ):
        assert words in SPEED_NOTE, words
