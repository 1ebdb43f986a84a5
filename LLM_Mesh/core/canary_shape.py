"""The shape of a canary probe: chosen per probe, so probes look like user traffic.

A node that can tell a probe from a user's request can answer probes honestly and
lie to everything else. So each probe draws its shape from an injected RNG
(:func:`choose`), within what the comparison needs (``core/canary.py``):

* the endpoint: ``/v1/completions`` or ``/v1/chat/completions`` (the prompt as one
  user message; the verifier applies the same file's chat template, so its answer to
  the same body is the reference);
* streamed or not (``stream: true`` on a share of probes). A stream carries no
  log-probabilities, so a streamed probe is judged on its text only
  (:func:`~LLM_Mesh.core.canary.compare_text`) and asks for none;
* ``max_tokens`` (or chat's ``max_completion_tokens``) anywhere in ``[min_tokens,
  max_tokens]``: the reference is asked for ``max_tokens`` once and cut to the probe's
  length (greedy decoding: a shorter answer is a prefix of a longer one); on
  ``long_share`` of probes a longer limit users set (``long_tokens``: 64 ... 512) or none
  at all (the node's default), so "at most 32 tokens asked" does not mark a probe: the
  answer is compared over the reference's tokens, the rest unjudged;
* chat: on ``system_share`` of chat probes a system message first (one of
  :data:`SYSTEM_PROMPTS`, common ones), so a chat probe is not always one lone user
  message (the reference is asked with the same messages); on ``history_share`` of chat
  probes one or two earlier exchanges before the probed message (a user turn drawn from
  the prompt pool, a short assistant turn from :data:`ASSISTANT_REPLIES`), so a probe is
  not always single-turn;
* sampling fields users send that change nothing at temperature 0 but the stop (each
  on its share of probes): ``seed`` (:data:`SEEDS`), ``presence_penalty: 0`` and
  ``frequency_penalty: 0``, a ``stop`` list (:data:`STOP_LISTS`, which ends an answer
  where it ends the reference's). The reference is asked with the same messages and
  these same fields (:func:`reference_shape`), so each combination has its own
  reference; the small sets keep them few enough to cache;
* ``logprobs`` / ``top_logprobs`` (non-streamed probes) among ``top_choices``, all at
  least the reference's 5 (a longer list only helps show an honest near tie); on
  ``no_logprobs_share`` of non-streamed probes none asked, as most users ask none: such
  a probe is judged on its text alone, as a stream (greedy: ``canary.compare_text``;
  sampled: ``core/canary_sampled_text.py``; before 2026-12-06, ``probe33``, every
  non-streamed probe asked for them, so a node lying only to non-streamed requests
  without them was probed on streams alone);
* optional fields real clients send that change nothing at temperature 0: ``n: 1``,
  ``top_p: 1``, ``stream_options.include_usage`` (streams);
* on ``sampled_share`` of the probes, streamed or not, a user-like ``temperature``
  (:data:`TEMPERATURES`, all ≤ 1) with, on its share, a ``top_p`` users send
  (:data:`TOP_PS`; no ``top_k``: the gateway refuses it, no node reads it), so a node
  cannot answer ``temperature: 0`` honestly and lie to every sampled request
  (docs/security.md, probes' tell (a)). It
  asks for log-probabilities as any non-streamed probe does and is judged against the same
  greedy reference (``core/canary_sampled.py``: the reference is asked without these
  fields, so no extra verifier call). A streamed one carries no log-probabilities: its
  text is judged by the reference's own numbers (``core/canary_sampled_text.py``; before
  2026-12-05, ``probe32``, a streamed probe was never sampled, so a node lying only to
  streamed sampled requests was never probed on one);
* the JSON text as a real client writes it: the openai Python SDK's (httpx: compact
  separators, the required keys first then the rest in alphabetical order), or a
  hand-written client's (``json.dumps`` default spacing, ``model`` first, the other keys
  in any order).

Pure: the RNG is passed in; :func:`render` is a function of the shape.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from LLM_Mesh.core.canary_prompts import PROMPTS

__all__ = [
    "ASSISTANT_REPLIES",
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "DEFAULT_MIX",
    "REFERENCE_TOP",
    "SEEDS",
    "STOP_LISTS",
    "SYSTEM_PROMPTS",
    "TEMPERATURES",
    "TOP_PS",
    "Mix",
    "Shape",
    "choose",
    "reference_shape",
    "render",
    "stops",
]

COMPLETIONS_PATH = "/v1/completions"
CHAT_PATH = "/v1/chat/completions"
REFERENCE_TOP = 5  # the reference's top candidates per token (what the bench measured)
SDK = "sdk"
HAND = "hand"


SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are a helpful assistant.",
    "You are a helpful assistant",
    "You are a helpful coding assistant.",
    "You are an expert Python programmer.",
    "You are a friendly and knowledgeable assistant.",
    "You are ChatGPT, a large language model. Answer as concisely as possible.",
    "You are a helpful, respectful and honest assistant.",
    "You are a senior software engineer. Write clean, idiomatic code.",
)
"""System messages chat clients commonly send (the default ones of SDK examples and chat
front ends): a chat probe carries one on ``Mix.system_share`` of probes."""

ASSISTANT_REPLIES: tuple[str, ...] = (
    "Sure! How can I help you with that?",
    "Sure, here you go.",
    "Of course. What would you like to know?",
    "Here is one way to do it.",
    "Certainly! Let me know if you need anything else.",
    "Happy to help. Could you give me a bit more detail?",
    "Done. Anything else?",
    "Got it.",
    "Thanks! That works.",
    "I hope this helps!",
    "Here is the code:",
    "Yes, that is correct.",
)
"""Short assistant turns of an earlier exchange in a multi-turn chat probe."""

SEEDS: tuple[int, ...] = (0, 1, 7, 42, 123, 1234, 2024, 12345)
"""``seed`` values users commonly send (a no-op at temperature 0)."""

STOP_LISTS: tuple[tuple[str, ...], ...] = (
    ("\n\n",),
    ("```",),
    ("###",),
    ("</s>",),
    ("<|endoftext|>",),
    ("\nHuman:", "\nAI:"),
    ("\n\n\n",),
    ("Q:",),
)
"""``stop`` lists users commonly send (the reference is asked with the same list)."""

TEMPERATURES: tuple[float, ...] = (0.2, 0.3, 0.5, 0.6, 0.7, 0.7, 0.7, 0.8, 0.8, 0.9, 1.0, 1.0)
"""``temperature`` values users commonly send (SDK examples and front ends' defaults: 0.7,
0.8, 1), a sampled probe's drawn from; none above 1 (``core/canary_sampled.py``: at most 1
the least likely tokens' share does not grow)."""

