"""A sampled probe's text, one verdict at its edges: each verdict in full, the temperature, a
listed token the text goes on with, the floor, earlier positions, and what a text on the
reference or departing from it earns."""

from __future__ import annotations

import dataclasses
import math

import pytest

from LLM_Mesh.core.canary import DEFAULT_RULE, Answer, Rule, TokenLogprob, Verdict
from LLM_Mesh.core.canary_departures import DepartureTest, leave_bound, probe_evidence
from LLM_Mesh.core.canary_sampled import tempered_most
from LLM_Mesh.core.canary_sampled_text import (
    compare_sampled_text,
    text_evidence,
)
from tests.core.sampled_text_fixtures import confident

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
    ref = confident()
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
        compare_sampled_text(confident(), " Lyon", temperature=temperature)
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
