"""The canary comparison rule (core/canary.py): honest spread passes, liars fail."""

from __future__ import annotations

import math

from LLM_Mesh.core.canary import (
    DEFAULT_RULE,
    Answer,
    Rule,
    TokenLogprob,
    answer_from_openai,
    compare,
    compare_text,
    sure_prefix,
    truncated,
)


def tok(t: str, lp: float, *top: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(t, lp, tuple(top) or ((t, lp),))


REF = Answer(
    "\n    return 1",
    (
        tok("\n", -0.27, ("\n", -0.27), ("\r", -1.64)),
        tok("    ", -0.10, ("    ", -0.10), ("  ", -3.0)),
        tok("return", -0.9, ("return", -0.9), ("if", -1.0), ("x", -4.0)),
        tok(" 1", -0.5, (" 1", -0.5), (" 0", -2.0)),
    ),
)


def shifted(a: Answer, by: float) -> Answer:
    return Answer(
        a.text,
        tuple(
            TokenLogprob(t.token, t.logprob + by, tuple((s, v + by) for s, v in t.top))
            for t in a.tokens
        ),
    )


def test_identical_answer_matches() -> None:
    v = compare(REF, REF)
    assert v.ok and v.reason == "match" and v.max_delta == 0.0


def test_small_float_differences_pass_within_tolerance() -> None:
    v = compare(REF, shifted(REF, DEFAULT_RULE.mean_tolerance / 2))
    assert v.ok
    assert math.isclose(v.max_delta or 0, DEFAULT_RULE.mean_tolerance / 2, rel_tol=1e-9)
    assert math.isclose(v.mean_delta or 0, DEFAULT_RULE.mean_tolerance / 2, rel_tol=1e-9)


def with_token(a: Answer, i: int, t: TokenLogprob) -> Answer:
    return Answer(a.text, (*a.tokens[:i], t, *a.tokens[i + 1 :]))


def test_one_token_beyond_the_tolerance_fails() -> None:
    lp = REF.tokens[0].logprob - DEFAULT_RULE.logprob_tolerance - 0.01
    assert lp < 0
    v = compare(REF, with_token(REF, 0, tok("\n", lp, ("\n", lp), ("\r", -1.64))))
    assert not v.ok and v.reason == "logprob" and v.position == 0


def test_a_local_honest_wobble_passes_but_a_shift_everywhere_fails() -> None:
    long = Answer(REF.text * 4, REF.tokens * 4)
    lp = REF.tokens[0].logprob - 0.4  # one token off by 0.4, as an honest batch size can do
    wobble = with_token(long, 0, tok("\n", lp, ("\n", lp), ("\r", -1.64)))
    assert compare(long, wobble).ok
    everywhere = shifted(long, -(DEFAULT_RULE.mean_tolerance + 0.05))
    v = compare(long, everywhere)
    assert not v.ok and v.reason == "logprob_mean"
    assert (v.mean_delta or 0) > DEFAULT_RULE.mean_tolerance


def test_lower_ranked_candidates_are_not_compared() -> None:
    t = REF.tokens
    moved = tok("\n", -0.27, ("\n", -0.27), ("\r", -5.0))
    assert compare(REF, Answer(REF.text, (moved, *t[1:]))).ok


def test_mean_needs_enough_tokens() -> None:
    short = Answer(REF.text, REF.tokens[:2])
    off = shifted(short, -(DEFAULT_RULE.mean_tolerance + 0.1))
    assert compare(short, off, Rule(mean_min_tokens=3)).ok
    assert compare(short, off, Rule(mean_min_tokens=2)).reason == "logprob_mean"


def test_divergence_with_an_inconsistent_logprob_fails() -> None:
    t = REF.tokens
    # "if" is a near tie in the reference (-1.0), but the node's number for it is far off
    far = -1.0 - DEFAULT_RULE.logprob_tolerance - 0.1
    other = Answer("\n    if x", (t[0], t[1], tok("if", far), tok(" x", -3.0)))
    v = compare(REF, other)
    assert not v.ok and v.reason == "token" and v.position == 2


def test_divergence_at_a_near_tie_passes_and_ends_the_comparison() -> None:
    t = REF.tokens
    other = Answer("\n    if x", (t[0], t[1], tok("if", -0.95), tok(" x", -3.0)))
    v = compare(REF, other)
    assert v.ok and v.reason == "diverged_at_tie" and v.diverged_at == 2


def test_divergence_to_a_clearly_worse_token_fails() -> None:
    t = REF.tokens
    other = Answer("\n  ", (t[0], tok("  ", -3.0), t[2], t[3]))
    v = compare(REF, other)
    assert not v.ok and v.reason == "token" and v.position == 1


def test_a_token_the_reference_did_not_rank_fails() -> None:
    v = compare(REF, Answer("Hello", (tok("Hello", -0.1),)))
    assert not v.ok and v.reason == "token" and v.position == 0


def test_missing_logprobs_fail() -> None:
    v = compare(REF, Answer(REF.text, ()))
    assert not v.ok and v.reason == "no_logprobs"


def test_shorter_answer_fails_on_length() -> None:
    v = compare(REF, Answer("\n", REF.tokens[:1]))
    assert not v.ok and v.reason == "length"


def test_text_swapped_under_honest_logprobs_fails() -> None:
    v = compare(REF, Answer("I am happy to help", REF.tokens))
    assert not v.ok and v.reason == "text"


def test_impossible_logprob_fails() -> None:
    bad = Answer(REF.text, (tok("\n", 0.5), *REF.tokens[1:]))
    assert compare(REF, bad).reason == "logprob"
    nan = Answer(REF.text, (tok("\n", float("nan")), *REF.tokens[1:]))
    assert compare(REF, nan).reason == "logprob"


def test_a_looser_rule_accepts_what_the_default_refuses() -> None:
    far = shifted(REF, -0.3)
    assert not compare(REF, far).ok
    assert compare(REF, far, Rule(mean_tolerance=0.5)).ok


def test_answer_from_completion_shape() -> None:
    body = {
        "choices": [
            {
                "text": "\n    ",
                "logprobs": {
                    "tokens": ["\n", "    "],
                    "token_logprobs": [-0.27, -0.1],
                    "top_logprobs": [{"\r": -1.64, "\n": -0.27}, {"    ": -0.1}],
                    "text_offset": [0, 1],
                },
            }
        ]
    }
    a = answer_from_openai(body)
    assert a.text == "\n    "
    assert a.tokens[0] == TokenLogprob("\n", -0.27, (("\n", -0.27), ("\r", -1.64)))


def test_answer_from_chat_shape() -> None:
    body = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "Hi"},
                "logprobs": {
                    "content": [
                        {
                            "token": "Hi",
                            "logprob": -0.2,
                            "bytes": [72, 105],
                            "top_logprobs": [{"token": "Hi", "logprob": -0.2, "bytes": []}],
                        }
                    ]
                },
            }
        ]
    }
    a = answer_from_openai(body)
    assert a == Answer("Hi", (TokenLogprob("Hi", -0.2, (("Hi", -0.2),)),))


