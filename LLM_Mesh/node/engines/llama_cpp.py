"""GGUF models in process, through llama-cpp-python.

``llama_cpp`` is imported lazily (in :meth:`LlamaCppEngine.start`), so the node
and its tests import without it. Loading and generating run in worker threads.
One ``Llama`` is not thread-safe: each model has a lock held by the worker
for a whole generation (the admission queue already serialises requests; the
lock also covers a cancelled generation that is still winding down).

The context check is exact (the model's own tokenizer): prompt tokens plus
``max_tokens`` beyond ``n_ctx`` raise ``ContextLengthExceeded``. The prompt is tokenized
once: those tokens go to ``create_completion`` (given text, it would tokenize it again),
so the count in the context check and the usage is what the model ran. Chat requests
are rendered with the catalog's prompt template (``core.prompt``); with
``continue_text`` (``mesh_continue``) the assistant's partial answer follows the
rendered prompt directly, so the model continues it rather than starting a turn.
With ``top_logprobs`` (OpenAI ``logprobs``) a ``LogprobRecorder`` reads each
sampled position's logits (``llama_logprobs.py``; no ``logits_all``), and notes the token
``Llama.sample`` returns (the last one is never in the input ids); the last delta carries
every token's log-probability and top candidates.

OpenAI's ``presence_penalty`` and ``frequency_penalty`` are llama.cpp's own additive
penalties, the same formula (a token's logit less ``count x frequency_penalty``, less
``presence_penalty`` once it occurs), counted over the generated tokens (all of them:
``last_n_tokens_size`` is the context); llama.cpp's multiplicative ``repeat_penalty``,
no OpenAI field, is held at 1 (off). The log-probabilities are read before the
penalties (the model's own distribution).

A cancelled generation stops between tokens (``stopping_criteria``) and, once its
consumer has left, inside ``llama_decode`` too: the model context's abort callback
(``llama_abort.py``) stops a long prompt's evaluation within a graph node, so a client
that hangs up during it does not cost the node the rest of the prompt.

Which models are in memory is :class:`~LLM_Mesh.node.engines.llama_pool.ModelPool`'s
business: loaded on demand under ``memory_budget_bytes``, least recently used
idle ones unloaded to make room.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from LLM_Mesh.core.prompt import Turn, render, token_fragments
from LLM_Mesh.core.schemas import HostedModel
from LLM_Mesh.errors import ContextLengthExceeded, EngineError, MeshError, ModelNotFound
from LLM_Mesh.logs import exception_words
from LLM_Mesh.node.engines.base import (
    DEFAULT_MAX_TOKENS,
    FIRST_ITEM_HOLD_S,
    FIRST_ITEM_RELAY_S,
    CancelFlag,
    Delta,
    Engine,
    GenerationRequest,
    Usage,
    batches_in_thread,
    message_text,
)
from LLM_Mesh.node.engines.llama_abort import install as install_abort
from LLM_Mesh.node.engines.llama_logprobs import LogprobRecorder
from LLM_Mesh.node.engines.llama_pool import LoadedModel, ModelPool
from LLM_Mesh.node.model_files import ResolvedModel

log = logging.getLogger("LLM_Mesh.node")

DEFAULT_N_CTX = 4096
# which Python, and the script's argument for it (found 2026-12-05, newuser32: the bare
# script installs into .venv/bin/python of the folder it runs in, not the node's Python)
LLAMA_PACKAGE_HINT = (
    f"llama-cpp-python is not installed in this Python ({sys.executable}): from the "
    f"repository's folder run scripts/install-llama-cpp.sh {shlex.quote(sys.executable)} "
    "(a portable build, a few minutes)"
)


Segments = list[tuple[str, bool]]


def _tokenize(llama: Any, segments: Segments) -> list[int]:
    """The prompt's tokens, BOS first: a template's control string that is one special
    token of this vocabulary is parsed, a message's text never is (``<eos>`` or
    ``<start_of_turn>model`` in a message stays text; core/prompt.token_fragments)."""

    known: dict[str, bool] = {}  # a template has two or three control strings

    def is_control(s: str) -> bool:
        if s not in known:
            parsed = llama.tokenize(s.encode("utf-8"), add_bos=False, special=True)
            plain = llama.tokenize(s.encode("utf-8"), add_bos=False, special=False)
            known[s] = len(parsed) == 1 and parsed != plain
        return known[s]

    pieces = token_fragments(segments, is_control)
    if not pieces:  # an empty prompt: BOS alone, as before
        return list(llama.tokenize(b"", add_bos=True, special=True))
    tokens: list[int] = []
    for i, (text, special) in enumerate(pieces):
        tokens += llama.tokenize(text.encode("utf-8"), add_bos=i == 0, special=special)
    return tokens


def _failed(when: str, exc: Exception) -> EngineError:
    """llama.cpp's exception as the answer says it: its type; its words to the log only
    (the node's answer reaches the gateway's client: ``node/app.engine_failure``)."""
    # without what its words quote: llama-cpp-python's tokenize error quotes the whole prompt
    log.warning("llama.cpp failed %s: %s: %s", when, type(exc).__name__, exception_words(exc))
    return EngineError(f"llama.cpp failed {when} ({type(exc).__name__}; see the node's log)")


def _after_abort(llama: Any) -> None:
    """An aborted ``Llama.eval`` counted only its whole batches in ``n_tokens`` and
    llama.cpp dropped the rest from the KV cache; start the next prompt from nothing
    all the same (``reset``: ``n_tokens = 0``; its first eval clears the cache)."""
    reset = getattr(llama, "reset", None)
    if callable(reset):
        reset()


def _default_factory(**kwargs: Any) -> Any:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise EngineError(LLAMA_PACKAGE_HINT) from None
    return Llama(**kwargs)


class LlamaCppEngine(Engine):
    """Serves GGUF files with llama-cpp-python, loading them under a memory budget."""

    name = "llama-cpp"
    simulated = False
    supports_continuation = True

    def __init__(
        self,
        models: Sequence[ResolvedModel],
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        memory_budget_bytes: int | None = None,
        llama_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stream_interval_s: float = 0.0,
    ) -> None:
        if not models:
            raise ValueError("LlamaCppEngine needs at least one model")
        if n_ctx < 16:
            raise ValueError("n_ctx must be at least 16")
        self._models = list(models)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_gpu_layers = n_gpu_layers
        # on the CPU with every core: leave the first token's relay a moment (base.py)
        every_core = self.n_threads >= (os.cpu_count() or 1) and n_gpu_layers == 0
        self.settle_s = FIRST_ITEM_RELAY_S if every_core else 0.0
        if stream_interval_s < 0:
            raise ValueError("stream_interval_s cannot be negative")
        # after the first token, at most one batch of tokens per interval (base.py)
        self.stream_interval_s = stream_interval_s
        self.memory_budget_bytes = memory_budget_bytes
        self._factory = llama_factory or _default_factory
        self.pool = ModelPool(
            self._models, load=self._load, budget_bytes=memory_budget_bytes, clock=clock
        )

    @property
    def _loaded(self) -> dict[str, LoadedModel]:
        return self.pool.loaded

    async def start(self) -> None:
        """Load every model that fits the budget now; the others load on demand."""
        await self.pool.preload()

    def _load(self, m: ResolvedModel) -> LoadedModel:
        llama = self._factory(
            model_path=str(m.path),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_gpu_layers=self.n_gpu_layers,
            # the tokens the penalties count: the whole answer, as OpenAI's (the library's
            # default, 64, forgot a token 64 tokens on)
            last_n_tokens_size=self.n_ctx,
            verbose=False,
        )
        n_ctx_fn = getattr(llama, "n_ctx", None)
        n_ctx = int(n_ctx_fn()) if callable(n_ctx_fn) else self.n_ctx
        lm = LoadedModel(model=m, llama=llama, n_ctx=n_ctx)
        install_abort(llama, lm.abort)
        return lm

    async def close(self) -> None:
        await self.pool.close()

    def models(self) -> list[HostedModel]:
        """Every configured model: ``loaded`` or not, with ``load_time_s`` and ``continuation``."""
        out = []
        for m in self._models:
            lm = self._loaded.get(m.id)
            data = m.hosted(
                engine=self.name, context_length=lm.n_ctx if lm else self.n_ctx
            ).model_dump()
            data.update(
                loaded=lm is not None,
                load_time_s=self.pool.load_time_s(m.id),
                continuation=self.supports_continuation,
            )
            out.append(HostedModel.model_validate(data))
        return out

    def render(self, req: GenerationRequest, model: ResolvedModel) -> tuple[Segments, list[str]]:
        """The prompt in pieces (each marked whether its special tokens are parsed) and
        the stop strings for ``req``: a completion prompt is the client's whole text,
        parsed as llama.cpp does; in a chat only the template's control strings are."""
        if req.kind == "completion":
            return [(req.prompt or "", True)], list(req.stop)
        turns = [Turn(str(m.get("role", "user")), message_text(m)) for m in req.messages or []]
        rendered = render(model.spec.prompt_template, turns)
        stops = list(dict.fromkeys([*rendered.stop, *req.stop]))
        # mesh_continue: the assistant's turn has begun; its text goes on, no new turn
        return [*rendered.segments, (req.continue_text or "", False)], stops

    async def stream(self, req: GenerationRequest, cancel: CancelFlag) -> AsyncIterator[Delta]:
        batches = self.stream_batches(req, cancel)
        try:
            async for batch in batches:
                for delta in batch:
                    yield delta
        finally:
            await batches.aclose()

    async def stream_batches(
        self, req: GenerationRequest, cancel: CancelFlag
    ) -> AsyncGenerator[list[Delta], None]:
        """The generation in batches: the deltas the model's thread produced since the
        loop last looked (one, unless the loop fell behind; base.batches_in_thread)."""
        if req.model not in self.pool.models:
            raise ModelNotFound(
                f"model {req.model!r} is not served here", available=list(self.pool.models)
            )
        lm = await self.pool.acquire(req.model)
        ticket = object()  # this generation, for lm.abort
        try:
            segments, stop = self.render(req, lm.model)

            def make(gone: threading.Event) -> Iterator[Delta]:
                return self._generate(lm, segments, stop, req, cancel, gone, ticket)

            # the model's own long-lived thread; the first token goes out before the next
            # token's compute takes the cores again (base.batches_in_thread)
            batches = batches_in_thread(
                make, cancel, worker=lm.worker, hold_first_s=FIRST_ITEM_HOLD_S,
                settle_s=self.settle_s, interval_s=self.stream_interval_s,
            )  # fmt: skip
            try:
                async for batch in batches:
                    yield batch
            finally:
                await batches.aclose()
        finally:
            # the consumer is gone (or the generation is over: then a no-op): stop
            # llama.cpp inside the prompt's (or the token's) llama_decode now
            lm.abort.trip(ticket)
            self.pool.release(lm)

    def _generate(
        self,
        lm: LoadedModel,
        segments: Segments,
        stop: list[str],
        req: GenerationRequest,
        cancel: CancelFlag,
        gone: threading.Event,
        ticket: object,
    ) -> Iterator[Delta]:
        """Blocking: runs in the worker thread, holding the model's lock."""
        with lm.lock:
            lm.abort.arm(ticket)
            try:
                if not (cancel.is_set() or gone.is_set()):  # (a trip before arm missed it)
                    yield from self._run(lm, segments, stop, req, cancel, gone)
            finally:
                lm.abort.disarm(ticket)
                getattr(lm.llama, "__dict__", {}).pop("sample", None)  # _run's watched sampler

    def _run(
        self,
        lm: LoadedModel,
        segments: Segments,
        stop: list[str],
        req: GenerationRequest,
        cancel: CancelFlag,
        gone: threading.Event,
    ) -> Iterator[Delta]:
        """``_generate`` with the model's lock held and its abort switch armed."""
        llama = lm.llama
        # tokenized once: the tokens counted here are the ones llama runs (given text,
        # create_completion would tokenize it again: ~0.5 ms before the first token)
        prompt = "".join(text for text, _ in segments)
        tokens = (
            llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            if req.kind == "completion"  # the client's whole text: parsed as llama.cpp does
            else _tokenize(llama, segments)
        )
        prompt_tokens = len(tokens)
        room = lm.n_ctx - prompt_tokens
        if (req.max_tokens is not None and req.max_tokens > room) or room < 1:
            raise ContextLengthExceeded(
                f"the prompt ({prompt_tokens} tokens) plus max_tokens={req.max_tokens or 1} "
                f"exceeds {req.model}'s context length of {lm.n_ctx} tokens",
                param="max_tokens" if (req.max_tokens or 0) > lm.n_ctx else "messages",
            )
        max_tokens = req.max_tokens or min(DEFAULT_MAX_TOKENS, room)
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens,
            "stream": True,
            # OpenAI's penalties are llama.cpp's additive ones (the same formula: a logit
            # less count x frequency, less presence once the token occurs); llama.cpp's
            # multiplicative repeat penalty is no OpenAI field: held off whatever the
            # library's default (1.1 before llama-cpp-python 0.3)
            "presence_penalty": req.presence_penalty or 0.0,
            "frequency_penalty": req.frequency_penalty or 0.0,
            "repeat_penalty": 1.0,
        }
        if req.temperature is not None:
            kwargs["temperature"] = req.temperature
        if req.top_p is not None:
            kwargs["top_p"] = req.top_p
            if req.top_p == 0:  # the smallest nucleus: the likeliest token alone (greedy)
                kwargs["top_k"] = 1
        if req.seed is not None:
            kwargs["seed"] = req.seed
        if stop:
            kwargs["stop"] = stop

        def stop_now(_ids: Any, _logits: Any) -> bool:
            return cancel.is_set() or gone.is_set()

        kwargs["stopping_criteria"] = stop_now
        recorder: LogprobRecorder | None = None
        if req.top_logprobs is not None:

            def detok(token: int) -> str:
                return bytes(llama.detokenize([token])).decode("utf-8", "replace")

            recorder = LogprobRecorder(req.top_logprobs, detok)
            kwargs["logits_processor"] = [recorder]
            if callable(getattr(llama, "sample", None)):  # the last pick is the one sampled
                llama.sample = recorder.watch(llama.sample)  # (undone by _generate)
        parts: list[str] = []
        finish: str | None = None
        try:
            # an empty prompt as text: llama starts it with BOS alone, as before
            chunks = llama.create_completion(tokens if prompt else prompt, **kwargs)
        except MeshError:
            raise
        except Exception as exc:
            raise _failed("to start generating", exc) from exc
        try:
            for chunk in chunks:
                if cancel.is_set() or gone.is_set():
                    return
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                finish = choice.get("finish_reason") or finish
                if text:
                    # the first says the prompt's count (Delta.prompt_tokens)
                    early = None if parts else prompt_tokens
                    parts.append(text)
                    yield Delta(text, prompt_tokens=early)
        except Exception as exc:
            if lm.abort.tripped():  # llama_decode returned 2: our abort (llama_abort.py)
                _after_abort(llama)
                return
            raise _failed("while generating", exc) from exc
        finally:
            close = getattr(chunks, "close", None)
            if callable(close):
                close()
        if cancel.is_set() or gone.is_set():
            return
        completion = "".join(parts)
        completion_tokens = (
            len(llama.tokenize(completion.encode("utf-8"), add_bos=False, special=False))
            if completion
            else 0
        )
        yield Delta(
            "",
            finish or "stop",
            Usage(prompt_tokens, completion_tokens),
            logprobs=tuple(recorder.finish()) if recorder is not None else None,
        )
