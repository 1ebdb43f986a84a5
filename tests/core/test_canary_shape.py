"""Probe shapes (core/canary_shape.py): drawn per probe, rendered as real clients write."""

from __future__ import annotations

import json
import random
from dataclasses import replace

from LLM_Mesh.core.canary_prompts import PROMPTS
from LLM_Mesh.core.canary_shape import (
    ASSISTANT_REPLIES,
    CHAT_PATH,
    COMPLETIONS_PATH,
    DEFAULT_MIX,
    REFERENCE_TOP,
    SEEDS,
    STOP_LISTS,
    SYSTEM_PROMPTS,
    TEMPERATURES,
    TOP_PS,
    Mix,
    Shape,
    choose,
    fields,
    reference_shape,
    render,
    stops,
)
from LLM_Mesh.core.limits import RequestLimits, check_body
from LLM_Mesh.core.schemas import ChatCompletionRequest, CompletionRequest
from LLM_Mesh.core.withheld import WITHHELD_FIELDS, has_withheld

MODEL = "gemma-3-270m"


def test_the_same_seed_gives_the_same_shape() -> None:
    assert choose(random.Random(3)) == choose(random.Random(3))


def test_shapes_vary_across_seeds_within_the_mix() -> None:
    shapes = [choose(random.Random(seed)) for seed in range(300)]
    assert {s.path for s in shapes} == {COMPLETIONS_PATH, CHAT_PATH}
    assert {s.stream for s in shapes} == {True, False}
    assert {s.style for s in shapes} == {"sdk", "hand"}
    lengths = {s.max_tokens for s in shapes}
    short = set(range(DEFAULT_MIX.min_tokens, DEFAULT_MIX.max_tokens + 1))
    assert lengths == short | set(DEFAULT_MIX.long_tokens)  # None: no limit sent
    assert {s.top_logprobs for s in shapes} == set(DEFAULT_MIX.top_choices)
    assert min(DEFAULT_MIX.top_choices) >= REFERENCE_TOP  # never fewer than the reference
    streamed = sum(s.stream for s in shapes) / len(shapes)
    assert abs(streamed - DEFAULT_MIX.stream_share) < 0.1
    extras = {k for s in shapes for k, _ in s.extras}
    assert extras == {"n", "top_p", "stream_options"}
    assert not any(dict(s.extras).get("stream_options") and not s.stream for s in shapes)


def test_a_share_of_probes_is_sampled_at_user_like_temperatures_streams_too() -> None:
    """Tell (a) of docs/security.md: a share of probes carries a temperature users send
    (≤ 1), some with a ``top_p``; streams too since probe32 (before: never, no
    log-probabilities; now judged by the reference's numbers, ``core/canary_sampled_text``)."""
    shapes = [choose(random.Random(seed)) for seed in range(600)]
    streams = [s for s in shapes if s.stream]
    sampled = [s for s in shapes if s.sampled]
    assert abs(len(sampled) / len(shapes) - DEFAULT_MIX.sampled_share) < 0.06
    streamed = [s for s in streams if s.sampled]
    assert abs(len(streamed) / len(streams) - DEFAULT_MIX.sampled_share) < 0.08
    assert {s.temperature for s in sampled} == set(TEMPERATURES) and max(TEMPERATURES) <= 1
    assert {v for s in sampled for _, v in s.sampler} == set(TOP_PS)
    assert {s.path for s in sampled} == {COMPLETIONS_PATH, CHAT_PATH}
    # the other fields draw as before: the sampled ones are drawn last
    off = replace(DEFAULT_MIX, sampled_share=0.0)
    for seed in range(50):
        a, b = choose(random.Random(seed)), choose(random.Random(seed), off)
        assert replace(a, temperature=0.0, sampler=()) == b