def test_malformed_logprobs_give_no_tokens() -> None:
    assert answer_from_openai({"choices": [{"text": "x", "logprobs": None}]}).tokens == ()
    bad = {"choices": [{"text": "x", "logprobs": {"tokens": ["x"], "token_logprobs": ["y"]}}]}
    assert answer_from_openai(bad).tokens == ()
    assert answer_from_openai({"choices": "nope"}) == Answer("", ())


def test_a_tie_the_node_shows_counts_when_the_reference_did_not_list_its_token() -> None:
    t = REF.tokens
    # the reference's top list stops above "x"; the node ranks "return" just below "x"
    node_tok = tok("x2", -0.85, ("x2", -0.85), ("return", -0.95))
    assert compare(REF, Answer("\n    x2", (t[0], t[1], node_tok, t[3]))).ok
    # ... but not with a number for "return" far from the reference's (-0.9)
    made_up = tok("x2", -1.5, ("x2", -1.5), ("return", -0.9 - DEFAULT_RULE.logprob_tolerance - 0.4))
    assert made_up.top[1][1] >= made_up.logprob - DEFAULT_RULE.tie_margin  # a tie by its numbers
    assert compare(REF, Answer("\n    x2", (t[0], t[1], made_up, t[3]))).reason == "token"
    # ... nor when the node puts "return" far below its own pick
    far = tok("x2", -0.01, ("x2", -0.01), ("return", -0.01 - DEFAULT_RULE.tie_margin - 0.1))
    assert compare(REF, Answer("\n    x2", (t[0], t[1], far, t[3]))).reason == "token"


