"""``core/canary_departures.py``: the bound on an honest sampler's chance of leaving the
arg max, the per-probe evidence, the CUSUM across probes and its memory."""

from __future__ import annotations

import math
import random

import pytest

from LLM_Mesh.core.canary import Answer, TokenLogprob
from LLM_Mesh.core.canary_departures import (
    DEFAULT_TEST,
    KINDS,
    Departures,
    DepartureTally,
    DepartureTest,
    Evidence,
    Kept,
    counted,
    kind_of,
    leave_bound,
    probe_evidence,
    slices_of,
)
from LLM_Mesh.core.canary_shape import CHAT_PATH, TEMPERATURES, Shape

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


@pytest.mark.parametrize("t", [1e-6, 1e-3, 5e-4, 1e-300, 5e-324, 0.0, -1.0, math.nan])
def test_the_bound_is_total_at_any_temperature(t: float) -> None:
    """Found 2026-12-06, probe33: below about 0.00056 the margin's factor ``e^{2·0.2/T}``
    overflowed (OverflowError). Now a number in [0, 1] at every temperature: near 0 the
    arg max is kept unless it is within the margin of a runner-up (no evidence where it
    is); 0 and below, no evidence (1)."""
    ref = TokenLogprob("a", FULL[0][1], FULL)
    q = leave_bound(ref, t)
    assert 0.0 <= q <= 1.0
    if t > 0:  # the arg max 0.6 against 0.25: far beyond the margin, kept at once
        assert q < 1e-100
        assert math.isfinite(probe_evidence(Answer("", (ref,)), Answer("", (ref,)), t).log_ratio)
    else:
        assert q == 1.0
    near = TokenLogprob("a", math.log(0.5), (("a", math.log(0.5)), ("b", math.log(0.45))))
    assert leave_bound(near, t) == (pytest.approx(1.0) if t > 0 else 1.0)  # within e^0.4
    deep = TokenLogprob("a", -1e-9, (("a", -1e-9), ("b", -800.0)))  # unlisted mass, p_min 0
    assert 0.0 <= leave_bound(deep, t) <= 1.0


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


def test_a_pick_below_the_arg_max_is_bounded_by_its_own_number() -> None:
    """The reference's pick need not be the list's first: the bound is the chance of
    leaving that token, not the arg max (its number from ``logprob`` or its list entry)."""
    probs = {t: math.exp(v) for t, v in FULL}
    for t in TEMPERATURES:
        ref = TokenLogprob("b", FULL[1][1], FULL)
        assert leave_bound(ref, t, margin=0.0) == pytest.approx(leave_exact(probs, "b", t))
        # a logprob rounded below its list entry: the list's (larger) number is the pick's
        low = TokenLogprob("b", FULL[1][1] - 1.0, FULL)
        assert leave_bound(low, t, margin=0.0) == pytest.approx(leave_exact(probs, "b", t))


def test_no_evidence_at_temperature_0_or_without_a_finite_number() -> None:
    assert leave_bound(TokenLogprob("a", FULL[0][1], FULL), 0.0) == 1.0  # greedy: no draw
    assert leave_bound(TokenLogprob("a", FULL[0][1], FULL), 1.0) < 1.0
    nothing = (("a", -math.inf), ("b", math.nan))
    assert leave_bound(TokenLogprob("a", -0.1, nothing), 0.7) == 1.0
    assert leave_bound(TokenLogprob("a", math.nan, FULL), 0.7) == 1.0


def test_a_low_temperature_does_not_underflow_the_weights() -> None:
    """Weights are scaled by the best's: two ties at ``T`` 0.002 are a half each (unscaled,
    ``0.3^500`` is 0.0 in a float and the bound 0 / 0)."""
    ties = (("a", math.log(0.3)), ("b", math.log(0.3)), ("c", math.log(0.4) - 20.0))
    assert leave_bound(TokenLogprob("a", ties[0][1], ties), 0.002, margin=0.0) == (
        pytest.approx(0.5)
    )


def test_the_margin_given_is_the_one_the_evidence_uses() -> None:
    ref = answer_of(["a", "a"])
    test = DepartureTest(margin=0.0)
    q = leave_bound(ref.tokens[0], 0.7, margin=0.0)
    assert q < leave_bound(ref.tokens[0], 0.7)  # the default margin widens it
    ev = probe_evidence(ref, answer_of(["b"]), 0.7, test)
    assert ev == Evidence(pytest.approx(math.log(0.8 / q)), 1, 0)


