"""The simulated engine: deterministic, labelled simulated, failing on request."""

from __future__ import annotations

import math
import threading

import pytest

from LLM_Mesh.errors import ContextLengthExceeded, EngineError, ModelNotFound
from LLM_Mesh.node.engines.base import Delta, GenerationRequest
from LLM_Mesh.node.engines.sim import _WORDS, SimEngine, _distribution
from tests.node.conftest import sim_engine


def req(**kw: object) -> GenerationRequest:
    kw.setdefault("kind", "completion")
    kw.setdefault("model", "gemma-3-270m")
    kw.setdefault("prompt", "def add(a, b):")
    return GenerationRequest(**kw)  # type: ignore[arg-type]


async def run(engine: SimEngine, r: GenerationRequest) -> list[Delta]:
    return [d async for d in engine.stream(r, threading.Event())]


async def test_deterministic_with_usage_on_the_last_delta() -> None:
    a = await run(sim_engine(), req(max_tokens=100))
    b = await run(sim_engine(), req(max_tokens=100))
    assert a == b
    last = a[-1]
    assert last.finish_reason == "stop" and last.usage is not None
    assert last.usage.completion_tokens == sum(1 for d in a if d.text)
    other = await run(sim_engine(), req(prompt="something else", max_tokens=100))
    assert "".join(d.text for d in other) != "".join(d.text for d in a)


async def test_max_tokens_cuts_with_length() -> None:
    out = await run(sim_engine(answer_tokens=50), req(max_tokens=5))
    assert sum(1 for d in out if d.text) == 5 and out[-1].finish_reason == "length"


async def test_models_are_labelled_simulated() -> None:
    eng = sim_engine(models=["gemma-3-270m", "my-own"])
    ms = eng.models()
    assert all(m.simulated and m.engine == "sim" for m in ms)
    assert ms[0].context_length == 32768 and ms[1].custom and ms[1].context_length == 4096
    assert eng.simulated


async def test_failures_before_and_after_first_token() -> None:
    with pytest.raises(EngineError):
        await run(sim_engine(failure_rate=1.0), req())
    got: list[Delta] = []
    with pytest.raises(EngineError, match="after 2 tokens"):
        async for d in sim_engine(failure_rate=1.0, fail_after_tokens=2).stream(
            req(), threading.Event()
        ):
            got.append(d)
    assert len(got) == 2


async def test_failure_rate_is_seeded() -> None:
    async def outcomes(seed: int) -> list[bool]:
        eng = sim_engine(failure_rate=0.5, seed=seed)
        res = []
        for _ in range(20):
            try:
                await run(eng, req())
                res.append(True)
            except EngineError:
                res.append(False)
        return res

    first = await outcomes(1)
    assert first == await outcomes(1)
    assert 0 < sum(first) < 20


async def test_cancel_stops_and_sleep_is_used() -> None:
    slept: list[float] = []
    cancel = threading.Event()

    async def sleep(s: float) -> None:
        slept.append(s)

    eng = SimEngine(["m"], ttft_s=0.5, tokens_per_s=10, answer_tokens=100, sleep=sleep)
    n = 0
    async for _ in eng.stream(req(model="m"), cancel):
        n += 1
        if n == 3:
            cancel.set()
    assert n == 3 and eng.tokens_emitted == 3
    assert slept[0] == 0.5 and slept[1] == pytest.approx(0.1)


async def test_stop_strings_end_the_answer() -> None:
    full = "".join(d.text for d in await run(sim_engine(), req(max_tokens=100)))
    word = full.split()[3]
    out = await run(sim_engine(), req(max_tokens=100, stop=[" " + word]))
    text = "".join(d.text for d in out)
    assert out[-1].finish_reason == "stop" and text == full[: full.index(" " + word)]


async def test_a_stopped_answer_has_its_log_probabilities() -> None:
    """Asked for them, an answer a ``stop`` string ended has one entry a word generated,
    the one holding the stop included, as many as its ``usage`` counts (as llama.cpp's
    engine records each sampled token; found 2026-12-05, simusage31: none, so a sim
    verifier's reference of a probe with a stop that fired was no reference)."""
    whole = await run(sim_engine(), req(max_tokens=100, top_logprobs=5))
    words = [d.text for d in whole if d.text]
    lps = whole[-1].logprobs
    assert lps is not None
    k = words.index(words[3]) + 1  # the word holding the stop, generated
    out = await run(sim_engine(), req(max_tokens=100, top_logprobs=5, stop=[words[3]]))
    last = out[-1]
    assert last.finish_reason == "stop" and last.usage is not None
    assert last.logprobs == lps[:k] and last.usage.completion_tokens == k


