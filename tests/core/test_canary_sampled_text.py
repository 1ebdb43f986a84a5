"""A sampled answer's text judged by the reference's own numbers (``core/canary_sampled_text.py``).

The false-alarm bound rests on two facts tested here: the evidence a text earns is never
more than its node's true tokens earn (``canary_departures.probe_evidence``), whatever
tokens spelled it; and, exactly, its expectation under an honest sampler is at most 1 on
a toy model whose tokens spell beginnings of each other (``"Th"``, ``"The"``, ``"There"``),
where crediting the textual departure alone (what a naive rule would do) is not.
"""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from LLM_Mesh.core.canary import DEFAULT_RULE, Answer, Rule, TokenLogprob, Verdict
from LLM_Mesh.core.canary_departures import DepartureTest, Evidence, leave_bound, probe_evidence
from LLM_Mesh.core.canary_sampled import tempered_most
from LLM_Mesh.core.canary_sampled_text import (
    TextDeparture,
    compare_sampled_text,
    text_departure,
    text_evidence,
)

# a toy model: each context's distribution over a vocabulary whose tokens begin each other
VOCAB = ("The", "Th", "e", "There", " cat", " dog", "re", " is")


def _dist(context: tuple[str, ...]) -> dict[str, float]:
    """The toy model's next-token probabilities after ``context`` (tokens)."""
    table: dict[tuple[str, ...], dict[str, float]] = {
        (): {"The": 0.9, "There": 0.05, "Th": 0.03, " cat": 0.01, " dog": 0.01},
        ("The",): {" cat": 0.998, " dog": 0.001, " is": 0.001},
        ("There",): {" is": 0.95, " cat": 0.05},
        ("Th",): {"e": 0.5, "re": 0.5},
        ("Th", "e"): {" dog": 0.9, " cat": 0.1},
    }
    if context in table:
        return table[context]
    return {t: 1.0 / len(VOCAB) for t in VOCAB}  # elsewhere: flat


def _reference(length: int) -> Answer:
    """The greedy path with each position's top 3 (as the verifier's reference)."""
    out: list[TokenLogprob] = []
    context: tuple[str, ...] = ()
    for _ in range(length):
        ranked = sorted(_dist(context).items(), key=lambda kv: -kv[1])
        top = tuple((t, math.log(p)) for t, p in ranked[:3])
        out.append(TokenLogprob(top[0][0], top[0][1], top))
        context += (top[0][0],)
    return Answer("".join(t.token for t in out), tuple(out))


def _paths(length: int, temperature: float) -> list[tuple[tuple[str, ...], float]]:
    """Every token path of ``length`` an honest sampler at ``temperature`` draws, with its
    probability."""
    paths: list[tuple[tuple[str, ...], float]] = [((), 1.0)]
    for _ in range(length):
        nxt = []
        for context, p in paths:
            dist = _dist(context)
            weights = {t: q ** (1.0 / temperature) for t, q in dist.items()}
            total = sum(weights.values())
            nxt += [((*context, t), p * w / total) for t, w in weights.items()]
        paths = nxt
    return paths


def _naive(reference: Answer, text: str, temperature: float) -> float:
    """The evidence a rule crediting the textual departure alone would give."""
    dep = text_departure(reference, text)
    if dep.at is None:
        return text_evidence(reference, text, temperature).log_ratio
    fake = (*reference.tokens[: dep.at], TokenLogprob("\0other", 0.0))
    return probe_evidence(reference, Answer(text, fake), temperature).log_ratio


def test_an_honest_samplers_text_evidence_has_expectation_at_most_one_exactly() -> None:
    """Exactly, over every path: ``E[exp(evidence)] ≤ 1`` at each temperature (the
    supermartingale step); a naive rule crediting the textual departure (``"There is"``
    read as leaving ``" cat"`` after ``"The"``) is far above 1 where ``"There"`` is likely."""
    ref = _reference(2)
    assert [t.token for t in ref.tokens] == ["The", " cat"]
    worst_naive = 0.0
    for temperature in (0.3, 0.7, 1.0):
        paths = _paths(2, temperature)
        assert abs(sum(p for _, p in paths) - 1.0) < 1e-9
        ours = sum(p * math.exp(text_evidence(ref, "".join(t), temperature).log_ratio)
                   for t, p in paths)  # fmt: skip
        naive = sum(p * math.exp(_naive(ref, "".join(t), temperature)) for t, p in paths)
        assert ours <= 1.0 + 1e-9, (temperature, ours)
        worst_naive = max(worst_naive, naive)
    assert worst_naive > 1.5, worst_naive  # why the least over j ≤ d is taken