def test_each_kept_position_multiplies_the_ratio_by_its_factor() -> None:
    """A node that kept the pick at every shared position: the sum of
    ``ln((1 - r) / (1 - q))`` over them, and the positions compared (the shorter answer's)."""
    ref = answer_of(["a", "a", "a", "a"])
    q = max(DEFAULT_TEST.floor, leave_bound(ref.tokens[0], 0.7))
    r = max(q, DEFAULT_TEST.alternative)
    kept = probe_evidence(ref, answer_of(["a", "a", "a"]), 0.7)
    assert kept == Evidence(pytest.approx(3 * math.log((1 - r) / (1 - q))), 3, None)
    # after two kept, a departure adds ln(r / q) to them
    left = probe_evidence(ref, answer_of(["a", "a", "c"]), 0.7)
    expected = 2 * math.log((1 - r) / (1 - q)) + math.log(r / q)
    assert left == Evidence(pytest.approx(expected), 3, 2)


def test_a_position_without_evidence_adds_nothing() -> None:
    """A reference token without a list bounds nothing (``q`` 1): keeping it adds 0
    (``(1 - r) / (1 - q)`` is 0 / 0 there), leaving it too."""
    bare = Answer("aa", (TokenLogprob("a", -0.1, ()), TokenLogprob("a", -0.1, ())))
    assert probe_evidence(bare, answer_of(["a", "a"]), 0.7) == Evidence(0.0, 2, None)
    assert probe_evidence(bare, answer_of(["a", "b"]), 0.7) == Evidence(0.0, 2, 1)


def test_a_tally_back_at_exactly_0_starts_afresh() -> None:
    tally = DepartureTally()
    tally.add(Evidence(1.0, 1, 0))
    tally.add(Evidence(0.5, 2, 1))
    assert (tally.score, tally.probes, tally.departures, tally.at_first) == (1.5, 2, 2, 1)
    tally.add(Evidence(-1.5, 3, None))  # exactly 0: no run of probes left with evidence
    assert (tally.score, tally.probes, tally.departures, tally.at_first) == (0.0, 0, 0, 0)
    tally.add(Evidence(-2.0, 3, None))  # never below 0: no credit
    assert (tally.score, tally.probes, tally.departures, tally.at_first) == (0.0, 0, 0, 0)
    tally.add(Evidence(0.25, 3, None))
    assert (tally.score, tally.probes, tally.departures, tally.at_first) == (0.25, 1, 0, 0)


def test_a_score_of_exactly_the_threshold_flags() -> None:
    """Every tally flags at the test's ``h + ln 4`` (8 tallies a probe share ``2n·e^-h``)."""
    departures = Departures(DepartureTest(threshold=2.0 - math.log(4)))
    h = departures.threshold()
    assert h == pytest.approx(2.0)
    assert departures.add("n", "m", Evidence(h / 2, 1, 0)) is None
    flag = departures.add("n", "m", Evidence(h / 2, 1, 0))
    assert flag is not None and flag.score == h and flag.probes == 2
    assert not departures.tallies  # not kept: cleared afresh
    assert flag.describe() == (
        "sampled_departures: log-likelihood ratio 2.0 ≥ 2.0 (honest chance ≤ e^-2.0 a run) "
        "over 2 sampled probes, 2 leaving the reference's arg max (2 at the first token)"
    )


def test_the_pairs_kept_are_bounded_by_default_and_at_least_one() -> None:
    departures = Departures()
    for i in range(65_537):
        departures.add(f"n{i}", "m", Evidence(1.0, 1, 0))
    assert len(departures.tallies) == 65_536 and ("n0", "m") not in departures.tallies
    for cap in (0, 1):
        one = Departures(max_pairs=cap)
        one.add("a", "m", Evidence(1.0, 1, 0))
        one.add("b", "m", Evidence(1.0, 1, 0))
        assert list(one.tallies) == [("b", "m")]


def test_every_penalty_and_temperature_1_decide_what_counts() -> None:
    assert counted(Shape(temperature=1.0))
    assert not counted(Shape(temperature=0.7, sampling=(("presence_penalty", 0.5),)))
    assert not counted(Shape(temperature=0.7, sampling=(("presence_penalty", -1),)))
    # a sampler's top_p is no penalty: still fresh draws from the reported numbers
    assert counted(Shape(temperature=0.7, sampler=(("top_p", 0.9),)))
    assert counted(Shape(temperature=0.7, sampler=(("repeat_penalty", 0),)))
    assert not counted(Shape(temperature=0.7, sampler=(("repeat_penalty", 1.1),)))