# -- streamed probes: the text alone -------------------------------------------------------

CODE = Answer(
    " n * fact(n - 1)",
    (
        tok(" n", -0.2, (" n", -0.2), (" return", -2.5)),
        tok(" *", -0.1, (" *", -0.1), (" +", -3.0)),
        tok(" fact", -0.4, (" fact", -0.4), (" factorial", -0.9)),  # a near tie
        tok("(n", -0.3, ("(n", -0.3), ("(", -2.0)),
        tok(" - 1)", -0.1, (" - 1)", -0.1), ("-1)", -3.0)),
    ),
)


def test_the_sure_prefix_ends_at_the_first_near_tie() -> None:
    assert [t.token for t in sure_prefix(CODE)] == [" n", " *"]
    assert sure_prefix(REF) == ()  # "\r" 1.37 below "\n": within the stream's margin
    wide = Answer(REF.text, REF.tokens[1:])
    assert [t.token for t in sure_prefix(wide)] == ["    "]  # "if" is a near tie
    listed = Answer("a", (tok("a", -0.1),))
    assert sure_prefix(listed) == ()  # no other candidate listed: nothing is sure
    split = Answer("x", (tok("a", -0.1, ("a", -0.1), ("b", -5.0)), tok("\ufffd", -0.1)))
    assert [t.token for t in sure_prefix(split)] == ["a"]  # part of a character: stop


def test_the_honest_stream_text_matches() -> None:
    v = compare_text(CODE, CODE.text)
    assert v.ok and v.reason == "text_match" and v.position == 2


def test_a_stream_diverging_at_the_near_tie_passes() -> None:
    assert compare_text(CODE, " n * factorial(n)").ok
    # the stream's margin is wider than compare's: a runner-up 1.3 below is not sure
    a = Answer(
        "ab", (tok("a", -0.1, ("a", -0.1), ("x", -5.0)), tok("b", -0.2, ("b", -0.2), ("c", -1.5)))
    )
    assert [t.token for t in sure_prefix(a)] == ["a"]
    assert compare_text(a, "ac").ok and not compare_text(a, "xb").ok
    assert [t.token for t in sure_prefix(a, Rule(stream_tie_margin=1.0))] == ["a", "b"]


def test_whitespace_and_tokenisation_differences_are_no_lie() -> None:
    assert compare_text(CODE, "n*fact(n-1)").ok
    assert compare_text(CODE, "  n\n *  fact").ok


def test_a_stream_with_other_text_fails() -> None:
    v = compare_text(CODE, " x + 1")
    assert not v.ok and v.reason == "stream_text" and v.position == 0
    v = compare_text(CODE, " n + 1")
    assert not v.ok and v.position == 1
    assert not compare_text(CODE, "").ok  # nothing where the reference is sure


def test_a_reference_without_a_sure_non_blank_token_gives_no_evidence() -> None:
    for ref in (REF, Answer("a", (tok("a", -0.5, ("a", -0.5), ("b", -0.6)),))):
        v = compare_text(ref, "something else entirely")
        assert v.ok and v.reason == "no_sure_tokens"


