"""Loading and unloading GGUF models under a memory budget (fake Llama, no real model)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.catalog import custom_spec
from LLM_Mesh.errors import ModelUnavailable
from LLM_Mesh.node.engines.base import GenerationRequest
from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
from LLM_Mesh.node.engines.llama_pool import model_size
from LLM_Mesh.node.model_files import ModelFileError, ResolvedModel, resolve_model
from tests.node.engines.test_llama_cpp import HAVE_MODEL, FakeLlama, collect
from tests.waiting import SOON_S, scaled

MB = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def model(tmp_path: Path, name: str, size_mb: int) -> ResolvedModel:
    # min_memory_bytes = size × 1.2: a 100 MB file takes 120 MB loaded
    spec = custom_spec(name, sha256=None, size_bytes=size_mb * MB)
    return ResolvedModel(id=name, path=tmp_path / f"{name}.gguf", spec=spec, sha256=None)


def req(name: str) -> GenerationRequest:
    return GenerationRequest(kind="completion", model=name, prompt="p", max_tokens=2)


def engine(tmp_path: Path, budget_mb: int | None, *sizes: tuple[str, int]) -> LlamaCppEngine:
    return LlamaCppEngine(
        [model(tmp_path, n, s) for n, s in sizes],
        n_ctx=64,
        memory_budget_bytes=None if budget_mb is None else budget_mb * MB,
        llama_factory=FakeLlama,
        clock=Clock(),
    )


def loaded(eng: LlamaCppEngine) -> dict[str, bool]:
    return {m.id: m.loaded for m in eng.models()}


async def test_start_preloads_what_fits_in_order(tmp_path: Path) -> None:
    eng = engine(tmp_path, 300, ("a", 100), ("b", 100), ("c", 100))  # 120 MB each
    await eng.start()
    assert loaded(eng) == {"a": True, "b": True, "c": False}
    c = next(m for m in eng.models() if m.id == "c")
    extra = c.model_extra or {}
    assert extra["continuation"] is True
    assert extra["load_time_s"] == pytest.approx(0.5 + 120 * MB / 1e9)
    a = next(m for m in eng.models() if m.id == "a")
    assert (a.model_extra or {})["load_time_s"] == 0.0
    await eng.close()


async def test_a_request_loads_its_model_and_unloads_the_lru_idle_one(tmp_path: Path) -> None:
    eng = engine(tmp_path, 300, ("a", 100), ("b", 100), ("c", 100))
    await eng.start()
    await collect(eng, req("a"))  # a is now more recently used than b
    a_llama: Any = eng._loaded["a"].llama
    b_llama: Any = eng._loaded["b"].llama
    closed: list[str] = []
    b_llama.close = lambda: closed.append("b")
    a_llama.close = lambda: closed.append("a")
    out = await collect(eng, req("c"))
    assert "".join(d.text for d in out) == "ab"
    assert loaded(eng) == {"a": True, "b": False, "c": True}
    assert closed == ["b"] and eng.pool.unloads == 1
    # b's measured load time is what it reports now
    b = next(m for m in eng.models() if m.id == "b")
    assert (b.model_extra or {})["load_time_s"] == round(eng.pool.load_seconds["b"], 3)
    await eng.close()


async def test_a_busy_model_is_never_unloaded(tmp_path: Path) -> None:
    eng = engine(tmp_path, 200, ("a", 100), ("b", 100))  # room for one
    await eng.start()
    assert loaded(eng) == {"a": True, "b": False}
    cancel = threading.Event()
    stream = eng.stream(
        GenerationRequest(kind="completion", model="a", prompt="p", max_tokens=50), cancel
    )
    first = await stream.__anext__()  # a is serving a request
    assert first.text == "a"
    with pytest.raises(ModelUnavailable, match="cannot be loaded now") as info:
        await collect(eng, req("b"))
    assert info.value.status == 503 and info.value.retry_after == 1
    cancel.set()
    await stream.aclose()
    await collect(eng, req("b"))  # a is idle now: it makes room
    assert loaded(eng) == {"a": False, "b": True}
    await eng.close()


async def test_concurrent_requests_for_two_models_load_each_once(tmp_path: Path) -> None:
    eng = engine(tmp_path, 500, ("a", 100), ("b", 100))
    eng.pool.budget_bytes = 130 * MB  # start with room for a only
    await eng.start()
    eng.pool.budget_bytes = 500 * MB
    await asyncio.gather(*(collect(eng, req(n)) for n in ("b", "b", "a", "b")))
    assert eng.pool.loads == 2 and loaded(eng) == {"a": True, "b": True}
    assert all(lm.in_flight == 0 for lm in eng._loaded.values())
    await eng.close()


async def test_a_model_bigger_than_the_budget_is_refused_at_start(tmp_path: Path) -> None:
    eng = engine(tmp_path, 100, ("small", 10), ("huge", 200))
    with pytest.raises(ModelFileError, match=r"huge.*memory_budget_bytes"):
        await eng.start()


async def test_no_budget_loads_everything(tmp_path: Path) -> None:
    eng = engine(tmp_path, None, ("a", 100_000), ("b", 100_000))
    await eng.start()
    assert loaded(eng) == {"a": True, "b": True}
    await eng.close()
    assert loaded(eng) == {"a": False, "b": False}


def test_release_without_acquire_raises(tmp_path: Path) -> None:
    eng = engine(tmp_path, None, ("a", 1))
    lm = eng._load(model(tmp_path, "a", 1))
    with pytest.raises(RuntimeError):
        eng.pool.release(lm)


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
async def test_real_model_swaps_under_a_budget_for_one() -> None:
    """The real gemma file under two ids, with room for one: each request swaps them."""
    real = resolve_model("gemma-3-270m", Settings(home=Path("/nonexistent-llm-mesh-home")))
    one = model_size(real)
    eng = LlamaCppEngine(
        [replace(real, id="g1"), replace(real, id="g2")],
        n_ctx=256,
        memory_budget_bytes=int(one * 1.5),
    )
    await eng.start()
    assert loaded(eng) == {"g1": True, "g2": False}
    r = GenerationRequest(
        kind="completion", model="g2", prompt="def add(a, b):", max_tokens=6, temperature=0.0
    )
    out = await collect(eng, r)
    assert "".join(d.text for d in out).strip()
    assert out[-1].usage is not None and out[-1].usage.completion_tokens > 0
    assert loaded(eng) == {"g1": False, "g2": True}
    assert eng.pool.load_seconds["g2"] > 0
    g1 = next(m for m in eng.models() if m.id == "g1")
    assert (g1.model_extra or {})["load_time_s"] == round(eng.pool.load_seconds["g1"], 3)
    await eng.close()


async def test_a_load_cancelled_midway_is_kept_not_loaded_twice(tmp_path: Path) -> None:
    """A request cancelled while its model loads: the load finishes and counts, once."""
    started, gate = threading.Event(), threading.Event()
    made: list[FakeLlama] = []
    opened: list[bool] = []  # the load held until both requests were in (else no race)

    def slow_factory(**kw: Any) -> FakeLlama:
        made.append(FakeLlama(**kw))
        started.set()
        opened.append(gate.wait(scaled(SOON_S)))
        return made[-1]

    eng = LlamaCppEngine(
        [model(tmp_path, "a", 100)],
        n_ctx=64,
        memory_budget_bytes=300 * MB,
        llama_factory=slow_factory,
        clock=Clock(),
    )
    first = asyncio.create_task(eng.pool.acquire("a"))
    # the first request is cancelled while its model loads (before flakes40: the wait's
    # result ignored, 5 s, so the test went on as if the load had begun)
    assert await asyncio.to_thread(started.wait, scaled(SOON_S)), "the load never started"
    first.cancel()
    second = asyncio.create_task(eng.pool.acquire("a"))
    await asyncio.sleep(0.01)
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    lm = await asyncio.wait_for(second, scaled(SOON_S))
    assert opened == [True], opened
    assert len(made) == 1, "the model was loaded twice (the first copy leaked)"
    assert eng.pool.loads == 1
    assert lm.in_flight == 1 and eng.pool.used_bytes == 120 * MB
    eng.pool.release(lm)
    await eng.close()
