"""The simulated engine: set time-to-first-token, tokens/s and failure rate.

For tests, benchmarks and the fleet simulator. Its text is deterministic (a
function of ``seed``, the model and the prompt) and every model it serves is
labelled ``simulated=True``, so no answer it gives can pass for a real one.
A completion's words go on after a space where its prompt ends in a word (as a model's
first token carries one); a chat answer begins with its first word.
It supports ``mesh_continue``: continuing a prefix of its own answer yields the
rest of that same answer. Asked for ``logprobs``, it returns deterministic
made-up log-probabilities (a function of the word and its place; a distribution, summing
to at most 1; an answer a ``stop`` string ended has one entry a word generated, the one
holding the stop included): simulated, like everything it says. A non-zero ``presence_penalty`` or ``frequency_penalty``
draws another answer (its values are part of the hash) and a positive one repeats no
word until every other has come (its vocabulary is 31 words): a simulated penalty, not a
model's. Built with ``sampled=True``, a request with ``temperature > 0`` is sampled as a
model samples: each word drawn from that position's simulated distribution (its
log-probabilities: the greedy word first, the others below it) at that temperature; where
it draws another word than the greedy one, the answer goes on from that prefix as the
greedy answer of it would (a fresh deterministic continuation), at most as long in all. The
log-probabilities it reports are the distribution's, before the temperature (as llama.cpp's
engine reports them). The draws come from the request's ``seed`` where it sends one, else
from the engine's own seeded generator. Without ``sampled`` the temperature is ignored
(every answer greedy, as before).
The clock is not read: waiting goes through the injectable ``sleep``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace

from LLM_Mesh.core.canary import TokenLogprob
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.schemas import HostedModel
from LLM_Mesh.errors import ContextLengthExceeded, EngineError, ModelNotFound
from LLM_Mesh.node.engines.base import (
    DEFAULT_MAX_TOKENS,
    CancelFlag,
    Delta,
    Engine,
    GenerationRequest,
    Usage,
)

_WORDS = (
    "the", "mesh", "routes", "each", "request", "to", "a", "node", "that", "hosts",
    "model", "and", "streams", "tokens", "back", "while", "gateway", "keeps", "score",
    "of", "latency", "cost", "health", "def", "return", "value", "list", "index",
    "loop", "result", "print",
)  # fmt: skip

DEFAULT_CONTEXT_LENGTH = 4096


def estimate_tokens(text: str) -> int:
    """About four characters a token (the simulator has no tokenizer)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