def test_the_text_never_earns_more_than_its_true_tokens() -> None:
    """For every path of the toy model and every random path of a random model, the text's
    evidence is at most its tokens' (``probe_evidence``), whitespace differences included."""
    ref = _reference(3)
    for tokens, _ in _paths(3, 1.0):
        got = Answer("".join(tokens), tuple(TokenLogprob(t, 0.0) for t in tokens))
        for temperature in (0.2, 0.7, 1.0):
            mine = text_evidence(ref, got.text, temperature).log_ratio
            assert mine <= probe_evidence(ref, got, temperature).log_ratio + 1e-12, tokens
    rng = random.Random(5)
    words = (" a", " an", " and", "a", "nd", "\n", " ", " the", "the", "re")
    for _ in range(2000):
        n = rng.randint(1, 6)
        ref_tokens = []
        for _ in range(n):
            picks = rng.sample(words, 4)
            values = sorted((math.log(rng.uniform(0.01, 0.5)) for _ in picks), reverse=True)
            top = tuple(zip(picks, values, strict=True))
            ref_tokens.append(TokenLogprob(top[0][0], top[0][1], top))
        reference = Answer("", tuple(ref_tokens))
        keep = rng.randint(0, n)
        mine_tokens = [t.token for t in ref_tokens[:keep]] + rng.choices(words, k=rng.randint(0, 3))
        text = "".join(mine_tokens)
        if rng.random() < 0.3:
            text = text.replace(" ", "  ", 1).lstrip()  # a detokeniser's spacing
        got = Answer(text, tuple(TokenLogprob(t, 0.0) for t in mine_tokens))
        temperature = rng.choice((0.2, 0.5, 1.0))
        mine = text_evidence(reference, text, temperature).log_ratio
        assert mine <= probe_evidence(reference, got, temperature).log_ratio + 1e-12


def test_the_textual_departure_ignores_whitespace_and_an_early_end() -> None:
    ref = _reference(2)
    assert text_departure(ref, "The cat").at is None
    assert text_departure(ref, " The  cat and more").at is None  # ran past the reference
    assert text_departure(ref, "The ca").at is None  # ended inside a token
    assert text_departure(ref, "").at is None
    assert text_departure(ref, "There is").at == 1 and text_departure(ref, "There is").rest
    assert text_departure(ref, "A cat").at == 0
    partial = Answer("", (TokenLogprob("\ufffd", -0.1, (("\ufffd", -0.1),)),))
    assert text_departure(partial, "é").at is None  # part of a character: undecided


def _confident() -> Answer:
    top = (("Paris", math.log(0.97)), (" Lyon", math.log(0.02)), (" Nice", math.log(0.005)))
    return Answer("Paris", (TokenLogprob("Paris", top[0][1], top),))


def test_leaving_a_confident_arg_max_at_a_low_temperature_fails_on_its_own() -> None:
    """At 0.2 the runner-up of a 97 % token is a ~10⁻⁹ draw: one probe fails; at 1.0 it
    passes (plausible once; the test across probes counts it)."""
    ref = _confident()
    v = compare_sampled_text(ref, " Lyon", temperature=0.2)
    assert not v.ok and v.reason == "sampled_token" and v.position == 0, v
    assert compare_sampled_text(ref, " Lyon", temperature=1.0).reason == "sampled_text_diverged"
    assert compare_sampled_text(ref, "Paris", temperature=0.2).reason == "sampled_text_match"
    # a token the reference does not list, where its list leaves out 0.5 %: plausible at 1.0
    assert compare_sampled_text(ref, " Marseille", temperature=1.0).ok
    ev = text_evidence(ref, " Lyon", 0.2)
    assert ev.left_at == 0 and ev.log_ratio > 10  # strong evidence for the CUSUM too


def test_a_late_departure_after_a_position_that_may_have_been_left_passes() -> None:
    """The textual departure at 1 may be the node's token at 0 (``"There"``): one probe
    fails only where every earlier position is implausible to leave too."""
    ref = _reference(2)
    assert compare_sampled_text(ref, "There is", temperature=0.2).ok
    ev = text_evidence(ref, "There is", 0.7)
    assert ev.left_at == 1
    assert ev.log_ratio <= text_evidence(ref, "A", 0.7).log_ratio + 1e-12  # at most leaving at 0