async def test_unknown_model_and_context() -> None:
    with pytest.raises(ModelNotFound):
        await run(sim_engine(), req(model="nope"))
    with pytest.raises(ContextLengthExceeded):
        await run(sim_engine(context_length=10), req(max_tokens=20))


def test_bad_parameters() -> None:
    for kw in ({"failure_rate": 2.0}, {"tokens_per_s": 0}, {"fail_after_tokens": -1}):
        with pytest.raises(ValueError):
            SimEngine(["m"], **kw)
    with pytest.raises(ValueError):
        SimEngine([])


async def test_sampled_answers_leave_the_greedy_path_with_the_same_distributions() -> None:
    """``sampled=True``: at ``temperature > 0`` each word is drawn from the position's
    simulated distribution (reported before the temperature); a ``seed`` repeats the draw;
    at 0, or without ``sampled``, the answer is the greedy one, as before."""
    sampled = SimEngine(["gemma-3-270m"], ttft_s=0.0, tokens_per_s=1e9, sampled=True)
    plain = SimEngine(["gemma-3-270m"], ttft_s=0.0, tokens_per_s=1e9)
    greedy = (await run(plain, req(max_tokens=40, top_logprobs=5)))[-1].logprobs
    assert greedy is not None
    assert (await run(sampled, req(max_tokens=40, top_logprobs=5)))[-1].logprobs == greedy
    assert (await run(plain, req(max_tokens=40, top_logprobs=5, temperature=1.0)))[
        -1
    ].logprobs == greedy
    left = 0
    for seed in range(20):
        r = req(max_tokens=40, top_logprobs=5, temperature=0.8, seed=seed)
        greedy = (await run(plain, r))[-1].logprobs  # the seed is part of the sim's answer
        assert greedy is not None
        out = await run(sampled, r)
        assert out == await run(sampled, r)  # the seed repeats it
        lps = out[-1].logprobs
        assert lps is not None and "".join(d.text for d in out) == "".join(t.token for t in lps)
        pairs = enumerate(zip(lps, greedy, strict=False))
        at = next((i for i, (a, b) in pairs if a.token != b.token), None)
        if at is not None:
            left += 1
            assert lps[:at] == greedy[:at]  # the shared prefix: the same distributions
            assert lps[at].top == greedy[at].top and dict(lps[at].top)[lps[at].token] == (
                lps[at].logprob
            )
    assert left > 10


def test_the_simulated_distribution_is_a_distribution() -> None:
    """Its probabilities sum to at most 1 at every position for every greedy word, so the
    mass a top list leaves out is never negative (found 2026-12-05, simusage31: a greedy
    word above -0.66 made the top 5 sum over 1; an honest sampling sim node that drew a
    word past them failed a sampled probe, ``sampled_token``); the greedy word first."""
    from LLM_Mesh.core.canary import TokenLogprob
    from LLM_Mesh.core.canary_sampled import in_support

    for i in range(64):
        for w in _WORDS:
            dist = _distribution(i, " " + w)
            assert sum(math.exp(v) for _, v in dist) <= 1.0 + 1e-9, (i, w)
            assert dist[0] == max(dist, key=lambda t: t[1]) and dist[0][0] == " " + w
            ref = TokenLogprob(dist[0][0], dist[0][1], dist[:5])
            assert all(in_support(ref, tok, lp) for tok, lp in dist[5:]), (i, w)


async def test_a_completion_goes_on_after_a_space_as_a_models_would() -> None:
    # found 2026-12-07, newuser45: `llm-mesh ask hello` (sim) printed "helloreturn ...":
    # the made-up continuation's first word had no space before it, where a model's first
    # token carries one after a prompt that ends in a word; none after a prompt's own space,
    # nor at the start of a chat answer
    def text(out: list[Delta]) -> str:
        return "".join(d.text for d in out)

    after_word = text(await run(sim_engine(), req(prompt="hello", max_tokens=3)))
    assert after_word.startswith(" ") and after_word[1:2].isalpha(), repr(after_word)
    for prompt in ("hello ", "hello\n", ""):
        got = text(await run(sim_engine(), req(prompt=prompt, max_tokens=3)))
        assert got[:1].isalpha(), (prompt, got)
    messages = [{"role": "user", "content": "hello"}]
    chat = text(await run(sim_engine(), req(kind="chat", prompt=None, messages=messages)))
    assert chat[:1].isalpha(), repr(chat)