def test_a_share_of_non_streamed_probes_asks_no_logprobs_greedy_or_sampled() -> None:
    """probe33: every non-streamed probe asked for ``logprobs``, so a node lying only to
    requests without them was probed on streams alone. Now ``no_logprobs_share`` of them ask
    none (judged on the text, ``Shape.text_only``); the reference still asks its 5; the
    other fields draw as before (the flag is drawn after them, before the temperature)."""
    shapes = [choose(random.Random(seed)) for seed in range(600)]
    plain = [s for s in shapes if not s.stream]
    bare = [s for s in plain if not s.logprobs]
    assert not any(not s.logprobs for s in shapes if s.stream)  # a stream: never asked anyway
    assert abs(len(bare) / len(plain) - DEFAULT_MIX.no_logprobs_share) < 0.08
    assert {s.sampled for s in bare} == {True, False} and {s.path for s in bare} == {
        COMPLETIONS_PATH, CHAT_PATH}  # fmt: skip
    assert all(s.text_only for s in bare) and not any(s.text_only for s in plain if s.logprobs)
    ref = reference_shape(replace(bare[0], path=COMPLETIONS_PATH))
    assert ref.logprobs and json.loads(render(ref, MODEL, "hi"))["logprobs"] == REFERENCE_TOP
    off = replace(DEFAULT_MIX, no_logprobs_share=0.0)
    for seed in range(50):
        a, b = choose(random.Random(seed)), choose(random.Random(seed), off)
        assert b.logprobs and replace(a, logprobs=True, temperature=0.0, sampler=()) == replace(
            b, temperature=0.0, sampler=())  # fmt: skip


def test_a_sampled_probes_reference_is_greedy_and_shared_with_the_greedy_probes() -> None:
    shape = Shape(temperature=0.7, sampler=(("top_p", 0.9),), sampling=(("seed", 42),))
    ref = reference_shape(shape)
    assert ref == reference_shape(replace(shape, temperature=0.0, sampler=()))
    body = json.loads(render(ref, MODEL, "hi"))
    assert body["temperature"] == 0 and "top_p" not in body and body["seed"] == 42
    probe = json.loads(render(replace(shape, extras=(("top_p", 1),)), MODEL, "hi"))
    assert probe["temperature"] == 0.7 and probe["top_p"] == 0.9 and probe["logprobs"] == 5


def test_a_mix_without_streams_or_chat_draws_none() -> None:
    mix = Mix(stream_share=0.0, chat_share=0.0, min_tokens=16, max_tokens=16, long_share=0.0)
    for seed in range(50):
        s = choose(random.Random(seed), mix)
        assert not s.stream and s.path == COMPLETIONS_PATH and s.max_tokens == 16


def test_every_body_is_greedy_or_sampled_and_only_adds_no_op_fields() -> None:
    for seed in range(200):
        shape = choose(random.Random(seed))
        body = json.loads(render(shape, MODEL, "def f():"))
        assert body["model"] == MODEL and body["temperature"] == shape.temperature
        assert body.get("n", 1) == 1 and body.get("top_p", 1) == dict(shape.sampler).get("top_p", 1)
        if shape.temperature == 0:
            assert not shape.sampler
        if shape.path == CHAT_PATH:
            system = [{"role": "system", "content": shape.system}] if shape.system else []
            history = [
                {"role": role, "content": text}
                for asked, answered in shape.history
                for role, text in (("user", asked), ("assistant", answered))
            ]
            assert body["messages"] == [*system, *history, {"role": "user", "content": "def f():"}]
            assert body.get("max_tokens", body.get("max_completion_tokens")) == shape.max_tokens
        else:
            assert body["prompt"] == "def f():" and body.get("max_tokens") == shape.max_tokens
        assert body.get("presence_penalty", 0) == 0 and body.get("frequency_penalty", 0) == 0
        if "seed" in body:  # a common one or a random one below 2**31
            assert body["seed"] in SEEDS or 0 <= body["seed"] < 2**31
        if "stop" in body:
            assert tuple(body["stop"]) in STOP_LISTS
        if shape.stream:  # a stream carries no log-probabilities: asks for none
            assert body["stream"] is True and "logprobs" not in body
        elif not shape.logprobs:  # none asked: its text alone is judged (probe33)
            assert "stream" not in body and "logprobs" not in body
            assert "top_logprobs" not in body
        else:
            assert "stream" not in body
            want = True if shape.path == CHAT_PATH else shape.top_logprobs
            assert body["logprobs"] == want
            if shape.path == CHAT_PATH:
                assert body["top_logprobs"] == shape.top_logprobs