def test_no_departure_keeps_every_position() -> None:
    """No departure seen: the keeping factors of every position (the least any path earns),
    ≤ 0; a text that stops early only those of the positions it spelled (below)."""
    ref = _reference(2)
    full = text_evidence(ref, "The cat", 0.7)
    assert full.left_at is None and full.log_ratio < 0.0 and full.positions == 2
    assert text_evidence(ref, "The cat and more", 0.7) == full  # ran past the reference


def test_an_early_end_credits_only_the_positions_it_spelled() -> None:
    """Found 2026-12-06, probe33: a text that ended early was credited every position of the
    reference (``K_n``), so a liar's empty or short answer lowered its CUSUM. Now only the
    positions before the token it ended in (``K_m``: an empty answer, nothing), unless a
    stop string may have cut it there (the probe's, or a chat template's)."""
    ref = _reference(2)
    full = text_evidence(ref, "The cat", 0.7).log_ratio
    first = text_evidence(ref, "The", 0.7)
    assert text_evidence(ref, "", 0.7) == Evidence(0.0, 0, None)
    assert text_evidence(ref, "  \n", 0.7) == Evidence(0.0, 0, None)
    assert first.positions == 1 and full < first.log_ratio < 0.0
    assert text_evidence(ref, "The c", 0.7) == first  # ended inside " cat"
    assert text_evidence(ref, "Th", 0.7) == Evidence(0.0, 0, None)
    # a stop string that may have cut it there: every position, as before
    # (one of only whitespace: where the reference holds it there, review33b's test below)
    assert text_evidence(ref, "", 0.7, stops=("\n\n",)) == Evidence(0.0, 0, None)
    assert text_evidence(ref, "The", 0.7, stops=("cat",)).log_ratio == full  # begins " cat"
    assert text_evidence(ref, "The", 0.7, stops=("c",)).log_ratio == full  # begun by it
    assert text_evidence(ref, "The", 0.7, stops=("dog",)) == first  # cannot have cut there
    turn = Answer("", (ref.tokens[0], TokenLogprob("\nUser", -0.1, (("\nUser", -0.1),))))
    assert text_evidence(turn, "The", 0.7).positions == 2  # a chat template's "\nUser:"


def test_an_empty_stop_string_excuses_no_early_end() -> None:
    """A stop of ``""`` (a probe body's empty ``stop``) cuts nothing: an answer ended early
    earns what it earns without it, not every position of the reference."""
    ref = _reference(2)
    first = text_evidence(ref, "The", 0.7)
    assert first.positions == 1
    assert text_evidence(ref, "The", 0.7, stops=("",), chat=False) == first
    assert text_evidence(ref, "", 0.7, stops=("",), chat=False) == Evidence(0.0, 0, None)


def test_a_text_ended_inside_a_token_says_which_and_what_it_left_unspelled() -> None:
    """``text_departure``'s whole answer where the text ended inside the reference: the
    token it ended in, what that token spells past the end, and the reference's own text
    after the last character spelled (whitespace kept)."""
    ref = _reference(2)
    assert text_departure(ref, "The c") == TextDeparture(None, "", 1, "at", "at")
    assert text_departure(ref, "The") == TextDeparture(None, "", 1, "cat", " cat")
    assert text_departure(ref, "") == TextDeparture(None, "", 0, "The", "The cat")


def _eos_dist(context: tuple[str, ...]) -> dict[str, float]:
    """The toy model with an end of text (``EOS``) drawable almost everywhere."""
    table: dict[tuple[str, ...], dict[str, float]] = {
        (): {"The": 0.8, "There": 0.05, "Th": 0.03, " cat": 0.01, EOS: 0.11},
        ("The",): {" cat": 0.7, " dog": 0.05, EOS: 0.25},
        ("The", " cat"): {" is": 0.6, EOS: 0.3, " dog": 0.1},
        ("There",): {" is": 0.95, EOS: 0.05},
        ("Th",): {"e": 0.5, "re": 0.3, EOS: 0.2},
    }
    if context in table:
        return table[context]
    return {t: 1.0 / (len(VOCAB) + 1) for t in (*VOCAB, EOS)}


EOS = "\0eos"


