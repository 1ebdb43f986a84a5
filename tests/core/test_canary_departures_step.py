"""``core/canary_departures_step.py``: a batch of probes as one step any replica applies to
the tally a row holds, exactly the CUSUM of every probe once. Log-ratios here are sums of
powers of two, so every sum is exact and results compare with ``==``."""

from __future__ import annotations

import random

from LLM_Mesh.core.canary_departures import DepartureTally, Evidence
from LLM_Mesh.core.canary_departures_step import Counts, Step


def _step(*evs: Evidence) -> Step:
    s = Step()
    for ev in evs:
        s.add(ev)
    return s


def _counts(t: DepartureTally) -> Counts:
    return Counts(t.score, t.probes, t.departures, t.at_first)


def _tally(start: Counts, evs: list[Evidence]) -> Counts:
    t = DepartureTally(start.score, start.probes, start.departures, start.at_first)
    for ev in evs:
        t.add(ev)
    return _counts(t)


def test_a_new_step_and_counts_are_all_zero() -> None:
    assert Counts() == Counts(0.0, 0, 0, 0)
    s = Step()
    assert (s.shift, s.floor, s.probes, s.departures, s.at_first) == (0.0, 0.0, 0, 0, 0)
    assert s.fresh == DepartureTally()


def test_a_step_keeps_the_batchs_sum_its_cusum_from_zero_and_every_probe() -> None:
    """``shift`` sums every log-ratio, ``floor`` is the CUSUM from 0; the step's counts are
    every probe of the batch, its departures and those at the first token; the fresh tally's
    only those since its score was last 0."""
    s = _step(
        Evidence(1.5, 3, None),
        Evidence(-2.0, 2, 1),  # to 0 from 0: the fresh tally starts again
        Evidence(0.75, 1, 0),
        Evidence(0.25, 4, 2),
    )
    assert s.shift == 0.5
    assert s.floor == 1.0
    assert (s.probes, s.departures, s.at_first) == (4, 3, 1)
    assert _counts(s.fresh) == Counts(1.0, 2, 2, 1)


def test_a_departure_at_the_first_token_counts_once_and_only_at_position_0() -> None:
    s = _step(Evidence(1.0, 1, 0), Evidence(1.0, 2, 1), Evidence(1.0, 3, None))
    assert (s.probes, s.departures, s.at_first) == (3, 2, 1)


def test_applied_where_the_score_stays_above_zero_the_counts_add_up() -> None:
    row = Counts(4.0, 10, 6, 2)
    s = _step(Evidence(-1.0, 1, None), Evidence(0.5, 1, 0), Evidence(-0.25, 1, 3))
    assert s.apply(row) == Counts(3.25, 13, 8, 3)
    assert s.apply(row) == _tally(row, [Evidence(-1.0, 1, None), Evidence(0.5, 1, 0),
                                        Evidence(-0.25, 1, 3)])  # fmt: skip


def test_applied_where_the_score_reaches_zero_only_the_probes_since_count() -> None:
    row = Counts(1.0, 5, 4, 1)
    evs = [Evidence(-3.0, 1, None), Evidence(0.5, 1, 0), Evidence(0.25, 1, None)]
    after = _step(*evs).apply(row)
    assert after == Counts(0.75, 2, 1, 1)
    assert after == _tally(row, evs)


def test_a_row_meeting_the_floor_exactly_starts_again_from_its_last_zero() -> None:
    """``row + shift == floor``: the row's path reached 0 where the fresh one did (at
    exactly 0 a tally starts again), so the counts are the batch's since then, not the
    sum of both."""
    row = Counts(1.0, 3, 2, 1)
    evs = [Evidence(-1.0, 1, 0), Evidence(0.5, 1, None)]
    s = _step(*evs)
    assert row.score + s.shift == s.floor
    assert s.apply(row) == Counts(0.5, 1, 0, 0) == _tally(row, evs)


def test_a_batch_of_nothing_leaves_the_row_as_it_was() -> None:
    row = Counts(2.5, 7, 3, 1)
    assert Step().apply(row) == row
    assert Step().apply(Counts()) == Counts()


def test_then_is_one_batch_of_both_probes_in_order() -> None:
    first = [Evidence(2.0, 1, None), Evidence(-0.5, 1, 0)]
    later = [Evidence(-4.0, 1, 1), Evidence(1.25, 1, 0), Evidence(0.5, 1, None)]
    both = _step(*first).then(_step(*later))
    alone = _step(*first, *later)
    assert (both.shift, both.probes, both.departures, both.at_first) == (
        alone.shift, alone.probes, alone.departures, alone.at_first,
    )  # fmt: skip
    assert both.shift == -0.75
    assert (both.probes, both.departures, both.at_first) == (5, 3, 2)
    assert _counts(both.fresh) == _counts(alone.fresh) == Counts(1.75, 2, 1, 1)
    for row in (Counts(), Counts(0.5, 2, 1, 0), Counts(3.0, 9, 4, 2), Counts(8.0, 1, 1, 1)):
        assert both.apply(row) == _step(*later).apply(_step(*first).apply(row))
        assert both.apply(row) == _tally(row, first + later)


def test_then_keeps_the_earlier_batchs_fresh_counts_when_it_never_returns_to_zero() -> None:
    first = [Evidence(1.0, 1, 0), Evidence(1.0, 1, 2)]
    later = [Evidence(-0.5, 1, None)]
    both = _step(*first).then(_step(*later))
    assert _counts(both.fresh) == Counts(1.5, 3, 2, 1)


def test_any_cut_into_steps_any_merges_equals_every_probe_in_order() -> None:
    """Random batches, some merged with ``then`` (a failed write kept), applied in turn
    from a random row: exactly the tally of every probe (dyadic ratios: no rounding)."""
    rng = random.Random(36)
    for _ in range(400):
        evs = [Evidence(rng.randrange(-12, 10) / 4, 1, rng.choice([None, 0, 1, 5]))
               for _ in range(rng.randrange(0, 25))]  # fmt: skip
        start = rng.choice([Counts(), Counts(rng.randrange(1, 20) / 4, 3, 2, 1)])
        row, at = start, 0
        while at < len(evs):
            n = rng.randrange(1, 6)
            step = _step(*evs[at : at + n])
            if rng.random() < 0.4:
                m = rng.randrange(1, 6)
                step = step.then(_step(*evs[at + n : at + n + m]))
                n += m
            row, at = step.apply(row), at + n
        assert row == _tally(start, evs)
