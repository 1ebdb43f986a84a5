"""``core/canary_departures.py``: the bound on an honest sampler's chance of leaving the
arg max, the per-probe evidence, the CUSUM across probes and its memory."""

from __future__ import annotations

import math
import random

import pytest

from LLM_Mesh.core.canary import Answer, TokenLogprob
from LLM_Mesh.core.canary_departures import (
    DEFAULT_TEST,
    Departures,
    DepartureTally,
    Evidence,
    counted,
    leave_bound,
    probe_evidence,
)
from LLM_Mesh.core.canary_shape import TEMPERATURES, Shape

FULL = (("a", math.log(0.6)), ("b", math.log(0.25)), ("c", math.log(0.1)), ("d", math.log(0.05)))


def leave_exact(probs: dict[str, float], chosen: str, t: float, top_p: float = 1.0) -> float:
    """The chance a sampler at ``t`` (top-p on the raw numbers first, as llama.cpp) draws
    another token than ``chosen``."""
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    kept, total = [], 0.0
    for tok, p in ranked:
        kept.append((tok, p))
        total += p
        if total >= top_p:
            break
    w = {tok: p ** (1 / t) for tok, p in kept}
    return 1.0 - w.get(chosen, 0.0) / sum(w.values())


def test_a_fully_listed_distribution_gives_the_exact_chance_without_margin() -> None:
    ref = TokenLogprob("a", FULL[0][1], FULL)
    probs = {t: math.exp(v) for t, v in FULL}
    for t in TEMPERATURES:
        assert leave_bound(ref, t, margin=0.0) == pytest.approx(leave_exact(probs, "a", t))


@pytest.mark.parametrize("t", sorted(set(TEMPERATURES)))
def test_a_truncated_list_bounds_every_way_the_unlisted_mass_may_lie(t: float) -> None:
    """The list shows 3 tokens; the 5 % left out lies in one token at the list's last, in
    pieces of it, or in a thousand crumbs: the bound is above the exact chance each way."""
    listed = FULL[:3]  # the last listed: 0.1, the mass left out: 0.05
    ref = TokenLogprob("a", listed[0][1], listed)
    q = leave_bound(ref, t, margin=0.0)
    base = {tok: math.exp(v) for tok, v in listed}
    for pieces in ([0.05], [0.025, 0.025], [0.05 / 1000] * 1000, [0.04, 0.01]):
        probs = {**base, **{f"u{i}": p for i, p in enumerate(pieces)}}
        assert leave_exact(probs, "a", t) <= q + 1e-12, (pieces, t)


@pytest.mark.parametrize("t", sorted(set(TEMPERATURES)))
def test_the_margin_covers_an_honest_node_whose_numbers_differ_slightly(t: float) -> None:
    """A node whose own numbers are within e^±0.2 of the reference's (the pick lowered, the
    others raised: the worst way), renormalised, leaves no more often than the bound."""
    ref = TokenLogprob("a", FULL[0][1], FULL)
    q = leave_bound(ref, t)
    raw = {tok: math.exp(v + (-0.2 if tok == "a" else 0.2)) for tok, v in FULL}
    total = sum(raw.values())
    assert leave_exact({k: v / total for k, v in raw.items()}, "a", t) <= q + 1e-12  # tight


def test_top_p_keeps_the_bound_or_the_factor_is_neutral() -> None:
    """Where top-p keeps the pick the others' share only falls; where it drops it (a flat
    distribution), the bound is at least the alternative, so the evidence is a factor 1."""
    ref = TokenLogprob("a", FULL[0][1], FULL)
    probs = {t: math.exp(v) for t, v in FULL}
    for top_p in (0.9, 0.95):
        for t in TEMPERATURES:
            assert leave_exact(probs, "a", t, top_p) <= leave_bound(ref, t)
    flat = tuple((f"t{i}", math.log(0.1)) for i in range(10))
    flat_ref = TokenLogprob("t9", flat[-1][1], flat)  # the last of ten ties: top-p may drop it
    for t in TEMPERATURES:
        assert leave_bound(flat_ref, t) >= DEFAULT_TEST.alternative
    ev = probe_evidence(Answer("", (flat_ref,)), Answer("", (TokenLogprob("t0", -2.3, flat),)), 0.7)
    assert ev.log_ratio == 0.0 and ev.left_at == 0


def test_no_evidence_without_a_list_or_above_temperature_1() -> None:
    assert leave_bound(TokenLogprob("a", -0.1, ()), 0.7) == 1.0
    assert leave_bound(TokenLogprob("a", FULL[0][1], FULL), 1.5) == 1.0