def test_an_early_end_keeps_the_expectation_at_most_one_exactly() -> None:
    """Exactly, over every path of a toy model whose sampler may end the text at almost any
    position (a path ends at ``EOS``): ``E[exp(evidence)] ≤ 1`` at each temperature, and
    each text earns at most its tokens (``probe_evidence``, an end counted as nothing)."""
    out: list[TokenLogprob] = []
    context: tuple[str, ...] = ()
    for _ in range(3):  # the greedy reference, top 3 (EOS listed where it ranks)
        ranked = sorted(_eos_dist(context).items(), key=lambda kv: -kv[1])
        top = tuple((t, math.log(p)) for t, p in ranked[:3])
        out.append(TokenLogprob(top[0][0], top[0][1], top))
        context += (top[0][0],)
    ref = Answer("", tuple(out))
    assert [t.token for t in ref.tokens] == ["The", " cat", " is"]
    for temperature in (0.2, 0.5, 0.7, 1.0):
        paths: list[tuple[tuple[str, ...], float]] = [((), 1.0)]
        done: list[tuple[tuple[str, ...], float]] = []
        for _ in range(3):
            nxt = []
            for context, p in paths:
                weights = {t: q ** (1.0 / temperature) for t, q in _eos_dist(context).items()}
                total = sum(weights.values())
                for t, w in weights.items():
                    (done if t == EOS else nxt).append(((*context, t), p * w / total))
            paths = nxt
        every = done + paths
        assert abs(sum(p for _, p in every) - 1.0) < 1e-9
        expectation = 0.0
        for tokens, p in every:
            spelled = tuple(t for t in tokens if t != EOS)
            text = "".join(spelled)
            mine = text_evidence(ref, text, temperature).log_ratio
            got = Answer(text, tuple(TokenLogprob(t, 0.0) for t in spelled))
            assert mine <= probe_evidence(ref, got, temperature).log_ratio + 1e-12, tokens
            expectation += p * math.exp(mine)
        assert expectation <= 1.0 + 1e-9, (temperature, expectation)


def test_an_honest_text_other_tokens_spell_or_a_stop_cuts_passes() -> None:
    """attack32c (held): an honest node whose tokenizer merges differently (``"The cat"``
    as one token, or ``"T"`` ``"he"`` ``" c"`` ``"at"``), whose stop string or length
    limit cuts it mid-token, or whose detokeniser spaces it otherwise, is never flagged,
    even at a low temperature; a liar's text is, where the reference makes it implausible."""
    ref = _reference(2)
    for text in ("The cat", "Thecat", "The c", "T", "\nThe\tcat  ", "The cat. And then more"):
        v = compare_sampled_text(ref, text, temperature=0.2)
        assert v.ok and v.reason == "sampled_text_match", (text, v)
        assert text_evidence(ref, text, 0.2).log_ratio <= 0.0
    assert not compare_sampled_text(_confident(), " Lyon", temperature=0.2).ok


# one probe's verdict at its edges (written against the module's mutants, mut33, 2026-12-06)


def _pos(*top: tuple[str, float]) -> TokenLogprob:
    """A reference position: its pick the first of ``top`` (token, probability)."""
    listed = tuple((t, math.log(p)) for t, p in top)
    return TokenLogprob(listed[0][0], listed[0][1], listed)


def _ref(*positions: TokenLogprob) -> Answer:
    return Answer("".join(p.token for p in positions), positions)


def _floor(value: float) -> Rule:
    return dataclasses.replace(DEFAULT_RULE, sampled_floor=value)


def test_each_verdict_in_full() -> None:
    ref = _confident()
    assert compare_sampled_text(ref, "Paris", temperature=0.2) == Verdict(
        True, "sampled_text_match", None
    )
    assert compare_sampled_text(ref, " Lyon", temperature=0.2) == Verdict(
        False, "sampled_token", 0, diverged_at=0
    )
    assert compare_sampled_text(ref, " Lyon", temperature=1.0) == Verdict(
        True, "sampled_text_diverged", 0, diverged_at=0
    )
    two = _ref(_pos(("A", 0.6), ("B", 0.4)), _pos(("C", 0.6), ("D", 0.4)))
    assert compare_sampled_text(two, "AD", temperature=1.0) == Verdict(
        True, "sampled_text_diverged", 1, diverged_at=1
    )


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan")])
def test_a_temperature_not_above_0_is_refused_in_words(temperature: float) -> None:
    with pytest.raises(ValueError) as caught:
        compare_sampled_text(_confident(), " Lyon", temperature=temperature)
    assert str(caught.value) == "a sampled probe's temperature is above 0"


