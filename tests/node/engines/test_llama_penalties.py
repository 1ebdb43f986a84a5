"""OpenAI's ``presence_penalty`` / ``frequency_penalty`` on the llama-cpp engine: passed to
llama.cpp's sampler as its own additive penalties (the same formula as OpenAI's), its
multiplicative ``repeat_penalty`` held off; with the real gemma-3-270m, a penalty changes
a greedy (temperature 0) answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.node.engines.base import GenerationRequest
from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
from LLM_Mesh.node.model_files import resolve_model
from tests.node.engines.test_llama_cpp import HAVE_MODEL, FakeLlama, collect, fake_model


async def _calls(tmp_path: Path, **penalties: Any) -> dict[str, Any]:
    FakeLlama.instances.clear()
    eng = LlamaCppEngine([fake_model(tmp_path)], n_ctx=96, n_threads=2, llama_factory=FakeLlama)
    await eng.start()
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="p", max_tokens=2,
                          **penalties)  # fmt: skip
    await collect(eng, r)
    await eng.close()
    return FakeLlama.instances[-1].calls[-1]


async def test_penalties_reach_llama_as_its_additive_penalties(tmp_path: Path) -> None:
    call = await _calls(tmp_path, presence_penalty=1.5, frequency_penalty=-0.5)
    assert call["presence_penalty"] == 1.5 and call["frequency_penalty"] == -0.5
    # llama.cpp's multiplicative repeat penalty is not OpenAI's: off, whatever the version's
    # default (llama-cpp-python's was 1.1 before 0.3)
    assert call["repeat_penalty"] == 1.0


async def test_no_penalty_is_none(tmp_path: Path) -> None:
    call = await _calls(tmp_path)
    assert call["presence_penalty"] == 0.0 and call["frequency_penalty"] == 0.0
    assert call["repeat_penalty"] == 1.0


@pytest.mark.parametrize("field", ["presence_penalty", "frequency_penalty"])
@pytest.mark.parametrize("value", [-2.01, 2.5, float("nan"), float("inf")])
def test_a_penalty_out_of_openai_range_is_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        GenerationRequest(kind="completion", model="m", prompt="p", **{field: value})


# --- the real model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_engine() -> Iterator[LlamaCppEngine]:
    if not HAVE_MODEL:
        pytest.skip("llama-cpp-python or the gemma package missing")
    model = resolve_model("gemma-3-270m", Settings(home=Path("/nonexistent-llm-mesh-home")))
    eng = LlamaCppEngine([model], n_ctx=256)
    asyncio.run(eng.start())
    yield eng
    asyncio.run(eng.close())


async def _greedy(eng: LlamaCppEngine, prompt: str, **penalties: float) -> str:
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt=prompt, max_tokens=20,
                          temperature=0.0, seed=1, **penalties)  # fmt: skip
    out = [d async for d in eng.stream(r, threading.Event())]
    return "".join(d.text for d in out)


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
async def test_real_model_a_penalty_changes_a_greedy_answer(real_engine: LlamaCppEngine) -> None:
    cat = "The cat sat on the"
    plain = await _greedy(real_engine, cat)
    assert plain == await _greedy(real_engine, cat)  # greedy: the same answer again
    assert plain == await _greedy(real_engine, cat, presence_penalty=0.0, frequency_penalty=0.0)
    assert await _greedy(real_engine, cat, presence_penalty=2.0) != plain
    apples = "List: apple, apple, apple, apple,"
    repeated = await _greedy(real_engine, apples)
    assert repeated.count("apple") >= 5  # the model repeats itself, unpenalised
    # a frequency penalty makes it stop repeating
    assert (await _greedy(real_engine, apples, frequency_penalty=2.0)).count("apple") < 5


async def test_the_penalties_count_the_whole_answer(tmp_path: Path) -> None:
    """llama-cpp-python's penalty window (``last_n_tokens_size``) defaults to 64 tokens:
    a token 64 tokens back was no longer penalised, where OpenAI counts the whole text."""
    await _calls(tmp_path, presence_penalty=1.0)
    assert FakeLlama.instances[-1].kwargs["last_n_tokens_size"] == 96  # the engine's n_ctx