class SimEngine(Engine):
    """Simulated models: deterministic words at a set pace, failing at a set rate.

    An answer is 8 to 48 words unless ``answer_tokens`` fixes its length;
    ``max_tokens`` cuts it short (``finish_reason="length"``).
    """

    name = "sim"
    simulated = True
    supports_continuation = True

    def __init__(
        self,
        models: Sequence[str],
        *,
        ttft_s: float = 0.05,
        tokens_per_s: float = 50.0,
        failure_rate: float = 0.0,
        fail_after_tokens: int | None = None,
        seed: int = 0,
        context_length: int | None = None,
        answer_tokens: int | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        sampled: bool = False,
    ) -> None:
        if not models:
            raise ValueError("SimEngine needs at least one model id")
        if ttft_s < 0 or tokens_per_s <= 0:
            raise ValueError("ttft_s must be >= 0 and tokens_per_s > 0")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if fail_after_tokens is not None and fail_after_tokens < 0:
            raise ValueError("fail_after_tokens must be >= 0")
        self._ids = list(dict.fromkeys(models))
        self.ttft_s = ttft_s
        self.tokens_per_s = tokens_per_s
        self.failure_rate = failure_rate
        self.fail_after_tokens = fail_after_tokens
        self.seed = seed
        self._context_length = context_length
        self.answer_tokens = answer_tokens
        self._sleep = sleep
        self._failures = random.Random(seed)
        self.sampled = sampled
        self._draws = random.Random(f"{seed}|draws")
        self.tokens_emitted = 0
        """Tokens produced so far, over all requests (tests watch it)."""

    def context_length(self, model: str) -> int:
        if self._context_length is not None:
            return self._context_length
        spec = get_spec(model)
        return spec.context_length if spec is not None else DEFAULT_CONTEXT_LENGTH

    def models(self) -> list[HostedModel]:
        return [
            HostedModel.model_validate(
                {
                    "id": m,
                    "engine": self.name,
                    "simulated": True,
                    "loaded": True,
                    "custom": get_spec(m) is None,
                    "context_length": self.context_length(m),
                    "continuation": True,
                    "load_time_s": 0.0,
                }
            )
            for m in self._ids
        ]

    def _answer(self, req: GenerationRequest, salt: str = "") -> list[str]:
        """The whole deterministic answer to ``req`` (its messages or prompt, not ``continue_text``)."""
        base = dataclasses.replace(req, continue_text=None) if req.continue_text else req
        presence, frequency = req.presence_penalty or 0.0, req.frequency_penalty or 0.0
        penalties = f"|{presence!r}|{frequency!r}" if presence or frequency else ""
        key = f"{self.seed}|{req.model}|{req.seed}|{base.text_for_estimate()}{salt}{penalties}"
        rng = random.Random(hashlib.sha256(key.encode("utf-8")).digest())
        natural = self.answer_tokens if self.answer_tokens is not None else rng.randint(8, 48)
        # a completion goes on after a space where its prompt ends in a word, as a model's
        # first token does (found 2026-12-07, newuser45: `ask hello` printed "helloreturn")
        prompt = req.prompt if req.kind == "completion" else None
        lead = " " if salt or (prompt and not prompt[-1].isspace()) else ""
        if presence > 0 or frequency > 0:  # simulated: no word twice until each is used
            words: list[str] = []
            for _ in range(natural):
                unused = [w for w in _WORDS if w not in words[-len(_WORDS) + 1 :]]
                words.append(rng.choice(unused))
        else:
            words = [rng.choice(_WORDS) for _ in range(natural)]
        return [(lead if i == 0 else " ") + w for i, w in enumerate(words)]

    def _words(self, req: GenerationRequest) -> tuple[list[str], bool]:
        """The words to send and whether the answer ends naturally (``stop``).

        With ``continue_text`` that is a word-aligned prefix of the answer the
        same request gets without it, the rest of that answer follows (a
        failover stream reads as one answer); any other partial text gets a
        fresh deterministic continuation.
        """
        words = self._answer(req)
        if req.continue_text is not None:
            done = ""
            for k, word in enumerate([*words, None]):
                if done == req.continue_text:
                    words = words[k:]
                    break
                if word is None or len(done) >= len(req.continue_text):
                    words = self._answer(req, salt="|" + req.continue_text)
                    break
                done += word
        limit = req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS
        return words[:limit], len(words) <= limit

    def _sample(self, req: GenerationRequest) -> list[TokenLogprob]:
        """A sampled answer to ``req`` (``sampled=True``, ``temperature > 0``): one entry a
        word, its candidates the whole simulated distribution (see the module docstring)."""
        path = self._answer(req)
        natural = len(path)
        rng = (
            random.Random(f"{self.seed}|{req.seed}|{req.model}|{req.text_for_estimate()}")
            if req.seed is not None
            else self._draws
        )
        temperature = req.temperature or 1.0
        out: list[TokenLogprob] = []
        i = 0
        while i < len(path):
            dist = _distribution(i, path[i])
            best = dist[0][1]
            weights = [math.exp((lp - best) / temperature) for _, lp in dist]
            word, lp = rng.choices(dist, weights)[0]
            out.append(TokenLogprob(word, lp, dist))
            if word != path[i]:  # the rest is the greedy answer of the new prefix
                prefix = "".join(t.token for t in out)
                path = path[: i + 1] + self._answer(req, salt="|" + prefix)[: natural - i - 1]
            i += 1
        return out

    async def stream(self, req: GenerationRequest, cancel: CancelFlag) -> AsyncIterator[Delta]:
        if req.model not in self._ids:
            raise ModelNotFound(f"model {req.model!r} is not served here", available=self._ids)
        prompt_tokens = estimate_tokens(req.text_for_estimate())
        ctx = self.context_length(req.model)
        budget = req.max_tokens or 0
        if prompt_tokens + budget > ctx:
            raise ContextLengthExceeded(
                f"the prompt ({prompt_tokens} tokens) plus max_tokens={budget} exceeds "
                f"{req.model}'s context length of {ctx} tokens",
                param="max_tokens" if budget > ctx else "messages",
            )
        fails = self.failure_rate > 0 and self._failures.random() < self.failure_rate
        words, natural = self._words(req)
        drawn: list[TokenLogprob] | None = None
        if self.sampled and (req.temperature or 0) > 0 and req.continue_text is None:
            drawn = self._sample(req)
            limit = req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS
            drawn, natural = drawn[:limit], len(drawn) <= limit
            words = [t.token for t in drawn]
        if fails and self.fail_after_tokens is None:
            await self._sleep(self.ttft_s)
            raise EngineError(f"simulated failure of {req.model}")
        await self._sleep(self.ttft_s)
        produced = 0
        text = ""
        for i, word in enumerate(words):
            if cancel.is_set():
                return
            if fails and self.fail_after_tokens is not None and i >= self.fail_after_tokens:
                raise EngineError(f"simulated failure of {req.model} after {i} tokens")
            if i > 0:
                await self._sleep(1.0 / self.tokens_per_s)
                if cancel.is_set():
                    return
            stop_at = _first_stop(text + word, req.stop)
            if stop_at is not None:
                tail = (text + word)[:stop_at][len(text) :]
                produced += 1
                self.tokens_emitted += 1
                # its entries: each word generated, the one holding the stop included (as
                # llama.cpp's engine records each sampled token; found 2026-12-05: none)
                kept = words[:produced], None if drawn is None else drawn[:produced]
                yield Delta(tail, "stop", Usage(prompt_tokens, produced),
                            logprobs=_entries(*kept, req.top_logprobs))  # fmt: skip
                return
            text += word
            produced += 1
            self.tokens_emitted += 1
            yield Delta(word, prompt_tokens=prompt_tokens if i == 0 else None)
        if fails and self.fail_after_tokens is not None:
            raise EngineError(f"simulated failure of {req.model} after {produced} tokens")
        yield Delta(
            "",
            "stop" if natural else "length",
            Usage(prompt_tokens, produced),
            logprobs=_entries(words, drawn, req.top_logprobs),
        )


