"""A sampled answer's text judged by the reference's own numbers (``core/canary_sampled_text.py``).

The false-alarm bound rests on two facts tested here: the evidence a text earns is never
more than its node's true tokens earn (``canary_departures.probe_evidence``), whatever
tokens spelled it; and, exactly, its expectation under an honest sampler is at most 1 on
a toy model whose tokens spell beginnings of each other (``"Th"``, ``"The"``, ``"There"``),
where crediting the textual departure alone (what a naive rule would do) is not."""

from __future__ import annotations

import math
import random

from LLM_Mesh.core.canary import Answer, TokenLogprob
from LLM_Mesh.core.canary_departures import Evidence, probe_evidence
from LLM_Mesh.core.canary_sampled_text import (
    TextDeparture,
    compare_sampled_text,
    text_departure,
    text_evidence,
)
from tests.core.sampled_text_fixtures import VOCAB, confident, distribution, sampled_reference


def _paths(length: int, temperature: float) -> list[tuple[tuple[str, ...], float]]:
    """Every token path of ``length`` an honest sampler at ``temperature`` draws, with its
    probability."""
    paths: list[tuple[tuple[str, ...], float]] = [((), 1.0)]
    for _ in range(length):
        nxt = []
        for context, p in paths:
            dist = distribution(context)
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
    ref = sampled_reference(2)
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
    ref = sampled_reference(3)
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
    ref = sampled_reference(2)
    assert text_departure(ref, "The cat").at is None
    assert text_departure(ref, " The  cat and more").at is None  # ran past the reference
    assert text_departure(ref, "The ca").at is None  # ended inside a token
    assert text_departure(ref, "").at is None
    assert text_departure(ref, "There is").at == 1 and text_departure(ref, "There is").rest
    assert text_departure(ref, "A cat").at == 0
    partial = Answer("", (TokenLogprob("\ufffd", -0.1, (("\ufffd", -0.1),)),))
    assert text_departure(partial, "é").at is None  # part of a character: undecided


def test_leaving_a_confident_arg_max_at_a_low_temperature_fails_on_its_own() -> None:
    """At 0.2 the runner-up of a 97 % token is a ~10⁻⁹ draw: one probe fails; at 1.0 it
    passes (plausible once; the test across probes counts it)."""
    ref = confident()
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
    ref = sampled_reference(2)
    assert compare_sampled_text(ref, "There is", temperature=0.2).ok
    ev = text_evidence(ref, "There is", 0.7)
    assert ev.left_at == 1
    assert ev.log_ratio <= text_evidence(ref, "A", 0.7).log_ratio + 1e-12  # at most leaving at 0


def test_no_departure_keeps_every_position() -> None:
    """No departure seen: the keeping factors of every position (the least any path earns),
    ≤ 0; a text that stops early only those of the positions it spelled (below)."""
    ref = sampled_reference(2)
    full = text_evidence(ref, "The cat", 0.7)
    assert full.left_at is None and full.log_ratio < 0.0 and full.positions == 2
    assert text_evidence(ref, "The cat and more", 0.7) == full  # ran past the reference


def test_an_early_end_credits_only_the_positions_it_spelled() -> None:
    """Found 2026-12-06, probe33: a text that ended early was credited every position of the
    reference (``K_n``), so a liar's empty or short answer lowered its CUSUM. Now only the
    positions before the token it ended in (``K_m``: an empty answer, nothing), unless a
    stop string may have cut it there (the probe's, or a chat template's)."""
    ref = sampled_reference(2)
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
    ref = sampled_reference(2)
    first = text_evidence(ref, "The", 0.7)
    assert first.positions == 1
    assert text_evidence(ref, "The", 0.7, stops=("",), chat=False) == first
    assert text_evidence(ref, "", 0.7, stops=("",), chat=False) == Evidence(0.0, 0, None)


def test_a_text_ended_inside_a_token_says_which_and_what_it_left_unspelled() -> None:
    """``text_departure``'s whole answer where the text ended inside the reference: the
    token it ended in, what that token spells past the end, and the reference's own text
    after the last character spelled (whitespace kept)."""
    ref = sampled_reference(2)
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
    ref = sampled_reference(2)
    for text in ("The cat", "Thecat", "The c", "T", "\nThe\tcat  ", "The cat. And then more"):
        v = compare_sampled_text(ref, text, temperature=0.2)
        assert v.ok and v.reason == "sampled_text_match", (text, v)
        assert text_evidence(ref, text, 0.2).log_ratio <= 0.0
    assert not compare_sampled_text(confident(), " Lyon", temperature=0.2).ok
