"""The sampled rule (``core/canary_sampled.py``): a sampled answer against a greedy reference."""

from __future__ import annotations

import math

import pytest

from LLM_Mesh.core.canary import Answer, Rule, TokenLogprob
from LLM_Mesh.core.canary_sampled import compare_sampled, in_support, tempered_most


def pos(token: str, lp: float, *others: tuple[str, float]) -> TokenLogprob:
    """A position whose pick is ``token`` (its number ``lp``), the list best first."""
    top = sorted(((token, lp), *others), key=lambda kv: -kv[1])
    return TokenLogprob(token, lp, tuple(top))


# a greedy reference: four positions, each with a runner-up and three more (each list
# leaves some mass out: 0.095, 0.029, 0.178, 0.018)
REF = Answer(
    " a b c d",
    (
        pos(" a", -0.5, (" x", -1.8), (" y", -2.7), (" z", -3.2), (" w", -3.7)),
        pos(" b", -0.25, (" q", -2.3), (" r", -3.0), (" s", -3.6), (" t", -4.2)),
        pos(" c", -0.9, (" u", -1.2), (" v", -2.9), (" n", -3.3), (" m", -3.8)),
        pos(" d", -0.1, (" e", -3.0), (" f", -4.0), (" g", -5.0), (" h", -6.0)),
    ),
)


def sampled(*tokens: TokenLogprob, text: str | None = None) -> Answer:
    spelled = "".join(t.token for t in tokens)
    return Answer(spelled if text is None else text, tokens)


def with_pick(ref: TokenLogprob, token: str) -> TokenLogprob:
    """The node's entry at a reference position where it sampled ``token`` (same list)."""
    return TokenLogprob(token, dict(ref.top)[token], ref.top)


def test_a_sampled_answer_following_the_greedy_path_then_another_listed_token_passes() -> None:
    got = sampled(REF.tokens[0], REF.tokens[1], with_pick(REF.tokens[2], " u"), pos(" k", -0.4))
    v = compare_sampled(REF, got)
    assert v.ok and v.reason == "sampled_diverged" and v.diverged_at == 2, v
    assert compare_sampled(REF, sampled(*got.tokens[:2], with_pick(REF.tokens[2], " v"))).ok


def test_an_all_greedy_sampled_answer_passes_as_a_match() -> None:
    v = compare_sampled(REF, REF)
    assert v.ok and v.reason == "sampled_match" and v.diverged_at is None


def test_another_models_numbers_at_the_first_position_fail() -> None:
    """Another model: its number for the reference's first token is far off, whichever
    token it sampled."""
    other = TokenLogprob(" x", -0.2, ((" x", -0.2), (" a", -2.9), (" p", -3.0)))
    v = compare_sampled(REF, sampled(other, pos(" y", -0.1)))
    assert not v.ok and v.reason == "logprob" and v.position == 0, v
    same_pick = TokenLogprob(" a", -2.1, ((" p", -0.3), (" a", -2.1)))
    assert compare_sampled(REF, sampled(same_pick)).reason == "logprob"


def test_a_list_leaving_out_the_references_pick_far_below_its_number_fails() -> None:
    """The node's list leaves out the reference's greedy token though its own last listed
    number is far below the reference's value for it: the node's distribution differs."""
    got = TokenLogprob(" x", -1.0, ((" x", -1.0), (" p", -1.5), (" o", -4.0)))  # " a" < -4
    v = compare_sampled(REF, sampled(got))
    assert not v.ok and v.reason == "token", v
    near = TokenLogprob(" x", -1.4, ((" p", -0.5), (" o", -0.9), (" x", -1.4)))  # could be
    assert compare_sampled(REF, sampled(near)).reason != "token"  # the 6th: not refuted


def test_a_lower_quantisations_shift_over_the_shared_prefix_fails_on_average() -> None:
    shifted = [TokenLogprob(t.token, t.logprob - 0.45, t.top) for t in REF.tokens]
    v = compare_sampled(REF, sampled(*shifted))
    assert not v.ok and v.reason == "logprob_mean", v