def test_the_sdk_form_is_compact_with_the_tail_sorted() -> None:
    shape = Shape(style="sdk", extras=(("top_p", 1), ("n", 1)))
    raw = render(shape, MODEL, "hi")
    assert raw == (
        b'{"model":"gemma-3-270m","prompt":"hi","logprobs":5,"max_tokens":16,'
        b'"n":1,"temperature":0,"top_p":1}'
    )
    chat = render(Shape(path=CHAT_PATH, style="sdk"), MODEL, "hi")
    assert chat.startswith(b'{"messages":[{"role":"user","content":"hi"}],"model":')


def test_the_hand_written_form_has_default_spacing_and_its_own_order() -> None:
    orders = set()
    for seed in range(20):
        raw = render(Shape(style="hand", order_seed=seed), MODEL, "hi")
        assert raw.startswith(b'{"model": "gemma-3-270m", ')
        orders.add(tuple(json.loads(raw)))
    assert len(orders) > 5


def test_the_reference_form_is_one_per_endpoint() -> None:
    plain = Mix(history_share=0.0, seed_share=0.0, penalty_share=0.0, stop_share=0.0)
    refs = {reference_shape(choose(random.Random(seed), plain)) for seed in range(300)}
    assert refs == {
        Shape(path=COMPLETIONS_PATH, max_tokens=DEFAULT_MIX.max_tokens),
        Shape(path=CHAT_PATH, max_tokens=DEFAULT_MIX.max_tokens),
    } | {  # chat: one per system message too (the reference has the probe's messages)
        Shape(path=CHAT_PATH, max_tokens=DEFAULT_MIX.max_tokens, system=s) for s in SYSTEM_PROMPTS
    }
    assert all(not r.stream and r.top_logprobs == REFERENCE_TOP for r in refs)


class _Edge(random.Random):
    """An RNG whose ``random()`` returns its lowest value, 0.0 (``[0, 1)`` includes it)."""

    def random(self) -> float:
        return 0.0


def test_a_share_of_0_never_draws_even_at_the_rngs_lowest_value() -> None:
    none = Mix(stream_share=0.0, chat_share=0.0, optional_share=0.0)
    shape = choose(_Edge(1), none)
    assert (shape.path, shape.stream, shape.extras) == (COMPLETIONS_PATH, False, ())
    streams = choose(_Edge(1), Mix(stream_share=1.0, optional_share=0.0))
    assert streams.stream and streams.extras == ()  # not even stream_options
    every = Mix(stream_share=1.0, chat_share=1.0, optional_share=1.0)
    shape = choose(_Edge(1), every)
    assert (shape.path, shape.stream) == (CHAT_PATH, True)
    assert dict(shape.extras) == {"n": 1, "top_p": 1, "stream_options": {"include_usage": True}}


def test_a_streamed_probe_asks_for_usage_as_the_sdk_does() -> None:
    shapes = [choose(random.Random(seed)) for seed in range(100)]
    options = [
        dict(s.extras)["stream_options"] for s in shapes if "stream_options" in dict(s.extras)
    ]
    assert options and all(o == {"include_usage": True} for o in options)


def test_chat_probes_use_both_names_of_the_token_limit() -> None:
    shapes = [choose(random.Random(seed), Mix(chat_share=1.0)) for seed in range(50)]
    assert {s.chat_max_field for s in shapes} == {"max_tokens", "max_completion_tokens"}
    for s in shapes:
        body = json.loads(render(s, MODEL, "hi"))
        assert body.get(s.chat_max_field) == s.max_tokens