def test_each_kind_of_answer_has_a_tally_of_its_own_beside_the_pairs() -> None:
    """probe33: a node lying to one kind of answer alone (streams, or texts without
    ``logprobs``) is flagged by that kind's tally though its honest answers to the others
    hold the pair's down; a flag or the admin's clear starts all the pair's afresh."""
    assert kind_of(Shape(stream=True)) == "stream" and kind_of(Shape()) == "logprobs"
    assert kind_of(Shape(logprobs=False)) == "text" and set(KINDS) == {"stream", "text", "logprobs"}
    departures = Departures()
    for _ in range(100):  # honest answers of another kind, then lies of this one
        assert departures.add("n", "m", Evidence(-1.0, 4, None), "logprobs") is None
        flag = departures.add("n", "m", Evidence(0.9, 1, 0), "text")
        if flag is not None:
            break
    assert flag is not None and flag.kind == "text", departures.kinds
    assert "(ones without log-probabilities alone)" in flag.describe()
    assert not departures.tallies and not departures.kinds  # afresh
    departures.add("n", "m", Evidence(1.0, 1, 0), "stream")
    departures.add("o", "m", Evidence(1.0, 1, 0), "stream")
    departures.forget("n")
    assert list(departures.tallies) == [("o", "m")] and list(departures.kinds) == [
        ("o", "m", "stream")
    ]


def test_a_flood_of_small_tallies_never_evicts_a_liars_high_one() -> None:
    """slice34: many node ids' small tallies (a hostile operator's ids, or load) filled each
    table past its bound; the least recently updated went first, so the liar's high tally
    went with the flood and its next lies started afresh. The lowest score goes first."""
    departures = Departures(max_pairs=64, max_kinds=64, max_slices=64)
    shape = Shape(temperature=0.7, sampler=(("top_p", 0.9),))
    kind, slices = kind_of(shape), slices_of(shape)
    for _ in range(4):  # 20 nats in every one of its 8 tallies, below the threshold (29)
        assert departures.add("liar", "m", Evidence(5.0, 1, 0), kind, slices) is None
    for i in range(1000):  # then a thousand other ids, one small tally each
        departures.add(f"sybil{i}", "m", Evidence(0.5, 1, 0), kind, slices)
    assert departures.tallies[("liar", "m")].score == 20.0
    assert departures.kinds[("liar", "m", kind)].score == 20.0
    assert all(departures.slices[("liar", "m", of, p)].score == 20.0
               for of in (kind, "") for p in slices)  # fmt: skip
    flag = departures.add("liar", "m", Evidence(10.0, 1, 0), kind, slices)
    assert flag is not None and flag.score == 30.0 and flag.probes == 5
    assert ("liar", "m") not in departures.tallies  # flagged: its evidence afresh
    assert len(departures.tallies) == len(departures.kinds) == 63  # the flood's, bounded
    assert len(departures.slices) == 64 - 6


def test_slice_entries_never_evict_the_pairs_or_the_kinds() -> None:
    """slice34: each probe adds 6 slice tallies; they are bounded apart (``max_slices``),
    so a pair's and its kinds' evidence stays while the slices' table is full."""
    departures = Departures(max_pairs=8, max_kinds=8, max_slices=4)
    shapes = [Shape(temperature=t, stream=s, sampler=p) for t in (0.3, 0.7, 1.0)
              for s in (True, False) for p in ((), (("top_p", 0.9),))]  # fmt: skip
    for i in range(8):
        for shape in shapes:
            departures.add_probe(f"n{i}", "m", Evidence(0.5, 1, 0), shape)
    assert len(departures.slices) == 4
    assert len(departures.tallies) == 8 and len(departures.kinds) == 8
    assert all(departures.tallies[(f"n{i}", "m")].score == 6.0 for i in range(8))