def test_an_honest_answer_the_logprob_rule_passes_passes_the_text_rule() -> None:
    """What an honest node does under :func:`compare` (match, wobble, diverge at a near tie
    the reference shows), its text passes :func:`compare_text` too."""
    honest = [
        CODE,
        shifted(CODE, 0.05),
        Answer(" n * factorial(n)", (*CODE.tokens[:2], tok(" factorial", -0.9))),
    ]
    for a in honest:
        assert compare(CODE, a).ok
        assert compare_text(CODE, a.text).ok


def test_truncated_cuts_the_reference_to_the_probes_length() -> None:
    cut = truncated(CODE, 3)
    assert [t.token for t in cut.tokens] == [" n", " *", " fact"] and cut.text == " n * fact"
    assert truncated(CODE, 99) == Answer(CODE.text, CODE.tokens)
    assert compare(truncated(CODE, 3), Answer(" n * fact", CODE.tokens[:3])).ok


# an honest chat answer (gemma-3-270m, a system message, 2026-12-05): the engine's tokens run
# on into the template's stop string, which the answer's text leaves out
STOPPED = Answer(
    " I am a student",
    (
        tok(" I", -0.3, (" I", -0.3), (" The", -3.0)),
        tok(" am", -0.2, (" am", -0.2), ("'", -3.1)),
        tok(" a", -0.4, (" a", -0.4), (" an", -3.2)),
        tok(" student", -0.6, (" student", -0.6), (" teacher", -2.9)),
        tok("\n", -0.1, ("\n", -0.1), (".", -4.0)),
        tok("User", -0.05, ("User", -0.05), ("Assistant", -4.0)),
        tok(":", -0.01, (":", -0.01), (" :", -6.0)),
    ),
)


def test_an_answer_a_stop_string_cut_short_passes_both_rules() -> None:
    """Found 2026-12-05 (e2e, an honest node quarantined: ``text``): the honest answer's
    tokens spell " I am a student\\nUser:", its text is " I am a student"."""
    assert compare(STOPPED, STOPPED).ok
    assert compare_text(STOPPED, STOPPED.text).ok


def test_other_or_no_text_under_the_stopped_tokens_still_fails() -> None:
    for text in (" I am a teacher", " You are", ""):
        assert compare(STOPPED, Answer(text, STOPPED.tokens)).reason == "text", text
        assert not compare_text(STOPPED, text).ok, text
    # a stream may end where a stop string's tokens begin, not anywhere else
    assert not compare_text(STOPPED, " I a").ok


def test_an_answer_cut_short_where_no_stop_string_begins_fails_both_rules() -> None:
    """Review 2026-12-05: a cut at any token's end passed, so a node could stop a probe
    after its first agreeing token; only a chat template's stop string may end it short."""
    for text in (" I", " I am", " I am a"):
        assert compare(STOPPED, Answer(text, STOPPED.tokens)).reason == "text", text
        assert not compare_text(STOPPED, text).ok, text


# an honest answer to a probe sending ``stop: ["\n\n"]`` on the real model (measured
# 2026-12-05): the text ends before "\n\n", the tokens run on into it
CUT = Answer(
    " return s[::-1]",
    (
        tok(" return", -0.2, (" return", -0.2), (" if", -3.0)),
        tok(" s", -0.1, (" s", -0.1), (" ''", -3.5)),
        tok("[::-", -0.3, ("[::-", -0.3), ("[", -2.9)),
        tok("1", -0.01, ("1", -0.01), ("2", -7.0)),
        tok("]", -0.02, ("]", -0.02), ("])", -5.0)),
        tok("\n\n", -0.4, ("\n\n", -0.4), ("\n", -2.0)),
    ),
)
CUT_REF = Answer("".join(t.token for t in CUT.tokens), CUT.tokens)  # truncated()'s form


