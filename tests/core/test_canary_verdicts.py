"""The canary rule's verdicts whole, at the exact edges of its tolerances, and the OpenAI
shapes it reads (core/canary.py). Each test here killed a mutant ``tests/core/test_canary.py``
let live (2026-12-05): the verdicts were checked by their reason, not their fields, and no
tolerance at its exact value. The numbers are sums of powers of two (exact in floats)."""

from __future__ import annotations

from typing import Any

from LLM_Mesh.core.canary import (
    DEFAULT_RULE,
    Answer,
    Rule,
    TokenLogprob,
    Verdict,
    answer_from_openai,
    compare,
    compare_text,
    judged_part,
    sure_prefix,
)


def tok(t: str, lp: float, *top: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(t, lp, tuple(top) or ((t, lp),))


def sure(t: str, lp: float) -> TokenLogprob:
    """A token whose runner-up is far below (a sure token for the stream rule)."""
    return tok(t, lp, (t, lp), ("zz", lp - 8.0))


# four sure tokens with exact log-probabilities
EXACT = Answer("abcd", (sure("a", -0.5), sure("b", -0.25), sure("c", -0.5), sure("d", -0.25)))


def with_lp(a: Answer, i: int, lp: float) -> Answer:
    t = a.tokens[i]
    return Answer(a.text, (*a.tokens[:i], sure(t.token, lp), *a.tokens[i + 1 :]))


def test_the_default_tolerances_are_the_measured_ones() -> None:
    """The edges below are written for these (docs/benchmarks.md, "Canary probes")."""
    assert (DEFAULT_RULE.logprob_tolerance, DEFAULT_RULE.tie_margin) == (1.0, 1.0)
    assert (DEFAULT_RULE.stream_tie_margin, DEFAULT_RULE.mean_min_tokens) == (1.5, 4)


def test_each_verdict_carries_its_position_and_deltas() -> None:
    """What the prober records and ``describe`` prints: ok, reason, where, max and mean |Δ|."""
    assert compare(EXACT, EXACT) == Verdict(True, "match", None, 0.0, None, 0.0)
    assert compare(EXACT, Answer(EXACT.text, ())) == Verdict(False, "no_logprobs", 0)
    assert compare(EXACT, with_lp(EXACT, 0, 0.5)) == Verdict(False, "logprob", 0, 0.0)
    assert compare(EXACT, with_lp(EXACT, 1, -1.5)) == Verdict(
        False, "logprob", 1, 1.25, None, 0.625
    )
    worse = Answer("axcd", (EXACT.tokens[0], sure("x", -0.5), *EXACT.tokens[2:]))
    assert compare(EXACT, worse) == Verdict(False, "token", 1, 0.0, None, 0.0)
    assert compare(EXACT, Answer("ab", EXACT.tokens[:2])) == Verdict(
        False, "length", 2, 0.0, None, 0.0
    )
    lower = Answer(EXACT.text, tuple(sure(t.token, t.logprob - 0.25) for t in EXACT.tokens))
    assert compare(EXACT, lower) == Verdict(False, "logprob_mean", None, 0.25, None, 0.25)
    assert compare(EXACT, Answer("wxyz", EXACT.tokens)) == Verdict(
        False, "text", None, 0.0, None, 0.0
    )
    tie = tok("b", -0.25, ("b", -0.25), ("y", -0.5))
    ref = Answer("abcd", (EXACT.tokens[0], tie, *EXACT.tokens[2:]))
    diverged = Answer("ayz", (EXACT.tokens[0], tok("y", -0.5), sure("z", -0.5)))
    assert compare(ref, diverged) == Verdict(True, "diverged_at_tie", 1, 0.0, 1, 0.0)


def test_describe_says_what_the_verdict_holds() -> None:
    v = Verdict(False, "logprob", 0, 1.25, None, 0.0625)
    assert v.describe() == "logprob at token 0, max |Δlogprob| 1.2500, mean 0.0625"
    assert Verdict(True, "match").describe() == "match"
    assert Verdict(False, "text", None, 0.0).describe() == "text, max |Δlogprob| 0.0000"
    assert compare(EXACT, with_lp(EXACT, 1, -1.5)).describe() == (
        "logprob at token 1, max |Δlogprob| 1.2500, mean 0.6250"
    )


def test_a_chosen_token_off_by_exactly_the_tolerance_passes() -> None:
    two = Answer("ab", EXACT.tokens[:2])  # too few tokens for the mean's check
    at = with_lp(two, 1, -0.25 - DEFAULT_RULE.logprob_tolerance)
    assert compare(two, at) == Verdict(True, "match", None, 1.0, None, 0.5)
    beyond = with_lp(two, 1, -0.25 - DEFAULT_RULE.logprob_tolerance - 2**-20)
    assert compare(two, beyond).reason == "logprob"


def test_a_mean_of_exactly_the_mean_tolerance_passes() -> None:
    rule = Rule(mean_tolerance=0.25)
    lower = Answer(EXACT.text, tuple(sure(t.token, t.logprob - 0.25) for t in EXACT.tokens))
    assert compare(EXACT, lower, rule) == Verdict(True, "match", None, 0.25, None, 0.25)
    rule = Rule(mean_tolerance=0.25 - 2**-20)
    assert compare(EXACT, lower, rule).reason == "logprob_mean"


def test_a_log_probability_a_rounding_puts_just_above_zero_is_possible() -> None:
    """Up to 1e-6 above 0 (an engine's rounding of a certain token); beyond, impossible."""
    certain = Answer("a", (sure("a", 0.0),))
    assert compare(certain, Answer("a", (sure("a", 1e-6),))).ok
    bad = compare(certain, Answer("a", (sure("a", 2e-6),)))
    assert (bad.ok, bad.reason) == (False, "logprob")


def _diverges(ref_tok: TokenLogprob, got_tok: TokenLogprob) -> str:
    return compare(Answer(ref_tok.token, (ref_tok,)), Answer(got_tok.token, (got_tok,))).reason


def test_a_near_tie_at_exactly_the_tie_margin_and_the_tolerance_counts() -> None:
    """Both edges of :func:`_near_tie`, for a tie the reference shows and one the node shows:
    the runner-up exactly ``tie_margin`` below the pick, and the two numbers for the shared
    token exactly ``logprob_tolerance`` apart, are a tie; a hair beyond either is not."""
    e = 2**-20
    # the reference lists the node's token "b"
    assert _diverges(tok("a", -0.5, ("a", -0.5), ("b", -1.5)), tok("b", -1.5)) == (
        "diverged_at_tie"
    )
    assert _diverges(tok("a", -0.5, ("a", -0.5), ("b", -1.5 - e)), tok("b", -1.5 - e)) == "token"
    assert _diverges(tok("a", -0.5, ("a", -0.5), ("b", -1.0)), tok("b", -2.0)) == (
        "diverged_at_tie"
    )
    assert _diverges(tok("a", -0.5, ("a", -0.5), ("b", -1.0)), tok("b", -2.0 - e)) == "token"
    # the node lists the reference's token "a"
    assert _diverges(tok("a", -1.0), tok("b", -0.25, ("b", -0.25), ("a", -1.25))) == (
        "diverged_at_tie"
    )
    assert _diverges(tok("a", -1.0), tok("b", -0.25, ("b", -0.25), ("a", -1.25 - e))) == "token"
    assert _diverges(tok("a", -0.25), tok("b", -0.5, ("b", -0.5), ("a", -1.25))) == (
        "diverged_at_tie"
    )
    assert _diverges(tok("a", -0.25 + e), tok("b", -0.5, ("b", -0.5), ("a", -1.25))) == "token"


def test_a_runner_up_exactly_the_stream_margin_below_is_not_sure() -> None:
    at = Answer("ab", (sure("a", -0.5), tok("b", -0.5, ("b", -0.5), ("c", -2.0))))
    assert [t.token for t in sure_prefix(at)] == ["a"]
    below = Answer("ab", (sure("a", -0.5), tok("b", -0.5, ("b", -0.5), ("c", -2.0 - 2**-20))))
    assert [t.token for t in sure_prefix(below)] == ["a", "b"]


def test_compare_text_uses_the_rule_it_is_given() -> None:
    a = Answer("ab", (sure("a", -0.1), tok("b", -0.25, ("b", -0.25), ("c", -1.5))))
    assert compare_text(a, "ac") == Verdict(True, "text_match", 1)  # "b" is no sure token
    assert compare_text(a, "ac", Rule(stream_tie_margin=1.0)) == Verdict(False, "stream_text", 1)


def test_stream_verdicts_carry_their_position() -> None:
    assert compare_text(EXACT, "abcd") == Verdict(True, "text_match", 4)
    assert compare_text(EXACT, "abxd") == Verdict(False, "stream_text", 2)
    assert compare_text(EXACT, "") == Verdict(False, "stream_text", 0)


def test_sure_tokens_that_are_all_white_space_give_no_evidence() -> None:
    blank = Answer("\n  ", (sure("\n", -0.25), sure("  ", -0.25)))
    assert compare_text(blank, "anything") == Verdict(True, "no_sure_tokens", 0)
    assert compare_text(Answer("", ()), "anything") == Verdict(True, "no_sure_tokens", 0)


def test_a_stream_cut_at_any_stop_string_in_the_tokens_passes() -> None:
    """The reference's tokens may run on through several turns (a stop string more than
    once, or first): the stream may end where any of them begins, at a token's end."""
    turns = (" A", "\nUser:", " B", "\nUser:", " C", "\nUser:")
    ref = Answer("".join(turns), tuple(sure(t, -0.25) for t in turns))
    assert compare_text(ref, " A") == Verdict(True, "text_match", 1)  # the first of three
    assert compare_text(ref, " A\nUser: B") == Verdict(True, "text_match", 3)  # the middle one
    assert compare_text(ref, " A\nUser: B\nUser: C") == Verdict(True, "text_match", 5)
    assert compare_text(ref, " A\nUser: B\nUs") == Verdict(False, "stream_text", 3)
    first = ("\nUser:", " A", "\nUser:")  # the tokens begin with a stop string
    ref = Answer("".join(first), tuple(sure(t, -0.25) for t in first))
    assert compare_text(ref, "\nUser: A") == Verdict(True, "text_match", 2)


def test_an_honest_answer_a_stop_string_cut_short_says_where() -> None:
    """The honest chat answer of ``test_canary.py`` (" I am a student", its tokens running on
    into "\\nUser:"): the stream's verdict is a match ended by the stop string's first token."""
    words = (" I", " am", " a", " student", "\n", "User", ":")
    stopped = Answer(" I am a student", tuple(sure(t, -0.25) for t in words))
    assert compare_text(stopped, stopped.text) == Verdict(True, "text_match", 5)
    assert compare(stopped, stopped).ok


def test_the_judged_part_of_an_answer_is_as_long_as_a_cut_reference() -> None:
    answer = Answer("abcd and more", EXACT.tokens)
    ref = Answer("ab", EXACT.tokens[:2])
    assert judged_part(answer, ref, 2) == Answer("abcd and more", EXACT.tokens[:2])
    assert judged_part(answer, ref, 1) == Answer("abcd and more", EXACT.tokens[:2])
    assert judged_part(answer, ref, 3) == answer  # the reference ended before its limit


def _read(choices: Any) -> Answer:
    return answer_from_openai({"choices": choices})


def test_malformed_answer_bodies_give_an_empty_answer() -> None:
    """A node's body of any shape is read without an exception (the prober's input)."""
    for choices in ([], ["x"], 5, {"text": "a"}, None):
        assert _read(choices) == Answer("", ()), choices
    for choice in ({}, {"message": None}, {"message": "hi"}, {"message": {"content": None}},
                   {"text": 5}, {"message": {"content": ["a"]}}):  # fmt: skip
        assert _read([choice]) == Answer("", ()), choice


def test_completion_logprobs_without_candidates_or_out_of_step_lists() -> None:
    """``top_logprobs`` may be absent (no candidates); token and log-probability lists of
    different lengths are malformed (no tokens), not read up to the shorter one."""
    plain = {"text": "ab", "logprobs": {"tokens": ["a", "b"], "token_logprobs": [-0.5, -0.25]}}
    assert _read([plain]) == Answer(
        "ab", (TokenLogprob("a", -0.5, ()), TokenLogprob("b", -0.25, ()))
    )
    short = {"text": "ab", "logprobs": {"tokens": ["a", "b"], "token_logprobs": [-0.5]}}
    assert _read([short]).tokens == ()
    tops = {
        "text": "a",
        "logprobs": {"tokens": ["a"], "token_logprobs": [-0.5], "top_logprobs": [{}, {}]},
    }
    assert _read([tops]).tokens == ()


def test_completion_candidates_are_ranked_by_log_probability_not_by_name() -> None:
    lp = {"tokens": ["b"], "token_logprobs": [-0.1],
          "top_logprobs": [{"a": -2.0, "c": -1.0, "b": -0.1}]}  # fmt: skip
    got = _read([{"text": "b", "logprobs": lp}])
    assert got.tokens[0].top == (("b", -0.1), ("c", -1.0), ("a", -2.0))
