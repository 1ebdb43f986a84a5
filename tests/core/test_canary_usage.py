"""The rule that holds a probe's ``usage`` to its evidence (``core/canary_usage.py``)."""

from __future__ import annotations

from LLM_Mesh.core.canary_usage import (
    StatedUsage,
    UsageSlack,
    check_usage,
    covering_entries,
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
        "(4 the reference's entries for that text + 2)"
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
    toks = [" def", " f", "():", "\n", "    return", " 1"]
    assert covering_entries("", toks) == 0
    assert covering_entries(" def f():\n", toks) == 4  # and the whitespace token after
    assert covering_entries(" def f():", toks) == 4  # (a detokeniser may leave it out)
    assert covering_entries("def  f():\n  return", toks) == 5  # whitespace aside
    assert covering_entries(" def f():\n    ret", toks) == 5  # a stop string cut a token
    assert covering_entries(" def f():\n    return 1", toks) == 6
    assert covering_entries("\n", ["\n", "\n", " x"]) == 2
    assert covering_entries(" def g():", toks) is None  # diverged
    assert covering_entries(" def f():\n    return 1 + 2", toks) is None  # ran past


def test_a_text_that_ran_past_the_reference_in_whitespace_alone_is_no_evidence() -> None:
    """Found 2026-12-06 in CI (e2e, the real gemma-3-270m): an honest node's answer to a probe
    without ``max_tokens`` went on past the reference's 32 tokens in newlines alone, 200
    tokens stated; whitespace aside it spelled the reference's 32, so its count was held to
    34 and the honest node failed (``usage_completion``). Whitespace the reference's tokens
    do not hold is tokens they cannot count: at most one a character (canary34, below)."""
    toks = [" def", " f", "():", "\n", "    return", " 1"]
    assert covering_entries(" def f():\n    return 1" + "\n" * 168, toks) == 6 + 168
    assert covering_entries(" def f():" + "\n" * 5, toks) == 4 + 4  # diverged in newlines
    assert covering_entries(" def f():\n    return 1", toks) == 6  # as before
    assert covering_entries(" def f():\n", toks) == 4


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
    assert covering_entries(" def f():\n\n    ret", toks) == 5 + 1
    assert covering_entries(" def f():\n    ret", toks) == 5