def test_an_answer_the_probes_own_stop_string_ended_passes_both_rules() -> None:
    """A probe sending ``stop`` (core/canary_shape.py): the honest answer ends before the
    stop string its tokens spell; judged with the probe's stops it passes, without them
    (what any other cut looks like) it does not."""
    assert compare(CUT_REF, CUT, stops=("\n\n",)).ok
    assert compare(CUT_REF, CUT).reason == "text"
    assert compare_text(CUT_REF, CUT.text, stops=("\n\n",)).ok
    assert compare(CUT_REF, CUT, stops=("```",)).reason == "text"  # not the probe's stop


def test_a_cut_where_the_probes_stop_string_does_not_begin_still_fails() -> None:
    for text in (" return", " return s", " return s[::-"):
        assert compare(CUT_REF, Answer(text, CUT.tokens), stops=("\n\n",)).reason == "text"
        assert not compare_text(CUT_REF, text, stops=("\n\n",)).ok, text
    swapped = Answer(" return t[::-1]", CUT.tokens)
    assert compare(CUT_REF, swapped, stops=("\n\n",)).reason == "text"
    assert not compare_text(CUT_REF, swapped.text, stops=("\n\n",)).ok


def test_an_answer_the_probes_stop_string_ended_at_once_is_empty_and_honest() -> None:
    """The first token holds the stop string: the text is empty; the tokens are still
    compared (the log-probabilities are the evidence); a stream gives none."""
    first = Answer("", (tok("```", -0.3, ("```", -0.3), ("\n", -2.5)), tok("python", -0.2)))
    ref = Answer("```python", first.tokens)
    assert compare(ref, first, stops=("```",)).ok
    assert compare(ref, first).reason == "text"
    assert compare_text(ref, "", stops=("```",)).reason == "no_sure_tokens"
    assert not compare_text(ref, "").ok


def test_a_stream_ended_by_the_probes_own_stop_string_passes_where_it_stopped() -> None:
    """``compare_text``: text that ends right before one of the probe's ``stop`` strings
    in what the reference's tokens spell is a match at that token; nothing at all, so
    ended, is ``no_sure_tokens`` (ok, no evidence)."""
    from LLM_Mesh.core.canary import Verdict, compare_text

    def sure(t: str) -> TokenLogprob:
        return TokenLogprob(t, -0.01, ((t, -0.01), ("zz", -6.0)))

    ref = Answer("Hi there friend", tuple(sure(t) for t in ("Hi", " there", " friend")))
    assert compare_text(ref, "Hi", stops=(" there",)) == Verdict(True, "text_match", 1)
    assert compare_text(ref, "", stops=("Hi",)) == Verdict(True, "no_sure_tokens", 0)
    assert compare_text(ref, "Hi") == Verdict(False, "stream_text", 1)  # no stop: cut short


def test_an_answers_stated_usage_is_kept_with_or_without_a_choice() -> None:
    from LLM_Mesh.core.canary import answer_from_openai
    from LLM_Mesh.core.canary_usage import StatedUsage

    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    got = answer_from_openai({"choices": [{"text": "x"}], "usage": usage})
    assert got.usage == StatedUsage(prompt=3, completion=2)
    assert answer_from_openai({"choices": [], "usage": usage}).usage == StatedUsage(3, 2)


def test_a_stop_string_found_again_one_character_on_still_ends_the_text() -> None:
    """The probe's stop ``aa`` in ``xaaa``: at 1 (after ``x``) and at 2 (after ``xa``):
    a text ``xa`` stopped at the second."""
    from LLM_Mesh.core.canary import Verdict, compare_text

    def sure(t: str) -> TokenLogprob:
        return TokenLogprob(t, -0.01, ((t, -0.01), ("zz", -6.0)))

    ref = Answer("xaaa", tuple(sure(t) for t in "xaaa"))
    assert compare_text(ref, "xa", stops=("aa",)) == Verdict(True, "text_match", 2)
    assert compare_text(ref, "xa", stops=("ab",)) == Verdict(False, "stream_text", 2)