TOP_PS: tuple[float, ...] = (0.9, 0.95, 0.95, 1.0)
"""``top_p`` values sent with a temperature (on ``Mix.top_p_share`` of sampled probes)."""


@dataclass(frozen=True)
class Mix:
    """How probe shapes are drawn."""

    stream_share: float = 0.35
    chat_share: float = 0.4
    min_tokens: int = 12
    """Fewest tokens asked: enough to compare (the bench's probes ask 16)."""
    max_tokens: int = 32
    """Most tokens asked; the reference is asked for this many."""
    top_choices: tuple[int, ...] = (5, 5, 10, 20)
    optional_share: float = 0.5
    """Chance of each optional no-op field (``n``, ``top_p``, ``stream_options``)."""
    long_share: float = 0.3
    """Chance that a probe asks a longer limit than ``max_tokens`` (one of ``long_tokens``,
    ``None``: no limit sent)."""
    long_tokens: tuple[int | None, ...] = (64, 100, 128, 200, 256, 512, None)
    system_share: float = 0.3
    """Chance that a chat probe starts with a system message (:data:`SYSTEM_PROMPTS`)."""
    history_share: float = 0.35
    """Chance that a chat probe has earlier exchanges before the probed user message."""
    history_turns: tuple[int, ...] = (1, 1, 2)
    """How many earlier user/assistant exchanges (drawn from)."""
    seed_share: float = 0.2
    """Chance that a probe sends a ``seed`` (:data:`SEEDS`)."""
    random_seed_share: float = 0.5
    """Chance that a probe's ``seed`` is a random one below 2³¹ (as tools drawing a seed a
    request send), not one of :data:`SEEDS`: fresh draws, so the test across sampled
    probes counts it (``core/canary_departures.counted``; a node lying only to seeded
    requests was never counted there: found 2026-12-05, ``attack31b``)."""
    penalty_share: float = 0.2
    """Chance that a probe sends ``presence_penalty: 0`` and ``frequency_penalty: 0``."""
    stop_share: float = 0.2
    """Chance that a probe sends a ``stop`` list (:data:`STOP_LISTS`)."""
    sampled_share: float = 0.3
    """Chance that a probe (streamed or not, since ``probe32``) is sampled (a ``temperature`` of
    :data:`TEMPERATURES`; 0: every probe greedy, as before 2026-12-05)."""
    top_p_share: float = 0.4
    """Chance that a sampled probe sends a ``top_p`` (:data:`TOP_PS`)."""
    no_logprobs_share: float = 0.3
    """Chance that a non-streamed probe (greedy or sampled) asks no log-probabilities: its
    text alone is judged, as a stream's (0: every one asks them, as before 2026-12-06)."""