def _entries(
    words: Sequence[str], drawn: Sequence[TokenLogprob] | None, n: int | None
) -> tuple[TokenLogprob, ...] | None:
    """The log-probabilities of ``words`` (``drawn``: a sampled answer's own) with ``n``
    candidates each; ``None`` where none were asked."""
    if drawn is None or n is None:
        return sim_logprobs(words, n)
    return tuple(replace(t, top=t.top[:n]) for t in drawn)


_GREEDY_CAP = -math.log(1.0 + sum(math.exp(-1.0 - k * 0.5) for k in range(len(_WORDS))))
"""The highest greedy value whose distribution sums to at most 1 (every other word below
it as :func:`_distribution` places them; about -0.66)."""


def _distribution(i: int, word: str) -> tuple[tuple[str, float], ...]:
    """The simulated distribution at position ``i`` whose greedy word is ``word``: it first,
    then every other word below it (best first). A distribution: its probabilities sum to
    at most 1 (found 2026-12-05: a greedy word above about -0.66 made them sum over 1, so
    the mass a top list leaves out read negative and an honest sampling sim node that drew
    a word past it failed a sampled probe), the greedy value lowered to make it so."""
    h = hashlib.sha256(f"{i}|{word}".encode()).digest()
    others = [w for w in _WORDS if " " + w != word]
    lp = -(0.05 + h[0] / 255 * 1.5)
    lp = min(lp, _GREEDY_CAP)
    return ((word, lp), *((" " + w, lp - 1.0 - k * 0.5) for k, w in enumerate(others)))


def sim_logprobs(words: Sequence[str], n: int | None) -> tuple[TokenLogprob, ...] | None:
    """Simulated log-probabilities: each word first, then ``n - 1`` other words below it."""
    if n is None:
        return None
    out = []
    for i, word in enumerate(words):
        top = _distribution(i, word)
        out.append(TokenLogprob(word, top[0][1], top[:n]))
    return tuple(out)


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None