def test_hand_written_probes_order_their_keys_per_probe_and_render_the_same_each_time() -> None:
    """The order is drawn per probe (not one order a node could learn), and is part of
    the shape: rendering it again gives the same bytes."""
    shapes = [choose(random.Random(seed), Mix(stream_share=0.0)) for seed in range(40)]
    hand = [s for s in shapes if s.style == "hand"]
    assert len({s.order_seed for s in shapes}) == len(shapes)
    assert len({tuple(json.loads(render(s, MODEL, "hi"))) for s in hand}) > 5
    full = Shape(style="hand", extras=(("n", 1), ("top_p", 1)), order_seed=12345)
    assert len({render(full, MODEL, "hi") for _ in range(5)}) == 1


def test_the_sdk_form_writes_non_ascii_text_as_utf8_as_httpx_does() -> None:
    raw = render(Shape(style="sdk"), MODEL, "café ✓")
    assert '"prompt":"café ✓"'.encode() in raw and b"\\u" not in raw


def test_no_probe_carries_a_field_user_requests_never_forward() -> None:
    """A user's ``user``, ``metadata``... never reach a node (core/withheld.py), so a probe
    carrying one would be told from users by it; and a probe is forwarded as its bytes (a
    withheld field would make the gateway re-encode it)."""
    for seed in range(300):
        shape = choose(random.Random(seed))
        body = json.loads(render(shape, MODEL, "def f():"))
        assert not has_withheld(body) and not set(WITHHELD_FIELDS) & set(body)


def test_a_probe_does_not_always_ask_for_32_tokens_or_fewer() -> None:
    """Played as the node: every probe asked for at most ``Mix.max_tokens`` (32) tokens,
    and users' requests often ask for more or set no limit at all; a node lying to every
    request asking more than 32 tokens (or none) was never probed on one. Now a share of
    probes asks for what users set (64 ... 512) or sends no limit."""
    shapes = [choose(random.Random(seed)) for seed in range(2000)]
    limits = [s.max_tokens for s in shapes]
    longer = [t for t in limits if t is None or t > DEFAULT_MIX.max_tokens]
    assert abs(len(longer) / len(shapes) - DEFAULT_MIX.long_share) < 0.04
    assert None in longer and {t for t in longer if t is not None} == {
        t for t in DEFAULT_MIX.long_tokens if t is not None
    }
    for s in shapes:
        body = json.loads(render(s, MODEL, "hi"))
        if s.max_tokens is None:
            assert "max_tokens" not in body and "max_completion_tokens" not in body
    for stream in (True, False):  # streamed and not alike
        assert any(
            t is None or t > 32 for s, t in zip(shapes, limits, strict=True) if s.stream is stream
        )


def test_a_chat_probe_is_not_always_one_lone_user_message() -> None:
    """Played as the node: every chat probe was exactly ``[{"role": "user", ...}]``, while
    chat clients commonly send a system message first. Now a share of chat probes starts
    with a common one, and the reference is asked with the same messages."""
    shapes = [choose(random.Random(seed), Mix(chat_share=1.0)) for seed in range(1000)]
    firsts = [json.loads(render(s, MODEL, "hi"))["messages"][0]["role"] for s in shapes]
    share = firsts.count("system") / len(firsts)
    assert abs(share - DEFAULT_MIX.system_share) < 0.05
    assert {s.system for s in shapes} == {"", *SYSTEM_PROMPTS}
    for s in shapes[:50]:
        ref = reference_shape(s)
        assert (
            json.loads(render(ref, MODEL, "hi"))["messages"]
            == json.loads(render(s, MODEL, "hi"))["messages"]
        )
    completions = [choose(random.Random(seed), Mix(chat_share=0.0)) for seed in range(200)]
    assert all(s.system == "" for s in completions)


