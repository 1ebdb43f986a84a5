"""``core/measured_speed.py``: what a node's answers measured, per model."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.measured_speed import ALPHA, MIN_MEASURED_TOKENS, SpeedBook, measurable


def test_nothing_before_the_first_measured_answer() -> None:
    book = SpeedBook()
    assert book.wire("m", simulated=False) is None


def test_too_few_tokens_or_no_decode_time_are_not_counted() -> None:
    book = SpeedBook()
    assert not book.observe("m", MIN_MEASURED_TOKENS - 1, 500.0, 10.0)
    assert not book.observe("m", 100, None, 10.0)  # no decode time
    assert book.wire("m", simulated=False) is None
    assert book.observe("m", MIN_MEASURED_TOKENS, 40.0, 120.0)
    assert measurable(MIN_MEASURED_TOKENS, 1.0) and not measurable(MIN_MEASURED_TOKENS - 1, 1.0)


def test_first_answers_are_a_mean_then_the_newest_weighs_alpha() -> None:
    book = SpeedBook()
    book.observe("m", 20, 10.0, 100.0)
    book.observe("m", 20, 20.0, 300.0)
    wire = book.wire("m", simulated=True)
    assert wire == {
        "answers": 2,
        "tokens_per_s": 15.0,
        "ttft_ms": 200.0,
        "latest_tokens_per_s": 20.0,
        "latest_ttft_ms": 300.0,
        "simulated": True,
    }
    for _ in range(20):  # a steady speed: the average goes to it
        book.observe("m", 20, 30.0, 50.0)
    after = book.wire("m", simulated=False)
    assert after is not None and after["answers"] == 22 and not after["simulated"]
    assert after["tokens_per_s"] == pytest.approx(30.0, abs=0.2)
    before = after["tokens_per_s"]
    book.observe("m", 20, 0.0, 50.0)  # one slow answer moves it by ALPHA, no more
    slow = book.wire("m", simulated=False)
    assert slow is not None
    assert slow["tokens_per_s"] == pytest.approx(before * (1 - ALPHA), abs=1e-3)
    assert slow["latest_tokens_per_s"] == 0.0


def test_models_are_kept_apart() -> None:
    book = SpeedBook()
    book.observe("a", 20, 10.0, 1.0)
    assert book.wire("b", simulated=False) is None
    wire = book.wire("a", simulated=False)
    assert wire is not None and wire["answers"] == 1