def test_the_default_temperature_is_1() -> None:
    """A 10⁻⁸ runner-up is implausible at 1.0 (the default), plausible at 2.0."""
    ref = _ref(_pos(("A", 1 - 1e-8), ("B", 1e-8)))
    assert compare_sampled_text(ref, "B").reason == "sampled_token"
    assert compare_sampled_text(ref, "B", temperature=1.0).reason == "sampled_token"
    assert compare_sampled_text(ref, "B", temperature=2.0).ok


def test_a_listed_token_the_text_goes_on_with_makes_it_plausible() -> None:
    """The text ``"Bxyz"`` where ``"B"`` (10 %) is listed: the node may have drawn it."""
    ref = _ref(_pos(("A", 0.9), ("B", 0.1)))
    assert compare_sampled_text(ref, "Bxyz", temperature=1.0).ok
    assert compare_sampled_text(ref, "B", temperature=1.0).ok


def test_a_text_no_listed_token_agrees_with_is_implausible_where_nothing_is_unlisted() -> None:
    """``"Zzz"`` agrees with neither listed token, and the list leaves nothing out: neither
    the reference's own pick nor the other listed token, however likely, makes it
    plausible."""
    ref = _ref(_pos(("A", 0.6), ("C", 0.4)))
    v = compare_sampled_text(ref, "Zzz", temperature=1.0)
    assert v == Verdict(False, "sampled_token", 0, diverged_at=0)


def test_the_agreeing_token_is_weighed_by_its_own_number() -> None:
    """``"B"`` at 30 % (not the list's least, 10 %) clears a floor of 0.2."""
    ref = _ref(_pos(("A", 0.6), ("B", 0.3), ("C", 0.1)))
    assert compare_sampled_text(ref, "B!", _floor(0.2), temperature=1.0).ok
    assert not compare_sampled_text(ref, "C!", _floor(0.2), temperature=1.0).ok


def test_an_unlisted_draw_is_plausible_where_the_list_leaves_out_exactly_the_floor() -> None:
    ref = _ref(_pos(("A", 0.5), ("B", 0.49)))
    unlisted = 1.0 - sum(math.exp(v) for _, v in ref.tokens[0].top)
    assert compare_sampled_text(ref, "Zzz", _floor(unlisted), temperature=1.0).ok
    assert not compare_sampled_text(ref, "Zzz", _floor(unlisted * 1.01), temperature=1.0).ok


def test_a_departure_exactly_at_the_floor_passes() -> None:
    """The draw's chance ``here`` exactly ``sampled_floor``: not below it, so it passes."""
    ref = _ref(_pos(("A", 0.97), ("B", 0.03)))
    here = tempered_most(ref.tokens[0], "B", 0.5)
    assert compare_sampled_text(ref, "B", _floor(here), temperature=0.5).ok
    assert not compare_sampled_text(ref, "B", _floor(here * 1.01), temperature=0.5).ok


def test_an_earlier_position_left_with_chance_exactly_the_floor_passes() -> None:
    first = _pos(("A", 0.97), ("B", 0.03))
    ref = _ref(first, _pos(("C", 1 - 1e-12), ("D", 1e-12)))
    earlier = leave_bound(first, 0.5, DepartureTest().margin)
    assert compare_sampled_text(ref, "AD", _floor(earlier), temperature=0.5).ok
    assert not compare_sampled_text(ref, "AD", _floor(earlier * 1.01), temperature=0.5).ok


def test_earlier_positions_are_bounded_at_the_probes_temperature_and_margin() -> None:
    """At 1.0 position 0 (a 3 % runner-up) may have been left: the text's departure at 1
    passes; at 0.2 it may not. A wide margin makes a 10⁻⁹ runner-up leavable at 1.0."""
    ref = _ref(_pos(("A", 0.97), ("B", 0.03)), _pos(("C", 1 - 1e-8), ("D", 1e-8)))
    assert compare_sampled_text(ref, "AD", temperature=1.0).ok
    assert not compare_sampled_text(ref, "AD", temperature=0.2).ok
    sure = _ref(_pos(("A", 1 - 1e-9), ("B", 1e-9)), _pos(("C", 1 - 1e-8), ("D", 1e-8)))
    assert not compare_sampled_text(sure, "AD", temperature=1.0).ok
    wide = DepartureTest(margin=5.0)
    assert compare_sampled_text(sure, "AD", temperature=1.0, test=wide).ok