def test_a_token_the_reference_gives_no_real_probability_fails() -> None:
    """At the divergence the node's token must be in the reference's support: listed above
    the floor, or the list leaving out at least the floor's mass."""
    sure = TokenLogprob(" d", -1e-9, ((" d", -1e-9), (" e", -21.0)))  # leaves out ~1e-9
    ref = Answer(" d", (sure,))
    junk = TokenLogprob(" junk", -9.0, ((" d", -1e-9), (" junk", -9.0)))
    v = compare_sampled(ref, sampled(junk))
    assert not v.ok and v.reason == "sampled_token", v
    listed_low = TokenLogprob(" e", -21.0, ((" d", -1e-9), (" e", -21.0)))
    assert compare_sampled(ref, sampled(listed_low)).reason == "sampled_token"
    # where the list leaves real mass out, an unlisted token is an honest draw
    loose = Answer(" a", (REF.tokens[0],))
    tail = TokenLogprob(" zz", -4.0, ((" a", -0.4), (" zz", -4.0)))
    assert compare_sampled(loose, sampled(tail)).ok
    # but not with a number above the reference's last listed one plus the tolerance
    high = TokenLogprob(" zz", -2.0, ((" a", -0.4), (" zz", -2.0)))
    assert compare_sampled(loose, sampled(high)).reason == "sampled_token"


def test_in_support_reads_the_floor_from_the_rule() -> None:
    ref = REF.tokens[3]  # leaves out 1 - e^-0.1 - ... ≈ 0.018
    unlisted = 1.0 - sum(math.exp(v) for _, v in ref.top)
    assert in_support(ref, " new", -6.5)
    assert not in_support(ref, " new", -6.5, Rule(sampled_floor=unlisted * 1.01))
    assert not in_support(ref, " e", -1.5)  # listed at -3.0: the numbers disagree


def test_an_answer_that_sampled_its_end_early_or_went_on_passes() -> None:
    assert compare_sampled(REF, sampled(*REF.tokens[:2])).ok
    longer = sampled(*REF.tokens, pos(" more", -0.5))
    v = compare_sampled(REF, longer)
    assert v.ok and v.diverged_at == 4


def test_no_logprobs_or_swapped_text_fails() -> None:
    assert compare_sampled(REF, Answer(" a b", ())).reason == "no_logprobs"
    got = sampled(REF.tokens[0], with_pick(REF.tokens[1], " q"), text=" a r and more")
    assert compare_sampled(REF, got).reason == "text"  # the sampled token is judged too
    ok = sampled(REF.tokens[0], with_pick(REF.tokens[1], " q"), pos(" k", -1.0), text=" a q k")
    assert compare_sampled(REF, ok).ok
    stopped = sampled(REF.tokens[0], with_pick(REF.tokens[1], " q"), text=" a")
    assert compare_sampled(REF, stopped, stops=(" q",)).ok  # the probe's stop ended it


def test_a_made_up_number_or_nan_fails() -> None:
    bad = TokenLogprob(" a", float("nan"), REF.tokens[0].top)
    assert compare_sampled(REF, sampled(bad)).reason == "logprob"
    positive = TokenLogprob(" a", 0.5, REF.tokens[0].top)
    assert compare_sampled(REF, sampled(positive)).reason == "logprob"


# review31: a node that serves a cheaper model to sampled requests but runs the real one
# for the first token only, always leaving its arg max there (the runner-up: its numbers
# are the real model's), so that nothing after it is compared
CONFIDENT = Answer(
    " a b",
    (
        pos(" a", -0.06, (" x", -3.6), (" y", -4.5), (" z", -5.0), (" w", -5.5)),  # 0.9 % unlisted
        pos(" b", -0.1, (" q", -3.0), (" r", -4.0), (" s", -5.0), (" t", -6.0)),
    ),
)