def test_a_new_tally_is_kept_until_another_is_written_even_when_lowest() -> None:
    """slice34: the lowest other than the one just written goes, so a node's first
    evidence is kept past a table of higher tallies (until the next one written)."""
    departures = Departures(max_pairs=3)
    for i in range(3):
        departures.add(f"n{i}", "m", Evidence(5.0 + i, 1, 0))
    departures.add("new", "m", Evidence(1.0, 1, 0))
    assert list(departures.tallies) == [("n1", "m"), ("n2", "m"), ("new", "m")]
    departures.add("n1", "m", Evidence(1.0, 1, 0))  # 7: now "new" (1.0) is the lowest
    departures.add("newer", "m", Evidence(2.0, 1, 0))
    assert set(departures.tallies) == {("n1", "m"), ("n2", "m"), ("newer", "m")}


def test_a_flood_of_ids_keeps_each_tables_bookkeeping_bounded() -> None:
    """Found 2026-12-06 (``review34b``): each table's write marks (``Kept._at``, what tells
    a heap entry stale) kept every key ever written: an evicted key's mark stayed, and the
    heap, popped as the table evicts, never grew past twice the table to compact it, so a
    flood of new node ids (the very flood ``slice34`` bounds the tables against) grew the
    marks without bound (100,000 ids, a table of 64: 100,000 marks). Now an evicted key's
    mark goes with it: at most the heap's entries, itself at most twice the table + 64."""
    departures = Departures(max_pairs=64, max_kinds=64, max_slices=64)
    shape = Shape(temperature=0.7, sampler=(("top_p", 0.9),))
    for i in range(5000):
        departures.add_probe(f"sybil{i}", "m", Evidence(0.5, 1, 0), shape)
    for table in (departures.tallies, departures.kinds, departures.slices):
        assert len(table) <= 64
        # (private bookkeeping: the memory the bound is about)
        assert len(table._heap) <= 2 * 64 + 65 and len(table._at) <= len(table._heap)


def test_eviction_matches_the_lowest_score_rule_under_rewrites_and_removals() -> None:
    """``Kept`` against a plain model of its rule (the lowest (score, write) other than the
    key just written goes past ``cap``), over random puts, pops (as ``Departures._add``
    pops before it writes again) and deletes (``forget``), ties included (scores 1 to 4)."""
    for seed in range(200):
        rng = random.Random(seed)
        cap = rng.randint(1, 6)
        kept, model, writes = Kept(cap), {}, 0
        for _ in range(300):
            key, op = (f"n{rng.randint(0, 12)}", "m"), rng.random()
            kept.pop(key, None)
            model.pop(key, None)
            if op < 0.7:
                tally = DepartureTally(kind="", slice="", threshold=29.0)
                tally.score = float(rng.randint(1, 4))
                kept.put(key, tally)
                writes += 1
                model[key] = (tally.score, writes)
                while len(model) > cap:
                    del model[min((v, k) for k, v in model.items() if k != key)[1]]
            assert set(kept) == set(model), seed
            assert len(kept._at) <= len(kept._heap) <= 2 * len(kept) + 65


def test_a_slice_tallys_flag_names_its_kind_and_slice() -> None:
    """A tally kept over one kind's slice says both, in that order, in its words."""
    tally = DepartureTally(score=31.25, probes=40, departures=12, at_first=3,
                           kind="stream", slice="endpoint=chat", threshold=30.0)  # fmt: skip
    assert tally.describe() == (
        "sampled_departures: log-likelihood ratio 31.2 ≥ 30.0 (honest chance ≤ e^-30.0 a run) "
        "over 40 sampled probes (streamed ones, endpoint=chat alone), 12 leaving the "
        "reference's arg max (3 at the first token)"
    )
    tally.kind = "text"
    assert "probes (ones without log-probabilities, endpoint=chat alone), 12" in tally.describe()


@pytest.mark.parametrize(
    ("t", "band"),
    [
        (0.2, "0.2-0.5"),
        (0.5, "0.2-0.5"),
        (0.51, "0.6-0.8"),
        (0.8, "0.6-0.8"),
        (0.81, "0.9-1"),
        (1.0, "0.9-1"),
    ],
)
def test_a_probes_temperature_band_includes_its_upper_bound(t: float, band: str) -> None:
    assert slices_of(Shape(temperature=t)) == (
        "endpoint=completions",
        f"temperature={band}",
        "top_p=none",
    )