def test_a_share_of_chat_probes_is_multi_turn_with_the_same_messages_for_the_reference() -> None:
    """Played as the node: every chat probe was single-turn (a user message after at most a
    system message), while chat clients send the conversation so far. Now a share of chat
    probes has one or two earlier exchanges (a user turn from the prompt pool, a short
    assistant turn) before the probed message, and the reference is asked with them."""
    pool = ("alpha prompt", "beta prompt", "gamma prompt")
    shapes = [choose(random.Random(seed), Mix(chat_share=1.0), pool) for seed in range(1000)]
    bodies = [json.loads(render(s, MODEL, "def f():")) for s in shapes]
    multi = [b for b in bodies if any(m["role"] == "assistant" for m in b["messages"])]
    assert abs(len(multi) / len(bodies) - DEFAULT_MIX.history_share) < 0.05
    assert {len(s.history) for s in shapes} == {0, *DEFAULT_MIX.history_turns}
    for s, b in zip(shapes, bodies, strict=True):
        roles = [m["role"] for m in b["messages"] if m["role"] != "system"]
        assert roles == ["user", "assistant"] * len(s.history) + ["user"]  # alternating
        assert b["messages"][-1] == {"role": "user", "content": "def f():"}
        assert all(asked in pool and answered in ASSISTANT_REPLIES for asked, answered in s.history)
        ref = json.loads(render(reference_shape(s), MODEL, "def f():"))
        assert ref["messages"] == b["messages"]
    drawn = {a for s in shapes for a, _ in s.history} | {r for s in shapes for _, r in s.history}
    assert drawn == set(pool) | set(ASSISTANT_REPLIES)
    completions = [choose(random.Random(seed), Mix(chat_share=0.0)) for seed in range(200)]
    assert all(s.history == () for s in completions)
    plain = [choose(random.Random(seed)) for seed in range(300)]  # the default pool
    assert {a for s in plain for a, _ in s.history} <= set(PROMPTS)


def test_a_share_of_probes_sends_seed_penalties_or_stop_and_the_reference_the_same() -> None:
    """Played as the node: no probe ever sent ``seed``, ``presence_penalty``,
    ``frequency_penalty`` or ``stop``, which users' clients often do. Now each comes on
    its share of probes, valid for the gateway and the node (their schemas and limits),
    and the reference is asked with the same fields (a ``stop`` changes the answer)."""
    shapes = [choose(random.Random(seed)) for seed in range(2000)]
    share = {
        "seed": DEFAULT_MIX.seed_share,
        "presence_penalty": DEFAULT_MIX.penalty_share,
        "frequency_penalty": DEFAULT_MIX.penalty_share,
        "stop": DEFAULT_MIX.stop_share,
    }
    for key, want in share.items():
        got = sum(key in dict(s.sampling) for s in shapes) / len(shapes)
        assert abs(got - want) < 0.04, (key, got)
    seeds = [dict(s.sampling).get("seed") for s in shapes]
    assert {x for x in seeds if x is None or x in SEEDS} == {None, *SEEDS}
    fresh = [x for x in seeds if x is not None and x not in SEEDS]  # random: each new
    given = sum(x is not None for x in seeds)
    assert abs(len(fresh) / given - DEFAULT_MIX.random_seed_share) < 0.1
    assert len(set(fresh)) == len(fresh) and all(0 <= x < 2**31 for x in fresh)
    assert {dict(s.sampling).get("stop") for s in shapes} == {None, *STOP_LISTS}
    for s in shapes[:300]:
        body = json.loads(render(s, MODEL, "def f():"))
        model = ChatCompletionRequest if s.chat else CompletionRequest
        parsed = model.model_validate(body)  # the gateway's and the node's validation
        assert parsed.stop_list() == list(stops(s)) and parsed.seed == body.get("seed")
        assert check_body(body, RequestLimits()) is None
        ref = json.loads(render(reference_shape(s), MODEL, "def f():"))
        for key in share:
            assert ref.get(key) == body.get(key)
    for stream in (True, False):  # streamed and not alike
        assert any(s.sampling for s in shapes if s.stream is stream)


