"""The rule that holds a probe's ``usage`` to its evidence (``core/canary_usage.py``)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from LLM_Mesh.core.canary_usage import (
    StatedUsage,
    UsageSlack,
    check_usage,
    covering_entries,
    kept_tokens,
    stated_usage,
)


def test_stated_usage_reads_counts_and_refuses_what_is_not_one() -> None:
    assert stated_usage({"usage": {"prompt_tokens": 5, "completion_tokens": 7}}) == (
        StatedUsage(5, 7)
    )
    for usage in (None, [], {"prompt_tokens": 5}, {"prompt_tokens": -1, "completion_tokens": 2},
                  {"prompt_tokens": True, "completion_tokens": 2},
                  {"prompt_tokens": 1.5, "completion_tokens": 2}):  # fmt: skip
        assert stated_usage({"usage": usage}) is None
    assert stated_usage({}) is None


def test_a_count_of_zero_is_a_count() -> None:
    """An empty answer states 0 completion tokens (a stop at once); an empty prompt, 0."""
    assert stated_usage({"usage": {"prompt_tokens": 0, "completion_tokens": 0}}) == (
        StatedUsage(0, 0)
    )


def test_a_completion_within_its_entries_and_the_slack_passes() -> None:
    ref = StatedUsage(10, 32)
    assert check_usage(StatedUsage(10, 16), ref, entries=16) is None
    assert check_usage(StatedUsage(10, 18), ref, entries=16) is None  # + 2: an end token
    v = check_usage(StatedUsage(10, 19), ref, entries=16)
    assert v is not None and v.reason == "usage_completion" and (v.stated, v.bound) == (19, 18)
    assert v.describe() == (
        "usage_completion: 19 completion tokens stated, at most 18 (16 log-probability entries + 2)"
    )


def test_a_stop_string_widens_the_completion_bound_by_its_bytes() -> None:
    assert check_usage(StatedUsage(10, 21), None, entries=16, stop_bytes=3) is None
    v = check_usage(StatedUsage(10, 22), None, entries=16, stop_bytes=3)
    assert v is not None and v.bound == 21
    assert v.describe().endswith("(16 log-probability entries + 2 + 3 for the stop string)")
    v = check_usage(StatedUsage(10, 1000), None, entries=16, stop_bytes=10_000)
    assert v is not None and v.bound == 16 + 2 + 64  # at most MAX_STOP_TOKENS


def test_a_stream_is_held_to_the_references_entries_for_its_text() -> None:
    assert check_usage(StatedUsage(10, 6), None, entries=None, reference_entries=4) is None
    v = check_usage(StatedUsage(10, 7), None, entries=None, reference_entries=4)
    assert v is not None and v.describe() == (
        "usage_completion: 7 completion tokens stated, at most 6 "
        "(4 the reference's tokens for that text split at whitespace + 2)"
    )
    # no evidence of its count (diverged from the reference): only the prompt is held
    assert check_usage(StatedUsage(10, 700), StatedUsage(10, 4), entries=None) is None


def test_the_prompt_is_held_to_the_verifiers_count_and_its_share() -> None:
    ref = StatedUsage(40, 32)
    assert check_usage(StatedUsage(49, 4), ref, entries=4) is None  # 40 + 4 + 40 // 8
    v = check_usage(StatedUsage(50, 4), ref, entries=4)
    assert v is not None and v.reason == "usage_prompt"
    assert (
        v.describe() == "usage_prompt: 50 prompt tokens stated, at most 49 (the verifier's 40 + 9)"
    )
    assert check_usage(StatedUsage(10_000, 4), None, entries=4) is None  # no reference count
    tight = UsageSlack(completion=0, prompt=0, prompt_share=0.0)
    assert check_usage(StatedUsage(41, 4), ref, entries=4, slack=tight) is not None


def test_no_usage_stated_is_no_verdict() -> None:
    assert check_usage(None, StatedUsage(3, 4), entries=0) is None


def test_covering_entries_counts_the_tokens_that_spell_a_beginning_of_the_reference() -> None:
    """The pieces of the text's other characters (cut where the reference's tokens end)
    and a token a whitespace byte, the text's or the counted tokens' (since ws34: an honest
    engine may split whitespace more finely than the reference, ``"    "`` as four)."""
    toks = [" def", " f", "():", "\n", "    return", " 1"]
    assert covering_entries("", toks) == 0
    assert covering_entries(" def f():\n", toks) == 3 + 3  # and the whitespace token after
    assert covering_entries(" def f():", toks) == 3 + 3  # (a detokeniser may leave it out)
    assert covering_entries("def  f():\n  return", toks) == 4 + 7  # whitespace aside
    assert covering_entries(" def f():\n    ret", toks) == 4 + 7  # a stop string cut a token
    assert covering_entries(" def f():\n    return 1", toks) == 5 + 8
    assert covering_entries(" def f():\n    re turn 1", toks) == 6 + 9  # "re", "turn"
    assert covering_entries("\n", ["\n", "\n", " x"]) == 2
    assert covering_entries("\u3000x", ["\u3000x"]) == 1 + 3  # a byte-level tokenizer's
    assert covering_entries(" def g():", toks) is None  # diverged
    assert covering_entries(" def f():\n    return 1 + 2", toks) is None  # ran past


def test_a_text_that_ran_past_the_reference_in_whitespace_alone_is_no_evidence() -> None:
    """Found 2026-12-06 in CI (e2e, the real gemma-3-270m): an honest node's answer to a probe
    without ``max_tokens`` went on past the reference's 32 tokens in newlines alone, 200
    tokens stated; whitespace aside it spelled the reference's 32, so its count was held to
    34 and the honest node failed (``usage_completion``). Whitespace the reference's tokens
    do not hold is tokens they cannot count: at most one a character (canary34; since ws34
    every whitespace byte of the text, the reference's too)."""
    toks = [" def", " f", "():", "\n", "    return", " 1"]
    assert covering_entries(" def f():\n    return 1" + "\n" * 168, toks) == 5 + 8 + 168
    assert covering_entries(" def f():" + "\n" * 5, toks) == 3 + 7  # diverged in newlines
    assert covering_entries(" def f():\n    return 1", toks) == 5 + 8  # as before
    assert covering_entries(" def f():\n", toks) == 3 + 3


def test_an_honest_node_splitting_whitespace_more_finely_than_the_reference_passes() -> None:
    """Found 2026-12-06 (ws34, a reviewer of canary34): an honest node that spells the
    reference's ``"\\n\\n\\n\\n"`` with a newline a token, and one newline more, states 7
    (6 tokens and the end token); canary34 held it to 2 + 1 + 2 = 5 and quarantined it
    (before canary34 the text was no evidence). Every whitespace character of the text may
    be a token of its own, in the reference's whitespace-only tokens, beyond them, and in
    its tokens that hold letters too (``"\\n\\nThe"`` spelled ``"\\n"``, ``"\\n"``, ``"The"``)."""
    text = "X" + "\n" * 5
    assert check_usage(
        StatedUsage(3, 7), None, entries=None,
        reference_entries=covering_entries(text, ["X", "\n\n\n\n"]),
    ) is None  # fmt: skip
    assert covering_entries(text, ["X", "\n\n\n\n"]) == 1 + 5
    assert covering_entries("\n\nThe", ["\n\nThe"]) == 3  # "\n", "\n", "The"
    assert covering_entries("a b", ["a b"]) == 3  # "a", " ", "b"
    assert covering_entries("\n\nThe end", ["\n\nThe", " end"]) == 3 + 2


_LETTERS = "ab"
_SPACES = "\n \t"


def _random_token(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.25:  # whitespace alone ("\n\n\n\n")
        return "".join(rng.choice(_SPACES) for _ in range(rng.randint(1, 4)))
    parts = []  # letters with whitespace before, inside or after ("\n\nThe", " x", "a b")
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.6:
            parts.append("".join(rng.choice(_SPACES) for _ in range(rng.randint(1, 3))))
        parts.append("".join(rng.choice(_LETTERS) for _ in range(rng.randint(1, 3))))
    return "".join(parts)


def _split(token: str, rng: random.Random | None) -> list[str]:
    """``token`` cut at its whitespace boundaries (beside a whitespace character): at
    every one (``rng`` None: the finest split, the most tokens any such split holds), or
    at a random subset of them."""
    cuts = [i for i in range(1, len(token)) if token[i - 1].isspace() or token[i].isspace()]
    kept = [i for i in cuts if rng is None or rng.random() < 0.5]
    pieces = [token[a:b] for a, b in zip([0, *kept], [*kept, len(token)], strict=True)]
    assert "".join(pieces) == token and all(pieces)
    return pieces


def test_the_bound_is_never_below_an_honest_split_at_whitespace_on_random_references() -> None:
    """Seeded: random references (whitespace alone, letters after, before and around
    whitespace); an honest text is a beginning of their text, cut at a token's end or
    inside it (a stop string), perhaps with newlines past it (a node that ran on), or with
    the whitespace-only tokens after it emitted and left out of the text (a detokeniser's,
    measured). The node's tokens are the reference's split at whitespace boundaries, the
    finest way and random ways: the bound is never below their count (and the end token
    within the slack). A padder is held to a token a whitespace character it adds."""
    rng = random.Random(20261206)
    for _ in range(3000):
        tokens = [_random_token(rng) for _ in range(rng.randint(1, 6))]
        m = rng.randint(0, len(tokens))
        spelled, left_out = tokens[:m], []
        if m < len(tokens) and rng.random() < 0.3:  # a stop string cut inside token m
            spelled = [*spelled, tokens[m][: rng.randint(1, len(tokens[m]))]]
        elif rng.random() < 0.3:  # ran past the reference in newlines
            spelled = [*spelled, "\n" * rng.randint(1, 6)]
        else:  # the whitespace-only tokens after it, emitted, left out of the text
            rest = tokens[m:]
            while rest and not rest[0].strip():
                left_out.append(rest.pop(0))
        text = "".join(spelled)
        bound = covering_entries(text, tokens)
        assert bound is not None, (text, tokens)
        for way in (None, rng, rng, rng):
            honest = [p for t in (*spelled, *left_out) for p in _split(t, way)]
            assert bound >= len(honest), (text, tokens, left_out, bound, honest)
            stated = StatedUsage(3, len(honest) + 1)  # and the end token
            assert check_usage(stated, None, entries=None, reference_entries=bound) is None
        pad = "".join(rng.choice(_SPACES) for _ in range(rng.randint(1, 5)))
        padded = covering_entries(text + pad, tokens)
        assert padded is not None and padded <= bound + len(pad), (text, pad, tokens)


def test_a_text_past_the_reference_with_no_whitespace_to_spare_is_no_evidence() -> None:
    """Ran past the reference in what it spells (a ``2`` after the ``1``), with no more
    whitespace than the tokens hold: not a beginning of the reference, so no count."""
    toks = [" def", " f", "():", "\n", "    return", " 1"]
    assert covering_entries(" def f():\n    return 12", toks) is None
    assert covering_entries("x", ["a"]) is None  # diverged in the last token, no space at all


def test_whitespace_past_what_the_counted_tokens_hold_is_counted_as_such() -> None:
    """Whitespace is counted as whitespace, not against the tokens' other characters: the
    extra newline of a text cut inside a token (``ret`` of ``    return``) is one token more,
    and a cut token's own letters make no room for it."""
    toks = [" def", " f", "():", "\n", "    return", " 1"]
    assert covering_entries(" def f():\n\n    ret", toks) == 4 + 7 + 1  # (ws34: + 7)
    assert covering_entries(" def f():\n    ret", toks) == 4 + 7


# canary35: a greedy probe's reference tokens an honest node emits as they are


@dataclass(frozen=True)
class _Tok:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]


def _sure(tokens: Sequence[str], far: float = 3.0) -> list[_Tok]:
    """Tokens each 3 nats above another that spells something else (``" zz"``)."""
    return [_Tok(t, -0.1, ((t, -0.1), ("zz", -0.1 - far))) for t in tokens]


def test_a_greedy_references_tokens_with_no_near_tie_are_counted_as_they_are() -> None:
    """canary35: ``"▁The"`` counted one token, not ``"▁"`` and ``"The"`` (ws34's rule
    alone): an honest greedy node picks the reference's token where no other is near."""
    toks = [" def", " f", "():", "\n", "    return", " 1"]
    assert kept_tokens(_sure(toks), 1.5) == 6
    assert covering_entries(" def f():\n    return 1", toks) == 5 + 8  # ws34's alone
    assert covering_entries(" def f():\n    return 1", toks, kept=6) == 6
    assert covering_entries(" def f():\n    ret", toks, kept=6) == 4 + 1 + 4  # cut: ws34's
    assert covering_entries(" def f():", toks, kept=6) == 3 + 1  # the "\n" left out
    assert covering_entries(" def f():\n    return 1" + "\n" * 9, toks, kept=6) == 6 + 9
    assert covering_entries("def f():\n    return 1", toks, kept=6) == 5 + 8  # not as they
    assert covering_entries(" def f():\n    return 1 2", toks, kept=6) is None
    # gemma-3-270m's own tokens split a lone space off before digits: the candidate that
    # never counts one (benchmarks/probe_canary_usage_bound.py) holds them to 8 + 2 < 10 + 1
    gemma = ["in", " ", "2", "0", "2", "6", " and", " ", "3", " more"]
    assert covering_entries("in 2026 and 3 more", gemma) == 8 + 4
    assert covering_entries("in 2026 and 3 more", gemma, kept=10) == 10


def test_a_near_tie_that_may_spell_the_text_otherwise_ends_the_kept_tokens() -> None:
    toks = [" The", " end", "\n\n", " of"]
    near = [*_sure(toks[:2]), _Tok("\n\n", -0.5, (("\n\n", -0.5), ("\n", -1.2))), *_sure(toks[3:])]
    assert kept_tokens(near, 1.5) == 2  # "\n" for "\n\n": a finer split may follow
    assert kept_tokens(near, 0.5) == 4  # 0.7 nats below: not near at this margin
    other = [_Tok(" The", -0.5, ((" The", -0.5), (" A", -0.6), ("zz", -3))), *_sure(toks[1:])]
    assert kept_tokens(other, 1.5) == 4  # " A" leaves the text: no count, not a split
    for alt in (" ", "The", " Th", " Thee", "\ufffd"):  # whitespace, a prefix, more, a byte
        tied = [_Tok(" The", -0.5, ((" The", -0.5), (alt, -0.6), ("zz", -3))), *_sure(toks[1:])]
        assert kept_tokens(tied, 1.5) == 0, alt
    unlisted = [*_sure(toks[:1]), _Tok(" end", -0.5, ((" end", -0.5), ("zz", -0.9)))]
    assert kept_tokens(unlisted, 1.5) == 1  # the last listed is near: so may an unlisted be
    assert kept_tokens([*_sure(toks[:1]), _Tok("\ufffd", -0.1, (("\ufffd", -0.1),))], 1.5) == 1
    assert kept_tokens([*_sure(toks[:1]), _Tok(" end", -0.1, ())], 1.5) == 1


_WS = st.text(alphabet="\n \t", min_size=1, max_size=3)
_WORD = st.text(alphabet="ab", min_size=1, max_size=3)
_TOKEN = st.one_of(
    _WS,
    st.lists(st.tuples(st.one_of(st.just(""), _WS), _WORD), min_size=1, max_size=3).map(
        lambda parts: "".join(a + b for a, b in parts)
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    tokens=st.lists(_TOKEN, min_size=1, max_size=6),
    kept=st.integers(0, 6),
    left=st.integers(0, 6),
    cut=st.integers(0, 20),
    ran_on=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_the_bound_holds_every_honest_node_that_keeps_the_kept_tokens(
    tokens: list[str], kept: int, left: int, cut: int, ran_on: int, seed: int
) -> None:
    """An honest greedy node emits the ``kept`` tokens as they are, then any of ws34's honest
    splits at whitespace of the rest (the finest or a random one), from any place ``d`` at
    or past ``kept``; its text a beginning of theirs (cut inside a token by a stop string,
    or run on in newlines). The bound is never below its count, never above ws34's."""
    d = min(max(kept, left), len(tokens))
    rng = random.Random(seed)
    full = "".join(tokens)
    spelled = full[: max(cut, len("".join(tokens[:d])))] if cut < len(full) else full
    text = spelled + ("\n" * ran_on if spelled == full else "")
    rest = text[len("".join(tokens[:d])) :]
    own, done = list(tokens[:d]), len("".join(tokens[:d]))
    for t in tokens[d:]:  # the node's tokens for the rest of its text
        part = text[done : done + len(t)]
        if not part:
            break
        own += _split(part, rng if seed % 2 else None)
        done += len(part)
    own += ["\n"] * len(text[done:])
    assert "".join(own) == text and rest == text[len("".join(tokens[:d])) :]
    bound = covering_entries(text, tokens, kept=kept)
    assert bound is not None
    assert bound >= len(own), (text, tokens, kept, own)
    ws34 = covering_entries(text, tokens)
    assert ws34 is not None and bound <= ws34
    if text == full and kept >= len(tokens):
        assert bound == len(tokens)  # tight: the reference's own count