def test_a_probes_slices_name_its_endpoint_and_the_top_p_it_sent() -> None:
    """``top_p`` as the body carries it: none, a no-op 1 (or more) among the extras, or a
    sampled probe's below 1, which wins over an extra's."""
    chat = Shape(path=CHAT_PATH, temperature=0.7)
    assert slices_of(chat) == ("endpoint=chat", "temperature=0.6-0.8", "top_p=none")
    one = Shape(temperature=0.9, extras=(("top_p", 1),))
    assert slices_of(one) == ("endpoint=completions", "temperature=0.9-1", "top_p=1")
    below = Shape(temperature=0.9, extras=(("top_p", 1),), sampler=(("top_p", 0.95),))
    assert slices_of(below)[2] == "top_p=<1"
    assert slices_of(Shape(temperature=0.9, sampler=(("top_p", 1.5),)))[2] == "top_p=1"


def test_a_reference_certain_of_its_token_bounds_the_chance_to_leave_at_zero() -> None:
    """No other token listed and no probability left unlisted: no honest draw leaves the
    reference's token, at any temperature; an alternative too unlikely to be written as
    anything but e^-inf at the temperature counts for nothing either (a bound of 0, not
    NaN, which would poison the tally)."""
    sure = TokenLogprob("a", 0.0, (("a", 0.0),))
    for t in (1e-300, 0.3, 1.0):
        assert leave_bound(sure, t) == 0.0
    unreachable = TokenLogprob("a", 0.0, (("a", 0.0), ("b", -1e10)))
    assert leave_bound(unreachable, 1e-300) == 0.0


def test_a_node_lying_in_one_slice_of_one_kind_alone_is_flagged_by_that_tally() -> None:
    """Honest elsewhere (the pair's, the kind's and the slice-over-every-kind tallies stay
    at 0), departing in one kind's slice: that tally flags, and says which it is."""
    departures = Departures(DepartureTest(threshold=2.0 - math.log(4)))
    chat, comp = "endpoint=chat", "endpoint=completions"
    flags = []
    for _ in range(6):
        flags.append(departures.add("n", "m", Evidence(1.0, 4, 0), "text", (chat,)))
        flags.append(departures.add("n", "m", Evidence(-1.5, 4, None), "stream", (chat,)))
        flags.append(departures.add("n", "m", Evidence(-1.5, 4, None), "text", (comp,)))
    flag = next(f for f in flags if f is not None)
    assert flags.index(flag) == 3  # the second lie: 2.0 over the text probes at the chat end
    assert (flag.kind, flag.slice, flag.probes, flag.departures) == ("text", chat, 2, 2)
    assert "(ones without log-probabilities, endpoint=chat alone)" in flag.describe()


def test_a_flag_over_every_probe_names_no_kind_and_no_slice() -> None:
    """Each table's tally carries its own kind and slice: ``""`` for the pair's, the kind
    alone for the kind's, ``""`` and the slice for a slice over every kind."""
    d = Departures(DepartureTest(threshold=2.0 - math.log(4)))
    flag = d.add("n", "m", Evidence(2.0, 4, 0))
    assert flag is not None and (flag.kind, flag.slice) == ("", "")
    flag = Departures(DepartureTest(threshold=2.0 - math.log(4))).add(
        "n", "m", Evidence(2.0, 4, 0), "stream"
    )
    assert flag is not None and (flag.kind, flag.slice) == ("stream", "")
    d = Departures(DepartureTest(threshold=2.0 - math.log(4)))
    flag = d.add("n", "m", Evidence(2.0, 4, 0), "text", ("top_p=1",))
    # every tally crossed at once; the one said is the last counted, the slice over every kind
    assert flag is not None and (flag.kind, flag.slice) == ("", "top_p=1")


def test_a_flag_clears_every_tally_of_its_pair_and_only_those() -> None:
    """Once a (node, model) is flagged its evidence starts afresh in every table (the kinds'
    and slices' half-way tallies too); another pair's is kept."""
    d = Departures(DepartureTest(threshold=2.0 - math.log(4)))
    d.add("o", "m", Evidence(1.0, 4, 0), "text", ("top_p=1",))
    d.add("n", "m", Evidence(1.0, 4, 0), "text", ("top_p=1",))
    assert d.add("n", "m", Evidence(1.0, 4, 0), "stream", ("top_p=none",)) is not None
    for table in (d.tallies, d.kinds, d.slices):
        assert [k for k in table if k[:2] == ("n", "m")] == []
        assert [k for k in table if k[:2] == ("o", "m")] != []