def test_no_sampling_field_or_history_at_a_share_of_0() -> None:
    none = Mix(chat_share=1.0, history_share=0.0, seed_share=0.0, penalty_share=0.0,
               stop_share=0.0)  # fmt: skip
    shape = choose(_Edge(1), none)
    assert shape.history == () and shape.sampling == ()
    every = Mix(chat_share=1.0, history_share=1.0, seed_share=1.0, penalty_share=1.0,
                stop_share=1.0)  # fmt: skip
    shape = choose(_Edge(1), every)
    assert shape.history and {k for k, _ in shape.sampling} == {
        "seed", "presence_penalty", "frequency_penalty", "stop"
    }  # fmt: skip


# written against the module's mutants (mut33, 2026-12-06)


def test_the_other_shares_of_0_never_draw_at_the_rngs_lowest_value() -> None:
    """Long limits, a system message, a random seed and a sampled probe's ``top_p``, each
    at a share of 0, with every draw at 0.0."""
    none = Mix(chat_share=1.0, long_share=0.0, system_share=0.0, seed_share=1.0,
               random_seed_share=0.0, sampled_share=1.0, top_p_share=0.0)  # fmt: skip
    shape = choose(_Edge(1), none)
    assert shape.max_tokens is not None and shape.max_tokens <= DEFAULT_MIX.max_tokens
    assert shape.system == ""
    assert dict(shape.sampling)["seed"] in SEEDS
    assert shape.temperature in TEMPERATURES and shape.sampler == ()
    every = replace(none, long_share=1.0, system_share=1.0, random_seed_share=1.0,
                    top_p_share=1.0)  # fmt: skip
    shape = choose(_Edge(1), every)
    assert shape.max_tokens in DEFAULT_MIX.long_tokens and shape.system in SYSTEM_PROMPTS
    assert dict(shape.sampling)["seed"] not in SEEDS


def test_a_sampled_share_of_0_draws_nothing_for_it() -> None:
    """Sampling off (``sampled_share`` 0) takes no draw from the RNG: the probes after it
    are drawn as before sampled probes existed (a share just above 0 takes one)."""
    for seed in range(20):
        off, tiny = random.Random(seed), random.Random(seed)
        assert choose(off, replace(DEFAULT_MIX, sampled_share=0.0)).temperature == 0.0
        assert choose(tiny, replace(DEFAULT_MIX, sampled_share=1e-300)).temperature == 0.0
        assert off.getstate() != tiny.getstate()
        off.random()
        assert off.getstate() == tiny.getstate()


def test_a_sampled_probes_top_p_is_sent_as_top_p() -> None:
    every = Mix(sampled_share=1.0, top_p_share=1.0)
    for seed in range(10):
        shape = choose(random.Random(seed), every)
        ((key, value),) = shape.sampler
        assert key == "top_p" and value in TOP_PS
        assert json.loads(render(shape, MODEL, "hi"))["top_p"] == value


def test_stop_strings_are_sent_as_a_json_list() -> None:
    shape = Shape(sampling=(("stop", ("\n\n", "###")), ("seed", 7)))
    assert fields(shape, MODEL, "hi")["stop"] == ["\n\n", "###"]
    assert fields(shape, MODEL, "hi")["seed"] == 7


def test_a_completions_shapes_reference_carries_no_chat_messages() -> None:
    """One fixed form: a completions shape's reference has no system message or history,
    whatever the shape held (only a chat sends them)."""
    odd = Shape(path=COMPLETIONS_PATH, system="Be brief.", history=(("q", "a"),))
    ref = reference_shape(odd)
    assert (ref.system, ref.history) == ("", ())
    assert ref == reference_shape(Shape(path=COMPLETIONS_PATH))
    chat = Shape(path=CHAT_PATH, system="Be brief.", history=(("q", "a"),))
    assert (reference_shape(chat).system, reference_shape(chat).history) == (
        "Be brief.", (("q", "a"),)
    )  # fmt: skip