@pytest.mark.parametrize("t", sorted(set(TEMPERATURES)))
def test_each_factor_has_an_expectation_of_at_most_1_for_an_honest_sampler(t: float) -> None:
    """The supermartingale property Ville's inequality needs, for the reference's own
    distribution and for ones leaving less often (a sharper node, a truncating sampler)."""
    ref = TokenLogprob("a", FULL[0][1], FULL)
    test = DEFAULT_TEST
    q = max(test.floor, leave_bound(ref, t))
    r = max(q, test.alternative)
    for honest in (leave_exact({k: math.exp(v) for k, v in FULL}, "a", t), q / 2, 0.0):
        mean = honest * r / q + (1 - honest) * (1 - r) / (1 - q)
        assert mean <= 1.0 + 1e-12


def answer_of(tokens: list[str], top: tuple[tuple[str, float], ...] = FULL) -> Answer:
    return Answer("".join(tokens), tuple(TokenLogprob(x, dict(top).get(x, -9.0), top)
                                         for x in tokens))  # fmt: skip


def test_a_departure_at_once_adds_evidence_and_stays_take_it_away() -> None:
    ref = answer_of(["a", "a", "a"])
    q = leave_bound(ref.tokens[0], 0.7)
    left = probe_evidence(ref, answer_of(["b", "c", "d"]), 0.7)
    assert left == Evidence(pytest.approx(math.log(0.8 / q)), 1, 0)
    later = probe_evidence(ref, answer_of(["a", "b"]), 0.7)
    assert later.left_at == 1 and later.log_ratio < left.log_ratio
    stayed = probe_evidence(ref, answer_of(["a", "a", "a"]), 0.7)
    assert stayed.left_at is None and stayed.log_ratio < 0


def test_an_honest_sampler_over_many_seeded_probes_is_never_flagged() -> None:
    """20,000 probes drawn from the reference's own distribution (leaving the arg max at
    about the rate the bound allows) at every temperature: the CUSUM never nears the
    threshold (the claim: ≤ n·10⁻¹² a flag over n probes)."""
    rng = random.Random(31)
    probs = [math.exp(v) for _, v in FULL]
    tally, highest = DepartureTally(), 0.0
    ref = answer_of(["a"] * 8)
    for _ in range(20_000):
        t = rng.choice(TEMPERATURES)
        weights = [p ** (1 / t) for p in probs]
        drawn = []
        for _ in range(8):
            drawn.append(rng.choices([x for x, _ in FULL], weights)[0])
            if drawn[-1] != "a":
                break
        tally.add(probe_evidence(ref, answer_of(drawn), t))
        highest = max(highest, tally.score)
    assert highest < DEFAULT_TEST.threshold / 2, highest


def test_a_node_always_leaving_a_confident_arg_max_at_once_is_flagged_in_a_few_probes() -> None:
    """A real model's confident first token (90 %) at 0.7–1.0: the runner-up each time."""
    top = (("a", math.log(0.9)), ("b", math.log(0.05)), ("c", math.log(0.03)))
    ref = answer_of(["a"] * 8, top)
    departures = Departures()
    for n in range(1, 100):
        t = (0.7, 0.8, 1.0)[n % 3]
        flag = departures.add("n", "m", probe_evidence(ref, answer_of(["b"], top), t))
        if flag is not None:
            break
    assert flag is not None and n == 13, n  # 13 sampled probes (2.3 nats each)
    assert flag.describe().startswith("sampled_departures: log-likelihood ratio")
    assert flag.departures == flag.at_first == flag.probes == n


def test_the_evidence_is_bounded_in_memory_and_forgotten_on_clear() -> None:
    departures = Departures(max_pairs=3)
    for i in range(5):
        departures.add(f"n{i}", "m", Evidence(1.0, 1, 0))
    assert list(departures.tallies) == [("n2", "m"), ("n3", "m"), ("n4", "m")]
    departures.add("n4", "other", Evidence(1.0, 1, 0))
    departures.forget("n4")
    assert list(departures.tallies) == [("n3", "m")]
    departures.add("n3", "m", Evidence(-5.0, 4, None))  # back to 0: not kept
    assert not departures.tallies


def test_only_fresh_draws_from_the_reported_numbers_count() -> None:
    assert counted(Shape(temperature=0.7))
    assert not counted(Shape(temperature=0.0))
    assert not counted(Shape(temperature=0.7, sampling=(("seed", 42),)))  # common: repeats
    assert counted(Shape(temperature=0.7, sampling=(("seed", 1_804_289_383),)))  # random
    assert counted(Shape(temperature=0.7, sampling=(("presence_penalty", 0),)))
    assert not counted(Shape(temperature=0.7, sampling=(("frequency_penalty", 0.5),)))
    assert not counted(Shape(temperature=1.2))