DEFAULT_MIX = Mix()


@dataclass(frozen=True)
class Shape:
    """One probe's request shape."""

    path: str = COMPLETIONS_PATH
    stream: bool = False
    max_tokens: int | None = 16
    """``None``: no limit sent (the node's default length)."""
    top_logprobs: int = REFERENCE_TOP
    style: str = SDK
    """``sdk`` (compact, sorted tail) or ``hand`` (default spacing, shuffled tail)."""
    chat_max_field: str = "max_tokens"
    """Chat only: ``max_tokens`` or ``max_completion_tokens`` (the newer SDK name)."""
    extras: tuple[tuple[str, Any], ...] = ()
    order_seed: int = 0
    """Orders a hand-written body's keys (after ``model``)."""
    system: str = ""
    """Chat only: a system message before the user's (``""``: none)."""
    history: tuple[tuple[str, str], ...] = ()
    """Chat only: earlier (user, assistant) exchanges before the probed user message."""
    sampling: tuple[tuple[str, Any], ...] = ()
    """``seed``, penalties, ``stop`` (a tuple, sent as a list): sent to the verifier too."""
    temperature: float = 0.0
    """``> 0``: a sampled probe, judged by ``core/canary_sampled.py`` (streamed:
    ``core/canary_sampled_text.py``);
    not sent to the verifier (its reference is greedy)."""
    sampler: tuple[tuple[str, Any], ...] = ()
    """A sampled probe's ``top_p``: not sent to the verifier either."""
    logprobs: bool = True
    """Non-streamed only: whether it asks for log-probabilities (a stream never does)."""

    @property
    def sampled(self) -> bool:
        return self.temperature > 0

    @property
    def text_only(self) -> bool:
        """Whether its answer carries no log-probabilities (streamed, or none asked): it
        is judged on its text alone."""
        return self.stream or not self.logprobs

    @property
    def chat(self) -> bool:
        return self.path == CHAT_PATH


def choose(rng: random.Random, mix: Mix = DEFAULT_MIX, pool: Sequence[str] = PROMPTS) -> Shape:
    """A probe's shape drawn from ``rng`` (``pool``: the prompts an earlier user turn of
    a multi-turn chat is drawn from)."""
    chat = rng.random() < mix.chat_share
    stream = rng.random() < mix.stream_share
    max_tokens = rng.randint(mix.min_tokens, max(mix.min_tokens, mix.max_tokens))
    top = rng.choice(mix.top_choices)
    style = rng.choice((SDK, HAND))
    chat_max = rng.choice(("max_tokens", "max_completion_tokens"))
    extras: list[tuple[str, Any]] = []
    if rng.random() < mix.optional_share:
        extras.append(("n", 1))
    if rng.random() < mix.optional_share:
        extras.append(("top_p", 1))
    if stream and rng.random() < mix.optional_share:
        extras.append(("stream_options", {"include_usage": True}))
    order_seed = rng.getrandbits(32)
    limit: int | None = max_tokens
    if mix.long_tokens and rng.random() < mix.long_share:
        limit = rng.choice(mix.long_tokens)
    system = ""
    if chat and SYSTEM_PROMPTS and rng.random() < mix.system_share:
        system = rng.choice(SYSTEM_PROMPTS)
    history: list[tuple[str, str]] = []
    if chat and pool and mix.history_turns and rng.random() < mix.history_share:
        for _ in range(rng.choice(mix.history_turns)):
            history.append((rng.choice(pool), rng.choice(ASSISTANT_REPLIES)))
    sampling: list[tuple[str, Any]] = []
    if rng.random() < mix.seed_share:
        seed = rng.choice(SEEDS)
        if rng.random() < mix.random_seed_share:
            seed = rng.getrandbits(31)
        sampling.append(("seed", seed))
    if rng.random() < mix.penalty_share:
        sampling += [("presence_penalty", 0), ("frequency_penalty", 0)]
    if rng.random() < mix.stop_share:
        sampling.append(("stop", rng.choice(STOP_LISTS)))
    logprobs = True  # before the temperature: the sampled fields stay drawn last
    if not stream and mix.no_logprobs_share > 0 and rng.random() < mix.no_logprobs_share:
        logprobs = False
    temperature, sampler = 0.0, []  # drawn last: the other fields' draws are as before
    if mix.sampled_share > 0 and rng.random() < mix.sampled_share:  # streamed too (probe32)
        temperature = rng.choice(TEMPERATURES)
        if rng.random() < mix.top_p_share:
            sampler.append(("top_p", rng.choice(TOP_PS)))
    return Shape(
        path=CHAT_PATH if chat else COMPLETIONS_PATH,
        stream=stream,
        max_tokens=limit,
        top_logprobs=top,
        style=style,
        chat_max_field=chat_max,
        extras=tuple(extras),
        order_seed=order_seed,
        system=system,
        history=tuple(history),
        sampling=tuple(sampling),
        temperature=temperature,
        sampler=tuple(sampler),
        logprobs=logprobs,
    )