def _three() -> Answer:
    return _ref(
        _pos(("The", 0.9), ("A", 0.08), ("An", 0.02)),
        _pos((" cat", 0.99), (" dog", 0.01)),
        _pos((" sat", 0.6), (" ran", 0.3), (" is", 0.1)),
    )


def _left_at(ref: Answer, j: int, token: str = "\0other") -> Answer:
    """The node's tokens: the reference's up to ``j``, then another."""
    tokens = (*ref.tokens[:j], TokenLogprob(token, 0.0))
    return Answer("".join(t.token for t in tokens), tokens)


@pytest.mark.parametrize("temperature", [0.2, 0.7, 1.0])
@pytest.mark.parametrize("margin", [0.2, 1.5])
def test_a_text_on_the_reference_earns_what_its_tokens_earn(
    temperature: float, margin: float
) -> None:
    """No departure: exactly ``probe_evidence`` of the reference's own tokens (every keeping
    factor, every position), at the test's margin."""
    ref, test = _three(), DepartureTest(margin=margin)
    got = text_evidence(ref, "The cat sat", temperature, test)
    want = probe_evidence(ref, ref, temperature, test)
    assert (got.positions, got.left_at) == (want.positions, want.left_at) == (3, None)
    assert got.log_ratio == pytest.approx(want.log_ratio, abs=1e-12)
    assert got.log_ratio < 0.0


@pytest.mark.parametrize("temperature", [0.2, 0.7, 1.0])
def test_a_departure_earns_the_least_its_tokens_could_have(temperature: float) -> None:
    """Left at 2 in the text: the least of the evidence of leaving at 0, 1 or 2
    (``probe_evidence`` of each), over the positions up to 2."""
    ref = _three()
    got = text_evidence(ref, "The cat flew", temperature)
    least = min(probe_evidence(ref, _left_at(ref, j), temperature).log_ratio for j in range(3))
    assert (got.positions, got.left_at) == (3, 2)
    assert got.log_ratio == pytest.approx(least, abs=1e-12)
    first = text_evidence(ref, "Zebra", temperature)
    assert (first.positions, first.left_at) == (1, 0)
    assert first.log_ratio == pytest.approx(
        probe_evidence(ref, _left_at(ref, 0), temperature).log_ratio, abs=1e-12
    )


def test_a_position_without_a_list_adds_nothing_kept() -> None:
    """A reference position without candidates may be left with chance 1: keeping it is no
    evidence either way (0), not 0 / 0."""
    bare = _ref(TokenLogprob("The", -0.1), _pos((" cat", 0.99), (" dog", 0.01)))
    got = text_evidence(bare, "The cat", 0.7)
    only = text_evidence(_ref(_pos((" cat", 0.99), (" dog", 0.01))), " cat", 0.7)
    assert (got.positions, got.left_at) == (2, None)
    assert got.log_ratio == pytest.approx(only.log_ratio, abs=1e-12)
    assert compare_sampled_text(bare, "The cat", temperature=0.7).reason == "sampled_text_match"


