"""The simulated engine: deterministic, labelled simulated, failing on request."""

from __future__ import annotations

import threading

import pytest

from LLM_Mesh.errors import ContextLengthExceeded, EngineError, ModelNotFound
from LLM_Mesh.node.engines.base import Delta, GenerationRequest
from LLM_Mesh.node.engines.sim import SimEngine
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