def reference_shape(shape: Shape, mix: Mix = DEFAULT_MIX) -> Shape:
    """What the verifier is asked for ``shape``'s reference: the same endpoint, messages
    (a chat probe's system message and earlier exchanges) and sampling fields (``seed``,
    penalties, ``stop``), greedy (a sampled probe's temperature and ``top_p`` left out),
    not streamed, ``mix.max_tokens`` tokens, :data:`REFERENCE_TOP` candidates, one fixed
    form (so one cached reference serves every shape of that
    prompt, endpoint, messages and sampling fields)."""
    return Shape(
        path=shape.path,
        max_tokens=mix.max_tokens,
        top_logprobs=REFERENCE_TOP,
        system=shape.system if shape.chat else "",
        history=shape.history if shape.chat else (),
        sampling=shape.sampling,
    )


def stops(shape: Shape) -> tuple[str, ...]:
    """The ``stop`` strings ``shape`` sends (where an honest answer may end short)."""
    return tuple(dict(shape.sampling).get("stop", ()))


def fields(shape: Shape, model: str, prompt: str) -> dict[str, Any]:
    """The body's fields (before ordering and spacing)."""
    out: dict[str, Any] = {"model": model, "temperature": shape.temperature or 0}
    if shape.chat:
        messages = [{"role": "system", "content": shape.system}] if shape.system else []
        for asked, answered in shape.history:
            messages += [
                {"role": "user", "content": asked},
                {"role": "assistant", "content": answered},
            ]
        out["messages"] = [*messages, {"role": "user", "content": prompt}]
        if shape.max_tokens is not None:
            out[shape.chat_max_field] = shape.max_tokens
        if not shape.text_only:
            out["logprobs"] = True
            out["top_logprobs"] = shape.top_logprobs
    else:
        out["prompt"] = prompt
        if shape.max_tokens is not None:
            out["max_tokens"] = shape.max_tokens
        if not shape.text_only:
            out["logprobs"] = shape.top_logprobs
    if shape.stream:
        out["stream"] = True
    for key, value in shape.sampling:
        out[key] = list(value) if key == "stop" else value
    out.update(dict(shape.extras))
    out.update(dict(shape.sampler))  # a sampled probe's top_p replaces a no-op top_p: 1
    return out


def render(shape: Shape, model: str, prompt: str) -> bytes:
    """The body as a client writes it (see the module docstring)."""
    body = fields(shape, model, prompt)
    lead = ["messages", "model"] if shape.chat else ["model", "prompt"]
    if shape.style == SDK:
        keys = [k for k in lead if k in body] + sorted(k for k in body if k not in lead)
        return json.dumps(
            {k: body[k] for k in keys}, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    rest = sorted(k for k in body if k != "model")
    random.Random(shape.order_seed).shuffle(rest)
    return json.dumps({k: body[k] for k in ["model", *rest]}).encode("utf-8")