def test_a_whitespace_stop_may_cut_only_where_the_reference_has_that_whitespace() -> None:
    """Found 2026-12-06, review33b: a stop of only whitespace (``"\\n\\n"``, ``"\\n\\n\\n"``:
    a quarter of the probes that send a stop) was taken to have cut an early end anywhere,
    so a liar's empty answer to such a probe was credited every position (``K_n``, about -5
    on 32 tokens) and offset a lie. It may have cut a text only where the reference's own
    text holds it between the last character the text spelled and the next."""
    ref = _reference(2)  # "The cat": no "\n\n" anywhere
    full = text_evidence(ref, "The cat", 0.7).log_ratio
    assert text_evidence(ref, "", 0.7, stops=("\n\n",)) == Evidence(0.0, 0, None)
    first = text_evidence(ref, "The", 0.7)
    assert text_evidence(ref, "The", 0.7, stops=("\n\n", "\n\n\n")) == first
    # where the reference has it there, it may have: every position, as before
    para = Answer("", (ref.tokens[0], TokenLogprob(".\n\n", -0.1, ((".\n\n", -0.1),)),
                       TokenLogprob("Next", -0.1, (("Next", -0.1),))))  # fmt: skip
    spelled = text_evidence(para, "The.", 0.7)
    assert spelled.positions == 2
    assert text_evidence(para, "The.", 0.7, stops=("\n\n",)).positions == 3
    assert text_evidence(para, "The.\n", 0.7, stops=("\n\n",)).positions == 3
    assert text_evidence(para, "The.", 0.7, stops=("\n\n\n",)) == spelled  # not there
    assert text_evidence(para, "Th", 0.7, stops=("\n\n",)).positions == 0  # inside "The"
    split = Answer("", (ref.tokens[0], TokenLogprob("\n", -0.1, (("\n", -0.1),)),
                        TokenLogprob(" \nNext", -0.1, ((" \nNext", -0.1),))))  # fmt: skip
    assert text_evidence(split, "The", 0.7, stops=("\n \n",)).positions == 3  # across tokens
    assert text_evidence(split, "The", 0.7, stops=("\n\n",)).positions == 2
    assert full < first.log_ratio


def test_a_chat_templates_stops_may_cut_only_a_chat_probes_text() -> None:
    """Found 2026-12-06, review33b: a chat template's stop strings (``TURN_STOPS``) were
    taken to have cut a completion probe's text too, where no engine applies them (a
    completion is the client's text, its stops the client's alone), so a text that ended
    before a reference token ``"["``, ``"<"`` or ``"\\nUser"`` (code, markup) earned every
    position. A chat probe's still may (``chat``, the default)."""
    ref = _reference(1)
    turn = Answer("", (ref.tokens[0], TokenLogprob("\nUser", -0.1, (("\nUser", -0.1),))))
    assert text_evidence(turn, "The", 0.7).positions == 2  # a chat probe
    assert text_evidence(turn, "The", 0.7, chat=False).positions == 1
    assert text_evidence(turn, "The", 0.7, stops=("\nUser:",), chat=False).positions == 2


def test_a_stop_with_other_characters_may_cut_only_where_the_reference_spells_it() -> None:
    """Found 2026-12-06, canary34: a stop string with other characters than whitespace was
    matched with whitespace removed and against the rest of the reference's token ``m``
    alone, so a liar's text ended right before a reference token ``" Human"`` (the probe's
    ``"\\nHuman:"``), ``"Question"`` (``"Q:"``), or, on any chat probe, ``" ["`` or
    ``" <"`` (a chat template's ``"[INST]"``, ``"<|im_end|>"``) earned every position
    (``K_n``, a credit that offsets a lie) where no engine could have cut it. Now the stop,
    whitespace kept, must begin the reference's own text there (or be begun by it)."""
    ref = _reference(1)
    pos = TokenLogprob(ref.tokens[0].token, ref.tokens[0].logprob, ref.tokens[0].top)

    def after(*tokens: str) -> Answer:
        return Answer("", (pos, *(TokenLogprob(t, -0.01, ((t, -0.01),)) for t in tokens)))

    for tokens, stops, kept in (
        ((" Human", " rights"), ("\nHuman:", "\nAI:"), 1),  # no newline before it
        (("Question", ":"), ("Q:",), 1),  # "Q" then not ":"
        # code on a chat probe: "[INST]" may have cut it only if the node drew " [" and then
        # not the reference's "1" (review34: an honest node may): K of " [" too, not K_n
        ((" [", "1", "]"), (), 2),
        ((" <", "div", ">"), (), 2),  # markup: nor "<|im_end|>", "<end_of_turn>" past " <"
    ):
        liar = text_evidence(after(*tokens), "The", 0.7, stops=stops)  # ended before m
        assert liar.positions == kept, (tokens, liar)  # not K_n: every position
    # where the reference spells the stop there, an honest text cut by it: every position
    for tokens, stops in (
        (("\n", "Human", ":"), ("\nHuman:",)),
        ((" \nHuman", ":"), ("\nHuman:",)),  # the text kept the space
        (("Q", ":"), ("Q:",)),
        (("\nUser", ":"), ()),  # a chat template's turn
        (("<|im_end|>",), ()),
        (("\nHum",), ("\nHuman:",)),  # the reference, cut to the probe's length, ends first
    ):
        kept = text_evidence(after(*tokens), "The", 0.7, stops=stops)
        assert kept.positions == 1 + len(tokens), (tokens, kept)