def test_leaving_a_confident_arg_max_at_a_low_temperature_fails() -> None:
    """At temperature 0.2 an honest sampler picks the runner-up of a 94 % token with
    probability below e^(-3.54 / 0.2) ~ 2e-8: a node that always leaves the arg max at the
    first token (to serve the rest from another model) fails there; at 1.0 the same pick
    is a plausible draw (what remains: docs/security.md, probes' tell (a))."""
    cheat = sampled(with_pick(CONFIDENT.tokens[0], " x"), pos(" k", -0.2))
    v = compare_sampled(CONFIDENT, cheat, temperature=0.2)
    assert (v.ok, v.reason, v.position) == (False, "sampled_token", 0), v
    assert compare_sampled(CONFIDENT, cheat, temperature=1.0).ok
    # an unlisted pick is bounded by the list's last number: below it at 0.3 too
    unlisted = TokenLogprob(" o", -5.6, ((" a", -0.06), (" x", -3.6), (" o", -5.6)))
    assert compare_sampled(CONFIDENT, sampled(unlisted), temperature=0.3).reason == "sampled_token"
    assert compare_sampled(CONFIDENT, sampled(unlisted), temperature=1.0).ok


def test_a_plausible_draw_at_a_low_temperature_passes() -> None:
    """The runner-up of a near tie (REF's third position: 0.41 against 0.30) is an honest
    draw at 0.2 as at 1.0; the rule reads the tempered distribution, not the raw one."""
    got = sampled(REF.tokens[0], REF.tokens[1], with_pick(REF.tokens[2], " u"), pos(" k", -0.4))
    for t in (0.2, 0.5, 1.0):
        v = compare_sampled(REF, got, temperature=t)
        assert v.ok and v.reason == "sampled_diverged" and v.diverged_at == 2, (t, v)


def test_always_greedy_at_a_temperature_passes_as_a_match() -> None:
    """A node answering every sampled request greedily (the real model's arg max) passes:
    accepted, it serves the model asked for at its full cost, only without the draws the
    user asked for (docs/security.md, probes' tell (a))."""
    for t in (0.2, 0.7, 1.0):
        v = compare_sampled(CONFIDENT, CONFIDENT, temperature=t)
        assert v.ok and v.reason == "sampled_match", v


# Each verdict in full, each boundary of the rule (mutation testing, mut31b).


def test_each_failure_says_its_reason_and_position() -> None:
    a, b = REF.tokens[0], REF.tokens[1]
    cases = [
        (Answer(" a b", ()), ("no_logprobs", 0)),
        (sampled(a, TokenLogprob(" b", float("inf"), b.top)), ("logprob", 1)),
        (sampled(a, TokenLogprob(" b", -1.5, b.top)), ("logprob", 1)),  # 1.25 off
        (sampled(a, TokenLogprob(" x", -1.0, ((" x", -1.0), (" o", -4.0)))), ("token", 1)),
        (sampled(a, TokenLogprob(" q", -2.3, ((" q", -2.3), (" b", -1.3)))), ("logprob", 1)),
        (sampled(a, TokenLogprob(" q", -0.3, ((" b", -0.25), (" q", -0.3)))), ("sampled_token", 1)),
        (
            sampled(*(TokenLogprob(t.token, t.logprob - 0.45, t.top) for t in REF.tokens)),
            ("logprob_mean", None),
        ),
        (sampled(a, b, text=" a c"), ("text", None)),
    ]
    for got, (reason, at) in cases:
        v = compare_sampled(REF, got)
        assert (v.ok, v.reason, v.position) == (False, reason, at), (got, v)
    v = compare_sampled(REF, sampled(a, b, with_pick(REF.tokens[2], " u")))
    assert (v.ok, v.position, v.diverged_at) == (True, 2, 2)