def test_a_stop_that_the_reference_spells_only_in_part_charges_no_more_than_the_honest_tokens() -> None:
    """Found 2026-12-06 (review34): canary34 matched a stop string against the reference's
    text to its end, past token ``m`` (where the text ended), so a stop that agrees with
    the reference through ``m`` and then not (``"[INST]"`` against ``" [1]"``) could not have
    cut it, and the text earned ``K_m``. But an honest node whose tokens kept the reference's
    through ``m`` drew its own after it: here ``" ["`` then ``"INST"``, ``"]"`` where the
    reference has ``"1"`` (a near tie), the chat template's ``"[INST]"`` cut its text to
    ``"The "``, and its true tokens earn ``K_2 + D_2`` (``D_2`` ~0 at the near tie), less
    than ``K_1`` by the keeping factor of ``" ["`` (~1.4): more evidence than its tokens, the
    false-alarm bound's premise broken. The stop may have cut it up to the token where the
    reference's text leaves the stop (``"1"``): ``K_2`` is charged, no more than the tokens."""
    sure = -0.001
    ref = Answer(
        "The [1]",
        (
            TokenLogprob("The", sure, (("The", sure),)),
            TokenLogprob(" [", sure, ((" [", sure),)),
            TokenLogprob("1", math.log(0.35), (("1", math.log(0.35)), ("INST", math.log(0.33)))),
            TokenLogprob("]", sure, (("]", sure),)),
        ),
    )
    honest = Answer(
        "The [INST]",
        tuple(TokenLogprob(t, sure, ()) for t in ("The", " [", "INST", "]")),
    )
    for t in (0.5, 0.7, 1.0):
        true = probe_evidence(ref, honest, t).log_ratio
        for text in ("The", "The "):  # the engine cut where "[INST]" begins
            charged = text_evidence(ref, text, t)  # a chat probe: TURN_STOPS
            assert charged.log_ratio <= true + 1e-12, (t, text, charged, true)
            assert charged.positions == 2, charged  # K_2: not K_n, the stop leaves at "1"
        # a completion probe has no template stop: nothing cut it, K_m as before
        assert text_evidence(ref, "The", t, chat=False).positions == 1


def test_a_text_cut_by_a_stop_earns_at_most_its_tokens_on_random_paths() -> None:
    """The bound's premise for texts an engine cut at a stop string (review34): random
    references over tokens that spell stops in part, random honest paths that keep the
    reference's for a while and then draw their own, the text cut where a stop first
    appears (the engine generated the stop's tokens, then cut): never more evidence than
    the tokens the node drew (``probe_evidence``)."""
    vocab = (" [", "[", "INST", "]", "1", " Human", "\n", "Hum", "an", ":", "Q", "uestion",
             "The", " cat", " ")  # fmt: skip
    stops = ("[INST]", "\nHuman:", "Q:", "an:", "\n\n")
    rng = random.Random(34)
    for _ in range(4000):
        ref_tokens = [rng.choice(vocab) for _ in range(rng.randint(1, 6))]
        ref = Answer(
            "".join(ref_tokens),
            tuple(
                TokenLogprob(t, lp, ((t, lp),))
                for t in ref_tokens
                for lp in (math.log(rng.choice((0.999, 0.9, 0.5, 0.35))),)
            ),
        )
        keep = rng.randint(0, len(ref_tokens))
        drawn = ref_tokens[:keep] + [rng.choice(vocab) for _ in range(rng.randint(0, 5))]
        text, used = "".join(drawn), drawn
        asked = tuple(s for s in stops if rng.random() < 0.5)
        cuts = [(text.find(s), s) for s in asked if s in text]
        if cuts:
            at, s = min(cuts)
            text = text[:at]  # the tokens through the one that completed the stop were drawn
            upto, spelled = 0, 0
            while spelled < at + len(s):
                spelled += len(drawn[upto])
                upto += 1
            used = drawn[:upto]
        for t in (0.5, 1.0):
            got = Answer(text, tuple(TokenLogprob(x, -0.1, ()) for x in used))
            true = probe_evidence(ref, got, t).log_ratio
            mine = text_evidence(ref, text, t, stops=asked, chat=False).log_ratio
            assert mine <= true + 1e-9, (ref_tokens, drawn, asked, text, mine, true)