def test_a_number_at_the_tolerance_or_a_rounded_zero_passes() -> None:
    a = REF.tokens[0]
    tol = Rule().logprob_tolerance
    for got in (
        sampled(TokenLogprob(" a", 1e-6, a.top)),  # a certain token, rounded above 0
        sampled(TokenLogprob(" a", -0.5 - tol, a.top)),  # exactly the tolerance off
        sampled(a, TokenLogprob(" q", -2.3, ((" q", -2.3), (" b", -0.25 - tol)))),
        sampled(a, TokenLogprob(" q", -2.3, ((" o", -0.25 - tol),))),  # b unlisted
    ):
        assert compare_sampled(REF, got).ok, got


def test_in_support_at_its_boundaries() -> None:
    floor = math.log(Rule().sampled_floor)
    at_floor = TokenLogprob(" a", -0.1, ((" a", -0.1), (" b", floor)))
    assert in_support(at_floor, " b", floor + Rule().logprob_tolerance)  # both at the edge
    ref = REF.tokens[3]
    unlisted = 1.0 - sum(math.exp(v) for _, v in ref.top)
    lowest = min(v for _, v in ref.top)
    assert in_support(ref, " new", lowest + 1.0, Rule(sampled_floor=unlisted))
    assert not in_support(TokenLogprob(" a", -0.1, ()), " b", -9.0)  # no list: no support


def test_tempered_most_of_a_tie_is_a_half_and_needs_no_list() -> None:
    assert tempered_most(TokenLogprob(" a", -0.1, ()), " b", 0.5) == 1.0
    tie = TokenLogprob(" a", -0.7, ((" a", -0.7), (" b", -0.7), (" c", -5.0)))
    for t in (0.2, 1.0):
        assert tempered_most(tie, " b", t) == 0.5  # the less likely " c" weighs nothing
    # numbers far below 0 do not underflow (each is scaled by the best's)
    faint = TokenLogprob(" a", -300.0, ((" a", -300.0), (" b", -300.0)))
    assert tempered_most(faint, " b", 0.2) == 0.5


def test_the_temperature_is_above_0_and_1_by_default() -> None:
    for t in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"^a sampled probe's temperature is above 0$"):
            compare_sampled(REF, REF, temperature=t)
    ref = Answer(" a", (TokenLogprob(" a", -0.1, ((" a", -0.1), (" b", -20.0))),))
    unlisted = sampled(TokenLogprob(" zz", -19.5, ((" a", -0.1), (" zz", -19.5))))
    assert compare_sampled(ref, unlisted).reason == "sampled_token"  # e^-19.9 at 1.0
    assert compare_sampled(ref, unlisted, temperature=2.0).ok  # e^-9.95 at 2.0


def test_the_rule_given_sets_the_support_and_the_tempered_floor() -> None:
    ref = REF.tokens[3]
    unlisted = 1.0 - sum(math.exp(v) for _, v in ref.top)
    got = sampled(TokenLogprob(" new", -6.5, ((" d", -0.1), (" new", -6.5))))
    assert compare_sampled(Answer(" d", (ref,)), got).ok
    tight = Rule(sampled_floor=unlisted * 1.01)
    assert compare_sampled(Answer(" d", (ref,)), got, tight).reason == "sampled_token"
    high = sampled(TokenLogprob(" new", -4.5, ((" d", -0.1), (" new", -4.5))))  # -6 + 1.5
    assert compare_sampled(Answer(" d", (ref,)), high).reason == "sampled_token"
    assert compare_sampled(Answer(" d", (ref,)), high, Rule(logprob_tolerance=2.0)).ok
    u = with_pick(REF.tokens[2], " u")
    at_floor = Rule(sampled_floor=tempered_most(REF.tokens[2], " u", 0.2))  # a draw of 0.18
    got = sampled(REF.tokens[0], REF.tokens[1], u)
    assert compare_sampled(REF, got, at_floor, temperature=0.2).ok


def test_nothing_after_the_divergence_is_compared_the_text_neither() -> None:
    got = sampled(REF.tokens[0], with_pick(REF.tokens[1], " q"), pos(" k", -1.0), text=" a q zz")
    v = compare_sampled(REF, got)
    assert v.ok and v.diverged_at == 1, v
